#!/usr/bin/env bash
# One-call GPU check (see benchmarks/gpu_check.py): versions, tests on the GPU, timings,
# ceilings; JSON + markdown into $1 (default $OUT, else benchmarks/results/).
# Needs only python3 with torch and triton (pytest for the test step); installs nothing.
# The outer timeout is a backstop over the script's own 450 s budget.
set -u
cd "$(dirname "$0")/.." || exit 1
export PYTHONUNBUFFERED=1
exec timeout -k 10 470 python3 benchmarks/gpu_check.py "$@"
