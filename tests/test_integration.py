"""fusedact inside ordinary PyTorch workflows: autocast, torch.compile, checkpointing,
no_grad / inference_mode, serialisation, DistributedDataParallel and FSDP2."""
import copy
import io
import os
import pickle
import socket
import tempfile

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

import fusedact
from fusedact import FusedLinear, amp, ops

# bf16 under autocast: both sides round their inputs to bf16 (8 mantissa bits) and accumulate
# in fp32, but in another order, and the interpreter's fp32->bf16 store truncates: a few
# bf16 ulps (2^-8 ≈ 3.9e-3) of the output's scale. Gradients reach fp32 master weights
# through bf16 matmuls: same order of error.
BF16_TOL = dict(rtol=3e-2, atol=3e-2)


def _reference_pair(device):
    """An nn.Linear model and the same model fused (fusedact.fuse), sharing no storage."""
    torch.manual_seed(0)
    eager = nn.Sequential(nn.Linear(6, 16), nn.GELU(), nn.Linear(16, 16),
                          nn.LeakyReLU(0.1), nn.Linear(16, 3)).to(device)
    fused, _ = fusedact.fuse(eager)
    return eager, fused


def _run(model, x):
    model.zero_grad()
    out = model(x)
    out.float().square().sum().backward()
    return out.detach(), [p.grad.clone() for p in model.parameters()]


# ------------------------------------------------------------------ autocast

def test_every_fusedact_op_has_an_autocast_rule():
    defined = {name for name, value in vars(ops).items()
               if isinstance(value, torch._library.custom_ops.CustomOpDef)}
    assert defined and defined <= set(amp.POLICIES), defined - set(amp.POLICIES)
    assert set(amp.REGISTERED) == defined


def test_autocast_bf16_cpu_behaves_as_nn_linear():
    eager, fused = _reference_pair("cpu")
    x = torch.randn(7, 6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        expected, expected_grads = _run(eager, x)
        actual, actual_grads = _run(fused, x)
    assert expected.dtype == actual.dtype == torch.bfloat16
    torch.testing.assert_close(actual.float(), expected.float(), **BF16_TOL)
    for g, e in zip(actual_grads, expected_grads):
        assert g.dtype == torch.float32  # master weights keep fp32 gradients
        torch.testing.assert_close(g, e, **BF16_TOL)
    # and outside autocast it is fp32 again
    assert fused(x).dtype == torch.float32


def test_autocast_accepts_mixed_dtypes_like_f_linear_and_leaves_float64():
    layer = FusedLinear(5, 4, activation="silu")
    x16 = torch.randn(3, 5, dtype=torch.bfloat16)
    with pytest.raises(TypeError, match="must share one dtype"):
        layer(x16)  # without autocast a bf16 input and an fp32 weight are an error, as in torch
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert layer(x16).dtype == torch.bfloat16
        # the op itself, called directly, is cast by the dispatcher
        y, _ = ops.linear_act_fwd(torch.randn(3, 5), layer.weight, None, "relu", 0.0, False)
        assert y.dtype == torch.bfloat16
        layer64 = FusedLinear(5, 4, activation="tanh", dtype=torch.float64)
        assert layer64(torch.randn(3, 5, dtype=torch.float64)).dtype == torch.float64
        with pytest.raises(TypeError, match="under autocast"):
            layer64(torch.randn(3, 5))  # fp32 -> bf16 meets a float64 weight
    with torch.autocast("cpu", dtype=torch.float16):
        assert layer(torch.randn(3, 5)).dtype == torch.float16


def test_autocast_under_torch_compile():
    _, fused = _reference_pair("cpu")
    compiled = torch.compile(fused, fullgraph=True, backend="aot_eager", dynamic=True)
    x = torch.randn(5, 6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        expected, expected_grads = _run(fused, x)
        actual, actual_grads = _run(compiled, x)
    assert actual.dtype == torch.bfloat16
    torch.testing.assert_close(actual, expected)
    for g, e in zip(actual_grads, expected_grads):
        torch.testing.assert_close(g, e)


def _needs(name):
    if not hasattr(fusedact, name):
        pytest.skip(f"fusedact.{name} is not in this build (the softmax / KD issue adds it)")
    return getattr(fusedact, name)


def test_autocast_softmax_and_kd_loss_run_in_fp32():
    softmax = _needs("softmax")
    kd_criterion = _needs("KDLoss")(temperature=2.0)
    x = torch.randn(4, 9, dtype=torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        p = softmax(x, temperature=2.0)
        student = torch.randn(4, 9, requires_grad=True)
        teacher = torch.randn(4, 9, dtype=torch.bfloat16)
        loss = kd_criterion(student.bfloat16(), teacher)
    # torch's CUDA autocast policy for softmax: fp32 math and an fp32 result
    assert p.dtype == torch.float32
    torch.testing.assert_close(p, torch.softmax(x.float() / 2.0, -1), rtol=1e-5, atol=1e-6)
    assert loss.dtype == torch.float32
    expected = nn.functional.kl_div(torch.log_softmax(student.bfloat16().float() / 2.0, -1),
                                    torch.log_softmax(teacher.float() / 2.0, -1),
                                    reduction="batchmean", log_target=True) * 4.0
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)
    loss.backward()
    assert student.grad is not None and student.grad.dtype == torch.float32


# ------------------------------------------------------------------ torch.compile

def test_compile_fullgraph_fused_model_dynamic_batch():
    eager, fused = _reference_pair("cpu")
    compiled = torch.compile(fused, fullgraph=True, backend="aot_eager", dynamic=True)
    for batch in (3, 8, 5):
        x = torch.randn(batch, 6)
        expected, expected_grads = _run(eager, x)
        actual, actual_grads = _run(compiled, x)
        torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)
        for g, e in zip(actual_grads, expected_grads):
            torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-5)


def test_compile_fullgraph_student_with_kd_loss():
    kd_criterion = _needs("KDLoss")(temperature=3.0)
    _, student = _reference_pair("cpu")

    def step(x, teacher_logits):
        return kd_criterion(student(x), teacher_logits)

    compiled = torch.compile(step, fullgraph=True, backend="aot_eager", dynamic=True)
    for batch in (4, 7):
        x, teacher_logits = torch.randn(batch, 6), torch.randn(batch, 3)
        student.zero_grad()
        expected = step(x, teacher_logits)
        expected.backward()
        expected_grads = [p.grad.clone() for p in student.parameters()]
        student.zero_grad()
        actual = compiled(x, teacher_logits)
        actual.backward()
        torch.testing.assert_close(actual, expected)
        for p, e in zip(student.parameters(), expected_grads):
            torch.testing.assert_close(p.grad, e)


# ------------------------------------------------------------------ autograd features

def test_activation_checkpointing_gives_the_same_gradients():
    _, fused = _reference_pair("cpu")
    x = torch.randn(5, 6, requires_grad=True)
    expected, expected_grads = _run(fused, x)
    expected_dx = x.grad.clone()
    x.grad = None
    fused.zero_grad()
    out = torch.utils.checkpoint.checkpoint(fused, x, use_reentrant=False)
    out.square().sum().backward()
    torch.testing.assert_close(out.detach(), expected)
    torch.testing.assert_close(x.grad, expected_dx)
    for p, e in zip(fused.parameters(), expected_grads):
        torch.testing.assert_close(p.grad, e)


@pytest.mark.parametrize("mode", [torch.no_grad, torch.inference_mode])
def test_no_grad_and_inference_mode_save_nothing(mode, monkeypatch):
    calls = []
    original = ops.linear_act_fwd

    def spy(*args):
        calls.append(args[-1])  # store_preact
        return original(*args)

    monkeypatch.setattr(ops, "linear_act_fwd", spy)
    layer = FusedLinear(6, 5, activation="gelu")  # gelu keeps z when a gradient is needed
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        with mode():
            y = layer(torch.randn(4, 6))
        assert calls == [False] and saved == [] and y.grad_fn is None and not y.requires_grad
        layer(torch.randn(4, 6))
    assert calls == [False, True] and len(saved) > 0  # the spy sees the switch


# Same weights, same input, new storage: the interpreter's matmul (numpy) may take another
# SIMD path for differently aligned buffers, so allow fp32 rounding, not bit equality.
SAME = dict(rtol=1e-6, atol=1e-7)


def test_state_dict_deepcopy_and_pickle_round_trips():
    _, fused = _reference_pair("cpu")
    x = torch.randn(3, 6)
    expected = fused(x)
    clone = copy.deepcopy(fused)
    assert all(a is not b for a, b in zip(clone.parameters(), fused.parameters()))
    torch.testing.assert_close(clone(x), expected, **SAME)
    buffer = io.BytesIO()
    torch.save(fused, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    torch.testing.assert_close(loaded(x), expected, **SAME)
    torch.testing.assert_close(pickle.loads(pickle.dumps(fused))(x), expected, **SAME)
    fresh, _ = _reference_pair("cpu")
    torch.manual_seed(5)
    for p in fresh.parameters():
        nn.init.normal_(p)
    fresh.load_state_dict(fused.state_dict())
    torch.testing.assert_close(fresh(x), expected, **SAME)
    assert repr(loaded) == repr(fused)


# ------------------------------------------------------------------ distributed (CPU, gloo)

WORLD = 2
STEPS = 3


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(FusedLinear(4, 8, activation="tanh"),
                         FusedLinear(8, 8, activation="relu"), FusedLinear(8, 2))


def _data():
    generator = torch.Generator().manual_seed(1)
    return (torch.randn(STEPS, 8, 4, generator=generator),
            torch.randn(STEPS, 8, 2, generator=generator))


def _train(model, xs, ys, lr=0.1):
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    for x, y in zip(xs, ys):
        optimizer.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()
    return model


def _dist_worker(rank, port, folder):
    from torch.distributed.fsdp import fully_shard
    from torch.nn.parallel import DistributedDataParallel

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        xs, ys = _data()
        shard = slice(rank * 4, rank * 4 + 4)  # each rank: half of each batch
        ddp = _train(DistributedDataParallel(_mlp()), xs[:, shard], ys[:, shard])
        if rank == 0:
            torch.save(ddp.module.state_dict(), os.path.join(folder, "ddp.pt"))
        try:
            model = _mlp()
            for layer in model:
                fully_shard(layer)
            fully_shard(model)
            _train(model, xs[:, shard], ys[:, shard])
            full = {k: v.full_tensor() for k, v in model.state_dict().items()}
            outcome = full
        except Exception as error:  # recorded, and the test says why it cannot run
            outcome = f"{type(error).__name__}: {error}"
        if rank == 0:
            torch.save(outcome, os.path.join(folder, "fsdp.pt"))
    finally:
        dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def distributed_results():
    """Run DDP and FSDP2 once in 2 spawned CPU processes (gloo); their final weights."""
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with the gloo backend is not available in this build")
    with tempfile.TemporaryDirectory() as folder:
        mp.spawn(_dist_worker, args=(_free_port(), folder), nprocs=WORLD, join=True)
        yield (torch.load(os.path.join(folder, "ddp.pt")),
               torch.load(os.path.join(folder, "fsdp.pt"), weights_only=False))


def _single_process_state():
    xs, ys = _data()
    return _train(_mlp(), xs, ys).state_dict()


def test_ddp_two_cpu_processes_match_one_process(distributed_results):
    ddp_state, _ = distributed_results
    expected = _single_process_state()
    assert ddp_state.keys() == expected.keys()
    # the mean of two half-batch mean gradients is the full-batch mean gradient, up to fp32
    # summation order
    for key, value in expected.items():
        torch.testing.assert_close(ddp_state[key], value, rtol=1e-5, atol=1e-6)


def test_fsdp2_fully_shard_two_cpu_processes_match_one_process(distributed_results):
    _, fsdp_state = distributed_results
    if isinstance(fsdp_state, str):
        pytest.skip(f"FSDP2 fully_shard did not run on the CPU here: {fsdp_state}")
    expected = _single_process_state()
    for key, value in expected.items():
        torch.testing.assert_close(fsdp_state[key], value, rtol=1e-5, atol=1e-6)
