"""Autotuning cost on a GPU (issue 5): first-call tuning time per kernel and shape, the
overhead a second process pays (target: nothing timed, under 50 ms), and how far the
heuristic's config is from the tuned one (target: within 10%).

    python benchmarks/bench_autotune.py [--shape M,N,K ...] [--dtype bf16] [--out FILE.json]

Uses a fresh, temporary cache folder, so it never reads or changes the user's cache. Needs a
CUDA GPU; says so and exits 2 without one.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

SHAPES = ["4096,4096,4096", "8192,4096,1024", "1000,11008,4096"]
CHILD = """
import json, sys, time
start = time.perf_counter()
import torch
from fusedact.kernels import autotune, linear_act
imported = time.perf_counter()
M, N, K = map(int, sys.argv[1].split(","))
dtype = getattr(torch, sys.argv[2])
x = torch.randn(M, K, device="cuda", dtype=dtype)
w = torch.randn(N, K, device="cuda", dtype=dtype)
torch.cuda.synchronize()
timed = []
autotune.BENCH = lambda fn: timed.append(1) or autotune._default_bench(fn)
begin = time.perf_counter()
linear_act.linear_act_forward(x, w, None, "relu", 0.0, False)
torch.cuda.synchronize()
first = time.perf_counter() - begin
begin = time.perf_counter()
linear_act.linear_act_forward(x, w, None, "relu", 0.0, False)
torch.cuda.synchronize()
second = time.perf_counter() - begin
records = [vars(r) | {"best": str(r.best), "heuristic": str(r.heuristic), "key": list(r.key)}
           for r in linear_act.FORWARD_TUNER.history]
print(json.dumps({"first_call_s": first, "warm_call_s": second, "configs_timed": len(timed),
                  "import_s": imported - start, "records": records}))
"""


def run_child(shape: str, dtype: str, cache: str) -> dict:
    env = dict(os.environ, FUSEDACT_CACHE_DIR=cache, FUSEDACT_AUTOTUNE="tune")
    env.pop("TRITON_INTERPRET", None)
    out = subprocess.run([sys.executable, "-c", CHILD, shape, dtype], env=env, text=True,
                         capture_output=True, timeout=600)
    if out.returncode:
        raise RuntimeError(out.stderr[-4000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", action="append", help="M,N,K; repeatable")
    parser.add_argument("--dtype", default="bf16", choices=["fp16", "bf16", "fp32"])
    parser.add_argument("--out", help="write the rows as JSON here")
    args = parser.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("bench_autotune: needs a CUDA GPU; none found, nothing measured.", file=sys.stderr)
        return 2
    dtype = {"fp16": "float16", "bf16": "bfloat16", "fp32": "float32"}[args.dtype]
    rows = []
    for shape in args.shape or SHAPES:
        with tempfile.TemporaryDirectory() as cache:
            first = run_child(shape, dtype, cache)    # tunes and persists
            second = run_child(shape, dtype, cache)   # must find it on disk
        record = first["records"][0] if first["records"] else None
        row = {"gpu": torch.cuda.get_device_name(), "shape": shape, "dtype": args.dtype,
               "first_process_first_call_s": round(first["first_call_s"], 4),
               "configs_timed_first": first["configs_timed"],
               "second_process_first_call_s": round(second["first_call_s"], 4),
               "second_process_warm_call_s": round(second["warm_call_s"], 4),
               "configs_timed_second": second["configs_timed"]}
        if record:
            row |= {"tuned": record["best"], "tuned_ms": record["best_ms"],
                    "heuristic": record["heuristic"], "heuristic_ms": record["heuristic_ms"],
                    "heuristic_gap": record["heuristic_ms"] / record["best_ms"] - 1,
                    "tuning_s": record["seconds"], "budget_hit": record["budget_hit"]}
        rows.append(row)
        print(json.dumps(row))
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(rows, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
