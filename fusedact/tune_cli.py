"""``python -m fusedact tune`` (pre-tune shapes on this GPU) and ``python -m fusedact cache``
(print, locate or clear the tuning cache). The tuner itself is ``fusedact.kernels.autotune``.

    python -m fusedact tune --op linear_act --shape 4096,4096,4096 --shape 8192,1024,4096 \\
        --dtype bf16 --dtype fp16 [--forward-only] [--force] [--budget 60] [--export DIR]
    python -m fusedact cache [show|path|clear] [--device NAME]
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
from typing import Callable, Optional, Sequence

DTYPES = {"fp16": "float16", "bf16": "bfloat16", "fp32": "float32", "fp64": "float64"}


def _tune_linear_act(shape: Sequence[int], dtype, backward: bool) -> list:
    """Launch linear_act's kernels once for ``shape`` = (M, N, K); returns the tuners used."""
    import torch

    from fusedact.kernels import linear_act

    if len(shape) != 3:
        raise ValueError(f"--shape for linear_act is M,N,K (x [M, K], weight [N, K]), got {shape}")
    M, N, K = shape
    x = torch.randn(M, K, device="cuda", dtype=dtype)
    weight = torch.randn(N, K, device="cuda", dtype=dtype) / K ** 0.5
    bias = torch.randn(N, device="cuda", dtype=dtype)
    # The activation is a constexpr that does not enter the tuning key: any one will do.
    y, _ = linear_act.linear_act_forward(x, weight, bias, "relu", 0.0, False)
    tuners = [linear_act.FORWARD_TUNER]
    if backward:
        grad = torch.randn_like(y)
        linear_act.matmul_rowsum(grad, weight, dtype, False)        # dX = dZ @ W
        linear_act.matmul_rowsum(grad.t(), x, dtype, True)          # dW = dZ^T @ X, db
        tuners.append(linear_act.MATMUL_TUNER)
    torch.cuda.synchronize()
    return tuners


#: op name -> function(shape, torch dtype, backward) -> tuners it exercised. Each op's
#: kernels are launched once per shape and dtype, so their tuners time (or look up) configs.
OPS: dict[str, Callable] = {"linear_act": _tune_linear_act}


def _shape(text: str) -> tuple:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"a shape is comma-separated integers, got {text!r}")
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"a shape needs positive sizes, got {text!r}")
    return values


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m fusedact tune``: time every config for the given shapes and dtypes on this
    GPU and persist the winners, so later processes tune nothing."""
    parser = argparse.ArgumentParser(prog="python -m fusedact tune", description=main.__doc__)
    parser.add_argument("--op", choices=sorted(OPS), required=True)
    parser.add_argument("--shape", type=_shape, action="append", required=True,
                        help="sizes, comma-separated (linear_act: M,N,K); repeatable")
    parser.add_argument("--dtype", choices=sorted(DTYPES), action="append",
                        help="repeatable; default bf16")
    parser.add_argument("--forward-only", action="store_true", help="skip the backward kernels")
    parser.add_argument("--force", action="store_true",
                        help="time again even where the cache or a shipped table has an entry")
    parser.add_argument("--budget", type=float, help="seconds per kernel and key "
                        "(FUSEDACT_TUNE_BUDGET_S; default 30)")
    parser.add_argument("--export", metavar="DIR",
                        help="also write the chosen entries as a table to ship (kernels/tuned/)")
    args = parser.parse_args(argv)

    import torch

    from fusedact.kernels import autotune

    if autotune.INTERPRETED:
        print("fusedact tune: TRITON_INTERPRET=1 is set, so the kernels run in the interpreter "
              "with one fixed config and there is nothing to tune; unset it and run on a GPU.",
              file=sys.stderr)
        return 2
    if not torch.cuda.is_available():
        print("fusedact tune: needs a CUDA GPU to time kernels, and torch sees none "
              "(torch.cuda.is_available() is False); nothing was tuned. Run this on the GPU "
              "machine; the results go to the cache folder (python -m fusedact cache path).",
              file=sys.stderr)
        return 2
    os.environ[autotune.ENV_MODE] = "tune"
    if args.budget is not None:
        os.environ[autotune.ENV_BUDGET] = str(args.budget)
    device = autotune.device_name()
    print(f"tuning {args.op} on {device}, triton {autotune.triton_version()}, "
          f"cache {autotune.cache_dir()}")
    tuners: dict = {}
    for dtype_name in args.dtype or ["bf16"]:
        dtype = getattr(torch, DTYPES[dtype_name])
        for shape in args.shape:
            with autotune.retuning() if args.force else contextlib.nullcontext():
                for tuner in OPS[args.op](shape, dtype, not args.forward_only):
                    tuners[tuner.name] = tuner
    for tuner in tuners.values():
        tuned = {record.key: record for record in tuner.history}
        for key, config in tuner.chosen().items():
            record = tuned.get(key)
            if record is None:
                print(f"  {tuner.name} {key}: {config}  (from the cache / shipped table)")
            else:
                note = "; time budget reached" if record.budget_hit else ""
                print(f"  {tuner.name} {key}: {config}  {record.best_ms:.4f} ms; timed "
                      f"{record.timed}/{record.candidates} configs in {record.seconds:.1f} s"
                      f"{' (' + str(record.failed) + ' failed)' if record.failed else ''}{note}; "
                      f"the heuristic's pick: {record.heuristic_ms:.4f} ms "
                      f"({record.heuristic_ms / record.best_ms - 1:+.1%})")
    if args.export:
        entries = {}
        folder = autotune.cache_dir()
        table = autotune.read_table(os.path.join(folder, autotune.device_file_name(device)), folder)
        for tuner in tuners.values():
            for key in tuner.chosen():
                entry = table.get(tuner.entry_key(key))
                if entry is not None:
                    entries[tuner.entry_key(key)] = entry
        export = os.path.abspath(args.export)
        if not autotune.write_entries(device, entries, folder=export):
            return 1
        print(f"wrote {len(entries)} entries to "
              f"{os.path.join(export, autotune.device_file_name(device))}")
    return 0


def _table_files(folder: str) -> list:
    if not os.path.isdir(folder):
        return []
    return sorted(os.path.join(folder, name) for name in os.listdir(folder)
                  if name.endswith(".json") and not name.startswith(".")
                  and os.path.isfile(os.path.join(folder, name)))


def _show(folder: str, label: str, device: Optional[str]) -> int:
    from fusedact.kernels import autotune

    shown = 0
    for path in _table_files(folder):
        if device and os.path.basename(path) != autotune.device_file_name(device):
            continue
        entries = autotune.read_table(path, folder)
        print(f"{path}{label}: {len(entries)} entries")
        for entry in entries.values():
            config = entry.get("config", {})
            blocks = ", ".join(f"{k}={v}" for k, v in sorted(config.get("kwargs", {}).items()))
            ms = entry.get("ms")
            print(f"  {entry.get('kernel')} {entry.get('key')}: {blocks}, "
                  f"warps={config.get('num_warps')}, stages={config.get('num_stages')}"
                  f"{f'  {ms:.4f} ms' if isinstance(ms, (int, float)) else ''}"
                  f"  (triton {entry.get('triton')}, src {entry.get('src')}"
                  f"{', budget reached' if entry.get('budget_hit') else ''})")
        shown += 1
    return shown


def cache_main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m fusedact cache``: show (default), path, or clear the tuning cache."""
    parser = argparse.ArgumentParser(prog="python -m fusedact cache", description=cache_main.__doc__)
    parser.add_argument("action", nargs="?", default="show", choices=["show", "path", "clear"])
    parser.add_argument("--device", help="only this GPU model's file (as torch names it)")
    args = parser.parse_args(argv)

    from fusedact.kernels import autotune

    folder = autotune.cache_dir()
    if args.action == "path":
        print(folder)
        return 0
    if args.action == "show":
        if not _show(folder, "", args.device):
            print(f"no tuning cache in {folder}")
        _show(autotune.SHIPPED_DIR, " (shipped)", args.device)
        return 0
    removed = 0
    for path in _table_files(folder):
        if args.device and os.path.basename(path) != autotune.device_file_name(args.device):
            continue
        if os.path.islink(path) or not autotune._inside(path, folder):
            continue
        os.unlink(path)
        removed += 1
    print(f"removed {removed} cache file(s) from {folder}")
    return 0
