"""The machinery around the kernels: a config that Triton cannot build falls back to the
next one with a warning; concurrent calls from several threads give the same results as
sequential ones. (A corrupt cache file, an unwritable cache, and a cache loader that reads
JSON only and refuses paths outside its folder are tested in test_autotune.py.)
"""
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

import fusedact
from fusedact import backend, reference
from fusedact import functional as ff
from fusedact.kernels import autotune
from fusedact.kernels import linear_act as linear_act_kernels
from helpers import DEVICE, FORWARD_TOL, assert_close

# BLOCK_M = 48 is not a power of two: tl.arange(0, 48) cannot be built (a compile error on
# a GPU, an error when the interpreter runs it).
BROKEN = autotune.Config.make(num_warps=4, num_stages=3, BLOCK_M=48, BLOCK_N=64, BLOCK_K=32,
                              GROUP_M=8)
GOOD = linear_act_kernels.INTERPRETER_CONFIG


@pytest.fixture
def two_config_tuner(monkeypatch, tmp_path):
    """linear_act's forward tuned in "tune" mode (as on a GPU) over [BROKEN, GOOD], with a
    timer that only runs the kernel (no device timing needed) and nothing persisted."""
    monkeypatch.setattr(autotune, "INTERPRETED", False)
    monkeypatch.setattr(autotune, "TUNERS", dict(autotune.TUNERS))
    monkeypatch.setattr(autotune, "_warned", set())
    monkeypatch.setenv("FUSEDACT_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("FUSEDACT_AUTOTUNE", raising=False)
    monkeypatch.delenv("FUSEDACT_TUNE_DISTRIBUTED", raising=False)

    def bench(fn):
        fn()
        return 1.0

    tuner = autotune.Tuner("linear_act_fwd_broken_first", [BROKEN, GOOD], GOOD,
                           linear_act_kernels._keep_config,
                           lambda configs, problem: configs[0],  # BROKEN is timed first
                           kernel="test", bench=bench, persist=False)
    monkeypatch.setattr(tuner, "_device", lambda problem: "Test device")
    monkeypatch.setattr(linear_act_kernels, "FORWARD_TUNER", tuner)
    return tuner


def test_a_config_triton_cannot_build_falls_back_with_a_warning(two_config_tuner):
    tuner = two_config_tuner
    if backend.active(torch.empty(1, device=DEVICE)) == "torch":
        pytest.skip("the Triton launchers do not run on the plain-torch path")
    x = torch.randn(9, 20, device=DEVICE)
    w = torch.randn(13, 20, device=DEVICE)
    with pytest.warns(RuntimeWarning, match=r"config BLOCK_K=32, BLOCK_M=48.*failed.*trying "
                                            r"the next"):
        y = fusedact.linear_act(x, w, None, "relu")
    assert tuner.chosen() == {(str(x.dtype), 16, 13, 20, False): GOOD}  # key ends with tf32
    record, = tuner.history
    assert (record.failed, record.timed, record.best) == (1, 1, GOOD)
    assert_close(y, reference.linear_act(x, w, None, "relu"), FORWARD_TOL[torch.float32])


def test_every_config_failing_is_a_clear_error(two_config_tuner, monkeypatch):
    tuner = two_config_tuner
    if backend.active(torch.empty(1, device=DEVICE)) == "torch":
        pytest.skip("the Triton launchers do not run on the plain-torch path")
    also_broken = autotune.Config.make(num_warps=4, num_stages=3, BLOCK_M=64, BLOCK_N=48,
                                       BLOCK_K=32, GROUP_M=8)
    monkeypatch.setattr(tuner, "configs", [BROKEN, also_broken])
    with pytest.warns(RuntimeWarning, match="failed"), \
            pytest.raises(RuntimeError, match="none of 2 configs could run"):
        fusedact.linear_act(torch.randn(3, 5, device=DEVICE), torch.randn(2, 5, device=DEVICE))


def _workload(seed):
    generator = torch.Generator().manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=generator).to(DEVICE)

    x = randn(7 + seed % 5, 33).requires_grad_()
    w = randn(17, 33).requires_grad_()
    logits = randn(5, 70 if seed % 2 else 37).requires_grad_()
    teacher = randn(*logits.shape)
    y = fusedact.linear_act(x, w, None, "gelu")
    p = ff.softmax(logits, 0.5 + seed)
    loss = ff.kd_loss(logits, teacher, 2.0) + y.square().sum() + p.square().sum()
    grads = torch.autograd.grad(loss, (x, w, logits))
    return [t.detach() for t in (y, p, loss, *grads)]


def test_concurrent_calls_from_threads_match_sequential_ones():
    seeds = list(range(6))
    sequential = [_workload(seed) for seed in seeds]
    with ThreadPoolExecutor(max_workers=4) as pool:
        concurrent = list(pool.map(_workload, seeds))
    for seed, expected, got in zip(seeds, sequential, concurrent):
        for a, b in zip(got, expected):
            assert torch.equal(a, b), f"seed {seed}: a result changed under threads"
