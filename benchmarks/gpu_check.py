"""One-call GPU check: versions, the test suite on the GPU, op timings vs eager torch, ceilings.

Made for a GPU machine lent for minutes, with no network and nothing to install: it needs
python3 with torch and triton (pytest for the test step, skipped with a message without it),
runs from the source tree (no pip install: a throw-away package shim points
``fusedact`` / ``fusedact.kernels`` at this checkout), and finishes inside a global time
budget (default 450 s, under the 8 minutes the issue allows). Each section runs in its own
try/except with its own time limit, so one failure loses nothing else; progress is printed
as it goes and the summary table comes last.

    python3 benchmarks/gpu_check.py [OUT_DIR] [--budget SECONDS] [--dry-run] [--skip-tests]

OUT_DIR defaults to $OUT if set, else benchmarks/results/. It receives
``<date>-<gpu>.json`` (everything) and ``<date>-<gpu>.md`` (the short table), to be committed
as benchmarks/results/<date>-<gpu>.{json,md}. ``--dry-run`` (or a machine with no CUDA) runs
what needs no GPU: versions, the package shim, each benchmark at a tiny size on the CPU
(timed with a wall clock, numbers meaningless), and the output files.

Timing: ``triton.testing.do_bench`` (median, CUDA events, warm-up excluded); op inputs are
random (never zeros); the first call of each op is made before timing so autotuning and
compilation stay out of the numbers. Ceilings measured in the same run: a device-to-device
copy (GB/s counting bytes read + written) and cuBLAS bf16 / fp16 / tf32 matmuls (TFLOP/s).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

REPO = pathlib.Path(__file__).resolve().parent.parent
START = time.monotonic()


def log(message: str) -> None:
    print(f"[gpu_check {time.monotonic() - START:6.1f}s] {message}", flush=True)


class Budget:
    def __init__(self, seconds: float):
        self.deadline = START + seconds

    def left(self) -> float:
        return self.deadline - time.monotonic()


def section(results: dict, name: str, budget: Budget, minimum: float = 5.0):
    """Decorator-ish runner: results[name] = fn() or the error; skipped when out of time."""
    def run(function, *args, **kwargs):
        if budget.left() < minimum:
            results[name] = {"skipped": f"out of time budget ({budget.left():.0f} s left)"}
            log(f"{name}: SKIPPED (budget)")
            return None
        log(f"{name}: start ({budget.left():.0f} s left)")
        began = time.monotonic()
        try:
            value = function(*args, **kwargs)
            results[name] = value
            log(f"{name}: done in {time.monotonic() - began:.1f} s")
            return value
        except Exception as error:  # one section never stops the others
            results[name] = {"error": f"{type(error).__name__}: {error}",
                             "traceback": traceback.format_exc()[-4000:]}
            log(f"{name}: FAILED {type(error).__name__}: {error}")
            return None
    return run


# ------------------------------------------------------------------------- package shim

def package_shim() -> str:
    """A folder whose ``fusedact`` package is this checkout's fusedact/ plus kernels/ as
    fusedact.kernels (the pyproject package-dir mapping), with no pip install."""
    try:
        import fusedact  # noqa: F401  (already installed, e.g. pip install -e .)
        if pathlib.Path(fusedact.__file__).resolve().parent == REPO / "fusedact":
            return ""
    except ImportError:
        pass
    root = pathlib.Path(tempfile.mkdtemp(prefix="fusedact-shim-"))
    package = root / "fusedact"
    package.mkdir()
    for path in (REPO / "fusedact").iterdir():
        if path.name != "__pycache__":
            (package / path.name).symlink_to(path)
    (package / "kernels").symlink_to(REPO / "kernels")
    sys.path.insert(0, str(root))
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))
    return str(root)


# --------------------------------------------------------------------------- sections

def versions() -> dict:
    import torch
    import triton

    info = {"python": platform.python_version(), "torch": torch.__version__,
            "torch_cuda": torch.version.cuda, "triton": triton.__version__,
            "cuda_available": torch.cuda.is_available(), "host": platform.node()}
    try:
        info["commit"] = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                                        capture_output=True, text=True, timeout=10).stdout.strip()
    except Exception:
        info["commit"] = "?"
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=props.name, capability=f"{props.major}.{props.minor}",
                    multiprocessors=props.multi_processor_count,
                    memory_gib=round(props.total_memory / 2**30, 1))
    if shutil.which("nvidia-smi"):
        query = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,clocks.sm,clocks.max.sm,"
                                "temperature.gpu,power.draw", "--format=csv,noheader"],
                               capture_output=True, text=True, timeout=30)
        info["nvidia_smi"] = query.stdout.strip() or query.stderr.strip()
        match = re.match(r"[^,]*,\s*([^,]+)", info["nvidia_smi"])
        info["driver"] = match.group(1).strip() if match else "?"
    for key in ("gpu", "capability", "driver", "torch", "torch_cuda", "triton", "python", "commit"):
        log(f"  {key}: {info.get(key, '-')}")
    return info


def run_tests(budget: Budget, timeout: float, extra=()) -> dict:
    """The whole test suite, on the GPU (conftest turns the interpreter on only without CUDA).

    Run from a scratch folder, not the checkout: ``python -m`` puts the working folder first
    on sys.path, where the checkout's fusedact/ (without kernels/) would shadow the shim."""
    try:
        import pytest  # noqa: F401
    except ImportError:
        return {"skipped": "pytest is not installed on this machine"}
    command = [sys.executable, "-m", "pytest", str(REPO / "tests"), "-q", "-rfEs",
               "--rootdir", str(REPO), "-c", str(REPO / "pyproject.toml"),
               "-p", "no:cacheprovider", "-o", "addopts=",
               # the AOT build is its own step below (sm_90 with this machine's Triton)
               "--ignore", str(REPO / "tests" / "test_aot.py"), *extra]
    try:
        import pytest_timeout  # noqa: F401
        command += ["--timeout", "120"]
    except ImportError:
        pass
    env = dict(os.environ)
    env.pop("TRITON_INTERPRET", None)
    # Correctness, not speed: the heuristic config per key instead of compiling and timing
    # all of them (minutes of compiles); the benchmark step below runs the tuner.
    env.setdefault("FUSEDACT_AUTOTUNE", "0")
    log("  " + " ".join(command))
    began = time.monotonic()
    try:
        done = subprocess.run(command, cwd=tempfile.gettempdir(), env=env, capture_output=True,
                              text=True, timeout=timeout)
        output, code = done.stdout + done.stderr, done.returncode
    except subprocess.TimeoutExpired as expired:
        output = (expired.stdout or b"").decode(errors="replace") if isinstance(expired.stdout, bytes) else (expired.stdout or "")
        code = "timeout"
    tail = output[-6000:]
    summary = next((line for line in reversed(output.splitlines())
                    if re.search(r"\d+ (passed|failed|error)", line)), "no summary line")
    for line in tail.splitlines()[-25:]:
        print("    " + line, flush=True)
    return {"returncode": code, "summary": summary.strip("= "), "seconds": round(time.monotonic() - began, 1),
            "output_tail": tail}


def aot_check(timeout: float) -> dict:
    """The AOT subset with this machine's Triton (3.6 on the lent H200): sm_90 only."""
    env = dict(os.environ)
    env.pop("TRITON_INTERPRET", None)
    env.setdefault("FUSEDACT_AOT_CACHE", tempfile.mkdtemp(prefix="fusedact-aot-"))
    command = [sys.executable, "-m", "fusedact", "aot-report", "--subset", "--arch", "90", "--quiet"]
    done = subprocess.run(command, cwd=tempfile.gettempdir(), env=env, capture_output=True,
                          text=True, timeout=timeout)
    lines = done.stdout.splitlines()
    summary = [line for line in lines if "rows:" in line or "PROBLEM" in line]
    head = lines[:8]
    for line in head + summary:
        print("    " + line, flush=True)
    return {"returncode": done.returncode, "table_head": head, "summary": summary,
            "stderr_tail": done.stderr[-2000:]}


def _bench(function, dry: bool) -> float:
    """Median milliseconds; on the CPU (dry run) a wall-clock median of 3 calls."""
    if dry:
        times = []
        for _ in range(3):
            began = time.perf_counter()
            function()
            times.append((time.perf_counter() - began) * 1e3)
        return sorted(times)[1]
    from triton.testing import do_bench

    return float(do_bench(function, warmup=25, rep=100, return_mode="median"))


def ceilings(dry: bool) -> dict:
    import torch

    device = "cpu" if dry else "cuda"
    out = {}
    numel = (1 << 16) if dry else (1 << 29)  # 1 GiB of fp16 on the GPU: many times the L2
    source = torch.randn(numel, device=device, dtype=torch.float16)
    target = torch.empty_like(source)
    ms = _bench(lambda: target.copy_(source), dry)
    out["copy_GBps"] = round(2 * source.numel() * source.element_size() / ms / 1e6, 1)
    log(f"  device-to-device copy: {out['copy_GBps']} GB/s (read + write)")
    del source, target
    size = 256 if dry else 8192
    for name, dtype, tf32 in (("bf16", torch.bfloat16, False), ("fp16", torch.float16, False),
                              ("tf32", torch.float32, True), ("fp32", torch.float32, False)):
        if dry and name == "fp16":
            continue
        previous = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = tf32
        try:
            a = torch.randn(size, size, device=device, dtype=dtype)
            b = torch.randn(size, size, device=device, dtype=dtype)
            ms = _bench(lambda: torch.matmul(a, b), dry)
        finally:
            torch.backends.cuda.matmul.allow_tf32 = previous
        out[f"matmul_{name}_TFLOPs"] = round(2 * size**3 / ms / 1e9, 1)
        log(f"  cuBLAS {name} {size}^3: {out[f'matmul_{name}_TFLOPs']} TFLOP/s")
    return out


def _linear_cases(dry):
    # (M, K, N): a small layer, a transformer MLP slice, a large one
    return [(64, 32, 48)] if dry else [(2048, 1024, 1024), (8192, 4096, 4096), (16384, 8192, 8192)]


def op_benchmarks(dry: bool, budget: Budget) -> list:
    """fusedact vs eager torch for each op present in fusedact.functional, 3 sizes each."""
    import torch
    import torch.nn.functional as F

    import fusedact.functional as functional

    device = "cpu" if dry else "cuda"
    dtype = torch.float32 if dry else torch.bfloat16
    rows = []

    def record(op, shape, mode, fused, eager, flops=None, bytes_moved=None):
        if budget.left() < 20:
            rows.append({"op": op, "shape": shape, "mode": mode, "skipped": "budget"})
            return
        row = {"op": op, "shape": shape, "mode": mode, "dtype": str(dtype).replace("torch.", "")}
        try:
            fused()  # compile + autotune outside the timing
            eager()
            row["fusedact_ms"] = round(_bench(fused, dry), 4)
            row["torch_ms"] = round(_bench(eager, dry), 4)
            row["speedup"] = round(row["torch_ms"] / row["fusedact_ms"], 3)
            if flops:
                row["fusedact_TFLOPs"] = round(flops / row["fusedact_ms"] / 1e9, 1)
            if bytes_moved:
                row["fusedact_GBps"] = round(bytes_moved / row["fusedact_ms"] / 1e6, 1)
        except Exception as error:
            row["error"] = f"{type(error).__name__}: {error}"[:500]
        rows.append(row)
        log(f"  {op} {mode} {shape}: " + ", ".join(f"{k}={v}" for k, v in row.items()
                                                    if k not in ("op", "shape", "mode")))

    activations = {"gelu": lambda z: F.gelu(z), "relu": F.relu}
    for activation, torch_act in activations.items():
        for M, K, N in _linear_cases(dry):
            x = torch.randn(M, K, device=device, dtype=dtype)
            w = torch.randn(N, K, device=device, dtype=dtype) / K**0.5
            b = torch.randn(N, device=device, dtype=dtype)
            flops = 2 * M * N * K
            record(f"linear_act[{activation}]", [M, K, N], "forward",
                   lambda: functional.linear_act(x, w, b, activation),
                   lambda: torch_act(F.linear(x, w, b)), flops=flops)
            xg = x.clone().requires_grad_(True)
            wg = w.clone().requires_grad_(True)
            bg = b.clone().requires_grad_(True)
            grad = torch.randn(M, N, device=device, dtype=dtype)

            def fused_full():
                functional.linear_act(xg, wg, bg, activation).backward(grad)

            def eager_full():
                torch_act(F.linear(xg, wg, bg)).backward(grad)
            record(f"linear_act[{activation}]", [M, K, N], "forward+backward", fused_full, eager_full,
                   flops=3 * flops)
    softmax_cases = [(8, 100)] if dry else [(4096, 4096), (4096, 32768), (64, 262144)]
    for name in ("softmax", "log_softmax"):
        fused_op = getattr(functional, name, None)
        if fused_op is None:
            rows.append({"op": name, "skipped": f"fusedact.functional has no {name} yet"})
            continue
        for rows_, cols in softmax_cases:
            logits = torch.randn(rows_, cols, device=device, dtype=dtype)
            torch_op = getattr(torch, name)
            record(f"{name}[T=2]", [rows_, cols], "forward",
                   lambda: fused_op(logits, temperature=2.0),
                   lambda: torch_op(logits / 2.0, dim=-1),
                   bytes_moved=2 * logits.numel() * logits.element_size())
    kd_loss = getattr(functional, "kd_loss", None)
    if kd_loss is None:
        rows.append({"op": "kd_loss", "skipped": "fusedact.functional has no kd_loss yet"})
    else:
        for rows_, cols in softmax_cases:
            student = torch.randn(rows_, cols, device=device, dtype=dtype, requires_grad=True)
            teacher = torch.randn(rows_, cols, device=device, dtype=dtype)

            def fused_kd():
                kd_loss(student, teacher, temperature=2.0).backward()

            def eager_kd():
                (F.kl_div(F.log_softmax(student.float() / 2.0, dim=-1),
                          F.log_softmax(teacher.float() / 2.0, dim=-1),
                          reduction="batchmean", log_target=True) * 4.0).backward()
            record("kd_loss[T=2]", [rows_, cols], "forward+backward", fused_kd, eager_kd,
                   bytes_moved=3 * student.numel() * student.element_size())
    return rows


# ------------------------------------------------------------------------------ output

def benchmark_suite(out_dir: pathlib.Path, seconds: float, dry: bool) -> dict:
    """``python -m benchmarks`` quick mode with what is left of the budget; it writes its own
    <date>-<device>-quick.{json,csv,md} into ``out_dir`` (cases past its budget are rows that
    say so). Autotuning is capped at 10 s a kernel and shape so tuning cannot eat the run."""
    command = [sys.executable, "-m", "benchmarks", "--out", str(out_dir), "--no-plot",
               "--budget", str(max(10.0, seconds - 40.0))]
    if dry:
        command += ["--op", "softmax"]
    env = dict(os.environ, FUSEDACT_TUNE_BUDGET_S="10", PYTHONUNBUFFERED="1")
    env.pop("TRITON_INTERPRET", None)
    proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=seconds)
    for line in proc.stdout.splitlines()[-8:]:
        log(f"  {line[:160]}")
    return {"returncode": proc.returncode, "stdout_tail": proc.stdout[-6000:],
            "stderr_tail": proc.stderr[-3000:]}


def markdown(results: dict) -> str:
    info = results.get("versions") or {}
    lines = [f"# GPU check {results['date']}: {info.get('gpu', 'no GPU')}", "",
             f"driver {info.get('driver', '-')}, torch {info.get('torch', '-')} (CUDA "
             f"{info.get('torch_cuda', '-')}), triton {info.get('triton', '-')}, python "
             f"{info.get('python', '-')}, commit {info.get('commit', '-')}"
             + (" — DRY RUN on the CPU: numbers are meaningless" if results.get("dry_run") else ""), ""]
    tests = results.get("tests") or {}
    lines.append(f"- tests: {tests.get('summary') or tests.get('skipped') or tests.get('error', '-')}")
    aot = results.get("aot") or {}
    lines.append(f"- aot (sm_90, this Triton): {'; '.join(aot.get('summary', [])) or aot.get('skipped') or aot.get('error', '-')}")
    ceil = results.get("ceilings") or {}
    if "copy_GBps" in ceil:
        lines.append(f"- ceilings: copy {ceil['copy_GBps']} GB/s; cuBLAS "
                     + ", ".join(f"{k.split('_')[1]} {v} TFLOP/s" for k, v in ceil.items() if k.startswith("matmul")))
    else:
        lines.append(f"- ceilings: {ceil.get('skipped') or ceil.get('error', '-')}")
    lines += ["", "| op | mode | shape | fusedact ms | torch ms | speedup | fusedact TFLOP/s or GB/s |",
              "|---|---|---|---|---|---|---|"]
    benchmarks = results.get("benchmarks")
    for row in benchmarks if isinstance(benchmarks, list) else []:
        if "fusedact_ms" in row:
            rate = row.get("fusedact_TFLOPs", row.get("fusedact_GBps", ""))
            lines.append(f"| {row['op']} | {row['mode']} | {row['shape']} | {row['fusedact_ms']} | "
                         f"{row['torch_ms']} | {row['speedup']} | {rate} |")
        else:
            lines.append(f"| {row.get('op')} | {row.get('mode', '')} | {row.get('shape', '')} | "
                         f"{row.get('error') or row.get('skipped')} | | | |")
    if not isinstance(benchmarks, list):
        lines.append(f"| benchmarks | | | {(benchmarks or {}).get('error') or (benchmarks or {}).get('skipped')} | | | |")
    lines.append("")
    lines.append(f"Total {results.get('seconds', '?')} s of a {results.get('budget_s')} s budget.")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", nargs="?", default=os.environ.get("OUT") or str(REPO / "benchmarks" / "results"))
    parser.add_argument("--budget", type=float, default=450.0, help="seconds for the whole run")
    parser.add_argument("--dry-run", action="store_true", help="no GPU: exercise the CPU path")
    parser.add_argument("--skip-tests", action="store_true")
    parser.add_argument("--skip-aot", action="store_true")
    args = parser.parse_args(argv)
    budget = Budget(args.budget)
    results = {"date": datetime.date.today().isoformat(), "budget_s": args.budget}
    os.environ.pop("TRITON_INTERPRET", None)  # the real compiled kernels, never the interpreter

    section(results, "shim", budget)(package_shim)
    info = section(results, "versions", budget)(versions) or {}
    has_gpu = bool(info.get("cuda_available"))
    dry = args.dry_run or not has_gpu
    results["dry_run"] = dry
    if dry and not args.dry_run:
        log("no CUDA device: running the dry run (GPU steps skipped)")
    if dry:
        results["tests"] = {"skipped": "no GPU (dry run): the CPU suite runs in CI"}
        results["aot"] = {"skipped": "dry run: python -m fusedact aot-report runs in CI"}
    else:
        if args.skip_tests:
            results["tests"] = {"skipped": "--skip-tests"}
        else:
            section(results, "tests", budget, 60)(run_tests, budget, min(240.0, budget.left() - 150))
        if args.skip_aot:
            results["aot"] = {"skipped": "--skip-aot"}
        else:
            section(results, "aot", budget, 90)(aot_check, min(90.0, budget.left() - 100))
    section(results, "ceilings", budget, 15)(ceilings, dry)
    section(results, "benchmarks", budget, 30)(op_benchmarks, dry, budget)
    out = pathlib.Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    section(results, "suite", budget, 60)(benchmark_suite, out, budget.left() - 15, dry)
    results["seconds"] = round(time.monotonic() - START, 1)

    gpu = re.sub(r"[^a-z0-9]+", "-", str(info.get("gpu") or ("cpu-dry-run" if dry else "gpu")).lower()).strip("-")
    stem = out / f"{results['date']}-{gpu}"
    stem.with_suffix(".json").write_text(json.dumps(results, indent=1, default=str))
    table = markdown(results)
    stem.with_suffix(".md").write_text(table)
    print("\n" + table, flush=True)
    log(f"wrote {stem}.json and {stem}.md")
    failed = [name for name in ("tests", "aot", "ceilings", "benchmarks", "suite")
              if isinstance(results.get(name), dict) and "error" in results[name]]
    tests = results.get("tests") or {}
    if tests.get("returncode") not in (None, 0):
        failed.append("tests")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
