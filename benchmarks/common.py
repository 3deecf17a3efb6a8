"""What every benchmark shares: the environment record, timing, ceilings, rows, output.

A ``Case`` is one op at one shape and dtype in one mode with one callable per provider, and
the FLOPs and bytes its roofline counts. ``measure`` times each provider (on a GPU with
``triton.testing.do_bench``: median and 20/80 quantiles, warm-up excluded, L2 flushed
between runs so inputs never sit in it; on the CPU with ``time.perf_counter`` medians) and
turns it into rows with TFLOP/s or GB/s, the fraction of the ceiling measured in the same
run, and the speedup over eager. A provider that cannot run is a row with a status saying
why, never dropped.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Optional

import torch

ROOT = Path(__file__).resolve().parent.parent


@dataclasses.dataclass
class Case:
    op: str                          # "linear_act", "softmax", ...
    mode: str                        # "forward", "backward", "forward+backward", "train_step"
    shape: str                       # e.g. "M=4096 N=4096 K=1024"
    dtype: torch.dtype
    providers: dict                  # name -> zero-argument callable, or a str: why skipped
    flops: float = 0.0               # for matmul-bound ops (TFLOP/s vs the matmul ceiling)
    bytes: float = 0.0               # for memory-bound ops (GB/s vs the copy ceiling)
    bound: str = "memory"            # "compute" or "memory": which ceiling applies
    extra: dict = dataclasses.field(default_factory=dict)   # e.g. bytes saved for backward


COMPILE_SKIPPED = ("quick mode measures torch.compile only at each op's first case on a GPU "
                   "(never on the CPU: inductor takes minutes on 2 cores); run --full")


class CompileBudget:
    """Where a benchmark measures torch.compile: everywhere in --full mode; in quick mode on a
    GPU only at its first case (each compile costs seconds to minutes); never in quick mode on
    the CPU (inductor on 2 cores takes minutes). Cases without it say so in their row."""

    def __init__(self) -> None:
        self.used = False

    def allows(self, on_gpu: bool, quick: bool) -> bool:
        if not quick:
            return True
        allowed = on_gpu and not self.used
        self.used = True
        return allowed


def environment() -> dict:
    """GPU, driver, versions, commit and time: stamped on every row."""
    import triton

    import fusedact

    env = {
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__, "triton": triton.__version__,
        "fusedact": fusedact.__version__, "python": platform.python_version(),
        "commit": _git_commit(), "cpu": platform.processor() or platform.machine(),
    }
    if torch.cuda.is_available():
        env["device"] = torch.cuda.get_device_name()
        env["driver"] = _nvidia_driver()
        env["cuda"] = torch.version.cuda
    else:
        env["device"] = "cpu"
    return env


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                             capture_output=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=ROOT, text=True, capture_output=True, timeout=10).stdout
        return out.stdout.strip() + ("-dirty" if dirty.strip() else "") if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _nvidia_driver() -> str:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             text=True, capture_output=True, timeout=20)
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError, IndexError):
        return "unknown"


def time_callable(fn: Callable[[], object], on_gpu: bool, cpu_reps: int = 10) -> tuple[float, float, float]:
    """(median, p20, p80) in milliseconds."""
    if on_gpu:
        from triton.testing import do_bench

        median, p20, p80 = do_bench(fn, warmup=25, rep=100, quantiles=[0.5, 0.2, 0.8])
        return float(median), float(p20), float(p80)
    fn()  # warm-up
    samples = []
    for _ in range(cpu_reps):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e3)
    samples.sort()
    return (statistics.median(samples), samples[int(0.2 * (len(samples) - 1))],
            samples[int(round(0.8 * (len(samples) - 1)))])


def ceilings(dtypes, on_gpu: bool) -> dict:
    """Measured in this run: copy bandwidth (GB/s, bytes read + written) and, per dtype, a
    large matmul's rate (TFLOP/s: cuBLAS on a GPU, the CPU BLAS otherwise)."""
    device = "cuda" if on_gpu else "cpu"
    numel = (1 << 28) if on_gpu else (1 << 24)     # 1 GiB of fp32 on a GPU: far past L2
    src = torch.empty(numel, dtype=torch.float32, device=device).uniform_()
    dst = torch.empty_like(src)
    median, _, _ = time_callable(lambda: dst.copy_(src), on_gpu)
    result = {"copy_GBps": 2 * src.numel() * 4 / (median * 1e-3) / 1e9}
    size = 8192 if on_gpu else 1024
    for dtype in dtypes:
        a = torch.randn(size, size, device=device, dtype=dtype)
        b = torch.randn(size, size, device=device, dtype=dtype)
        median, _, _ = time_callable(lambda: a @ b, on_gpu)
        result[f"matmul_TFLOPs_{_short(dtype)}"] = 2 * size ** 3 / (median * 1e-3) / 1e12
    del src, dst
    return result


def _short(dtype: torch.dtype) -> str:
    return {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16",
            torch.float64: "fp64"}[dtype]


def measure(case: Case, ceiling: dict, on_gpu: bool) -> list[dict]:
    """One row per provider of ``case``."""
    rows, eager_ms = [], None
    for provider, fn in case.providers.items():
        row = {"op": case.op, "mode": case.mode, "shape": case.shape, "dtype": _short(case.dtype),
               "provider": provider, **case.extra.get(provider, {})}
        if isinstance(fn, str):
            rows.append({**row, "status": f"skipped: {fn}"})
            continue
        try:
            median, p20, p80 = time_callable(fn, on_gpu)
        except Exception as error:  # a provider that fails is reported, not hidden
            rows.append({**row, "status": f"error: {type(error).__name__}: {str(error)[:200]}"})
            continue
        finally:
            if on_gpu:
                torch.cuda.synchronize()
        row.update(status="ok", median_ms=median, p20_ms=p20, p80_ms=p80)
        if case.flops:
            row["TFLOPs"] = case.flops / (median * 1e-3) / 1e12
        if case.bytes:
            row["GBps"] = case.bytes / (median * 1e-3) / 1e9
        if case.bound == "compute" and case.flops:
            limit = ceiling.get(f"matmul_TFLOPs_{_short(case.dtype)}")
            row["fraction_of_ceiling"] = row["TFLOPs"] / limit if limit else None
        elif case.bytes:
            row["fraction_of_ceiling"] = row["GBps"] / ceiling["copy_GBps"]
        if provider == "eager":
            eager_ms = median
        rows.append(row)
    for row in rows:
        if eager_ms and row.get("median_ms"):
            row["speedup_vs_eager"] = eager_ms / row["median_ms"]
    return rows


def write_results(rows: list[dict], env: dict, ceiling: dict, out_dir: Path, tag: str) -> Path:
    """JSON (everything), CSV (one row per measurement) and a markdown table; returns the
    JSON path. Names: <date>-<device>-<tag>.*"""
    out_dir.mkdir(parents=True, exist_ok=True)
    device = "".join(c if c.isalnum() else "-" for c in env["device"]).strip("-").lower()
    stem = out_dir / f"{env['timestamp'][:10]}-{device}-{tag}"
    stamped = [{**env, **row} for row in rows]
    json_path = stem.with_suffix(".json")
    json_path.write_text(json.dumps({"environment": env, "ceilings": ceiling, "rows": stamped},
                                    indent=1, default=str))
    columns = sorted({key for row in stamped for key in row}, key=_column_order)
    with open(stem.with_suffix(".csv"), "w") as csv:
        csv.write(",".join(columns) + "\n")
        for row in stamped:
            csv.write(",".join(_csv_cell(row.get(c, "")) for c in columns) + "\n")
    stem.with_suffix(".md").write_text(markdown_table(rows, env, ceiling))
    return json_path


_ORDER = ["op", "mode", "shape", "dtype", "provider", "status", "median_ms", "p20_ms", "p80_ms",
          "TFLOPs", "GBps", "fraction_of_ceiling", "speedup_vs_eager"]


def _column_order(name: str):
    return (_ORDER.index(name) if name in _ORDER else len(_ORDER), name)


def _csv_cell(value) -> str:
    text = f"{value:.6g}" if isinstance(value, float) else str(value)
    return f'"{text}"' if "," in text else text


def _fmt(value, spec=".3g") -> str:
    return format(value, spec) if isinstance(value, (int, float)) and value is not None else "-"


def markdown_table(rows: list[dict], env: dict, ceiling: dict) -> str:
    lines = [f"Device: {env['device']}"
             + (f" (driver {env.get('driver')})" if env.get("driver") else "")
             + f"; torch {env['torch']}, triton {env['triton']}, fusedact {env['fusedact']}, "
             f"commit {env['commit']}, {env['timestamp']}",
             "Ceilings measured in this run: " + ", ".join(f"{k} {v:.1f}" for k, v in ceiling.items()),
             "",
             "| op | mode | shape | dtype | provider | median ms | TFLOP/s | GB/s | of ceiling | vs eager | saved for bwd | status |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        saved = r.get("saved_bytes")
        lines.append(
            f"| {r['op']} | {r['mode']} | {r['shape']} | {r['dtype']} | {r['provider']} | "
            f"{_fmt(r.get('median_ms'))} | {_fmt(r.get('TFLOPs'))} | {_fmt(r.get('GBps'))} | "
            f"{_fmt(r.get('fraction_of_ceiling'), '.0%')} | "
            f"{_fmt(r.get('speedup_vs_eager'), '.2f')}{'x' if r.get('speedup_vs_eager') else ''} | "
            f"{_mib(saved)} | {r['status']} |")
    return "\n".join(lines) + "\n"


def _mib(value: Optional[float]) -> str:
    return f"{value / 2**20:.1f} MiB" if isinstance(value, (int, float)) else "-"


def saved_bytes(fn: Callable[[], torch.Tensor], exclude: tuple = ()) -> int:
    """Bytes of distinct storages autograd keeps for backward while ``fn()`` runs forward
    (parameters in ``exclude`` not counted)."""
    skip = {t.untyped_storage().data_ptr() for t in exclude}
    storages = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in skip:
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    del out
    return sum(storages.values())


def progress(rows_so_far: int, label: str, end: bool = False) -> None:
    """A one-line progress indicator on stderr (rows measured so far, current case)."""
    sys.stderr.write(f"\r[{rows_so_far:4d} rows] {label[:90]:<90}")
    if end:
        sys.stderr.write("\n")
    sys.stderr.flush()
