"""``python -m benchmarks [--full] [--op OP ...] [--dtype DT ...] [--out DIR]``

Quick mode by default. On a GPU every provider runs on the GPU with ``do_bench``; without
one, fusedact's CPU path runs against eager torch on the CPU, honestly labelled: those are
CPU figures, and GPU figures need a GPU. Interpreter timings are never reported.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from pathlib import Path

OPS = {
    "linear_act": "benchmarks.bench_linear_act",
    "mlp": "benchmarks.bench_mlp",
    "softmax": "benchmarks.bench_softmax",
    "kd_loss": "benchmarks.bench_kd_loss",
}
DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="every shape, activation and provider")
    parser.add_argument("--op", action="append", choices=sorted(OPS), help="only these ops")
    parser.add_argument("--dtype", action="append", choices=sorted(DTYPES), help="only these dtypes")
    parser.add_argument("--out", default=None,
                        help="results folder (default: benchmarks/out, which git ignores)")
    parser.add_argument("--no-plot", action="store_true")
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds; cases past it are reported as skipped, results still written")
    args = parser.parse_args(argv)

    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        print("TRITON_INTERPRET is set: interpreter timings say nothing about kernel speed, so "
              "the benchmarks refuse to run. Unset it.", file=sys.stderr)
        return 2
    import torch

    from benchmarks import common

    on_gpu = torch.cuda.is_available()
    quick = not args.full
    # Quick mode: bf16 on a GPU (what the targets are stated in), fp32 on a CPU (bf16
    # matmuls on a CPU without bf16 units take seconds).
    default_dtypes = {(True, True): ["bf16"], (True, False): ["bf16", "fp16", "fp32"],
                      (False, True): ["fp32"], (False, False): ["fp32", "bf16"]}[(on_gpu, quick)]
    dtypes = [getattr(torch, DTYPES[d]) for d in (args.dtype or default_dtypes)]
    env = common.environment()
    print(f"fusedact benchmarks ({'quick' if quick else 'full'}) on {env['device']}; "
          f"torch {env['torch']}, triton {env['triton']}, commit {env['commit']}")
    if not on_gpu:
        print("No GPU: these are CPU figures (fusedact's plain-torch CPU path vs eager torch). "
              "GPU figures need a GPU (benchmarks/gpu_check.py).")
    start = time.perf_counter()
    ceiling = common.ceilings(dtypes, on_gpu)
    rows = []
    for op in args.op or list(OPS):
        for case in importlib.import_module(OPS[op]).cases(quick, on_gpu, dtypes):
            common.progress(len(rows), f"{case.op} {case.mode} {case.shape} {case.dtype}")
            if args.budget is not None and time.perf_counter() - start > args.budget:
                case.providers = {name: f"out of the {args.budget:.0f} s time budget"
                                  for name in case.providers}
            rows += common.measure(case, ceiling, on_gpu)
            if on_gpu:
                torch.cuda.empty_cache()
    common.progress(len(rows), "done", end=True)
    out_dir = Path(args.out) if args.out else common.ROOT / "benchmarks" / "out"
    path = common.write_results(rows, env, ceiling, out_dir, "quick" if quick else "full")
    print(common.markdown_table(rows, env, ceiling))
    if not args.no_plot:
        from benchmarks import plot
        print(plot.plot(rows, path.with_suffix(".png")))
    print(f"results: {path} (+ .csv, .md); {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
