"""Test setup: with no GPU, run the real Triton kernels through Triton's interpreter.

TRITON_INTERPRET must be set before fusedact (and so fusedact.kernels) is imported, because
``triton.jit`` reads it when the kernels are defined. pytest imports conftest.py first.
"""
import os
import tempfile

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
# A fresh inductor cache per run: its FX-graph cache key does not cover a custom op's schema,
# so a graph compiled before an op's signature changed would be replayed against the new one.
os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", tempfile.mkdtemp(prefix="fusedact-inductor-"))

import pytest  # noqa: E402

import fusedact  # noqa: E402,F401  (import after the switch above)
from helpers import DEVICE, poison_allocations  # noqa: E402


@pytest.fixture
def device() -> str:
    return DEVICE


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def poison(monkeypatch):
    """Every kernel output buffer starts as NaN, so an element a kernel forgets shows: all
    launchers allocate with torch.empty / torch.empty_like, which this makes NaN-filled."""
    poison_allocations(monkeypatch)
