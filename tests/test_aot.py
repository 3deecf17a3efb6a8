"""Every kernel builds for real GPUs (sm_80, sm_90), checked on a CPU-only machine.

The interpreter tests prove the numbers; these prove the GPU build: each launch the
launchers can make compiles, fits the arch's shared memory, uses the tensor cores (HGMMA on
Hopper, HMMA on Ampere) in fp16/bf16 matmuls, and does not spill in a loop or heavily
elsewhere (bounds justified in fusedact/aot.py). Variants the runtime prunes on an arch
(its shared-memory rule) are reported, not built.

Subset (to fit CI, ~1-3 min on 2 cores uncached): ``aot.select_subset`` builds every launch
config (block sizes, warps, stages) of every kernel of every module with
``compile_variants`` on BOTH archs, in a tensor-core dtype where the kernel has one (the
dtype rotating over the configs), then adds each remaining constexpr value and dtype of each
kernel once (activation, HAS_BIAS, STORE_PREACT, ALLOW_TF32, layouts, fp32, fp64, ...),
alternating archs. ``python -m fusedact aot-report`` builds the full list. Results are cached
(FUSEDACT_AOT_CACHE, default ~/.cache/fusedact/aot) keyed by the device code's hash, the
variant, the arch and Triton's version, so an unchanged kernel is not rebuilt.
"""
import os

import pytest

from fusedact import aot

_REASON = aot.unavailable_reason()
pytestmark = pytest.mark.skipif(_REASON is not None, reason=f"no AOT build here: {_REASON}")


@pytest.fixture(scope="module")
def rows():
    return aot.report(aot.ARCHS, subset=True, jobs=os.cpu_count())


def _built(rows):
    return [row for row in rows if row.status != "pruned"]


def _fmt(rows, attribute="problems"):
    return "\n".join(f"sm_{r.arch} {r.label}: {getattr(r, attribute)}" for r in rows)


def test_discovers_every_kernel_module():
    modules = aot.kernel_modules()
    assert "fusedact.kernels.linear_act" in modules
    for module in modules:
        assert aot._variants_of(module), f"{module}.compile_variants() is empty"


def test_variant_labels_are_unique():
    for module in aot.kernel_modules():
        labels = [v.label for v in aot._variants_of(module)]
        assert len(labels) == len(set(labels)), f"{module}: duplicate variants"


def test_subset_covers_every_kernel_config_and_arch(rows):
    built = {(row.module, row.kernel, row.arch) for row in _built(rows)}
    for module in aot.kernel_modules():
        for variant in aot._variants_of(module):
            kept_on = [arch for arch in aot.ARCHS if aot._kept(module, variant, arch)]
            for arch in kept_on:
                assert (module, variant.name, arch) in built, f"{variant.name} never built on sm_{arch}"
    # every launch config that some arch keeps is built at least once
    index = {(m, i): v for m in aot.kernel_modules() for i, v in enumerate(aot._variants_of(m))}
    built_configs = {(r.module, r.kernel, r.num_warps, r.num_stages, _blocks(r.label))
                     for r in _built(rows)}
    for (module, _), variant in index.items():
        if any(aot._kept(module, variant, arch) for arch in aot.ARCHS):
            key = (module, variant.name, variant.num_warps, variant.num_stages,
                   _blocks(variant.label))
            assert key in built_configs, f"config of {variant.label} never built"


def _blocks(label):
    flags = label.split(";")[1].strip().split(",")
    return tuple(flag for flag in flags if flag.startswith(("BLOCK", "GROUP")))


def test_kept_variants_compile(rows):
    failed = [row for row in rows if row.status not in ("ok", "pruned")]
    assert not failed, "do not compile:\n" + _fmt(failed, "error")


def test_shared_memory_fits_the_arch(rows):
    over = [row for row in _built(rows) if row.shared_bytes > row.shared_limit]
    assert not over, "over the arch's shared memory:\n" + _fmt(over, "shared_bytes")


def test_matmuls_use_the_tensor_cores(rows):
    matmuls = [row for row in _built(rows) if row.tensor_cores_required]
    assert any(row.arch == 90 for row in matmuls) and any(row.arch == 80 for row in matmuls)
    missing = [row for row in matmuls if not (row.hgmma if row.arch >= 90 else row.hmma)]
    assert not missing, "no HGMMA (sm_90) / HMMA (sm_80):\n" + _fmt(missing, "label")


def test_no_spills_in_loops_and_few_elsewhere(rows):
    spilling = [row for row in _built(rows)
                if row.loop_spill_instructions > aot.LOOP_SPILL_FRACTION * max(row.loop_instructions, 1)
                or row.spill_instructions > aot.SPILL_FRACTION * max(row.instructions, 1)]
    assert not spilling, "spills:\n" + _fmt(spilling)


def test_pruning_is_the_runtimes_rule():
    """keep_variant is the launchers' _keep_config: same answer for the problem the launcher
    builds from real tensors, at each arch's shared-memory limit."""
    import torch

    from fusedact.kernels import linear_act

    dtypes = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32,
              "fp64": torch.float64}
    previous = torch.backends.cuda.matmul.allow_tf32
    try:
        for variant in linear_act.compile_variants():
            if variant.name == "act_grad":
                continue
            meta = variant.constexprs
            config = linear_act._cfg(meta["BLOCK_M"], meta["BLOCK_N"], meta["BLOCK_K"],
                                     variant.num_warps, variant.num_stages, meta["GROUP_M"])
            torch.backends.cuda.matmul.allow_tf32 = bool(meta["ALLOW_TF32"])
            tensor = torch.empty(0, dtype=dtypes[variant.dtype])
            for arch, limit in aot.SHARED_MEMORY_LIMIT.items():
                problem = dict(linear_act._problem(1 << 16, 1 << 16, 1 << 16, tensor),
                               max_shared_memory=limit)
                assert linear_act.keep_variant(variant, limit) == linear_act._keep_config(config, problem)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous


def test_sass_statistics_finds_loop_spills():
    sass = """
        /*0000*/                   MOV R1, c[0x0][0x28] ;
        /*0010*/                   STL [R1], R2 ;
        /*0020*/                   HMMA.16816.F32 R4, R8, R12, R4 ;
        /*0030*/                   LDL R2, [R1] ;
        /*0040*/               @P0 BRA 0x20 ;
        /*0050*/                   LDL R3, [R1+0x4] ;
        /*0060*/                   EXIT ;
    """
    stats = aot.sass_statistics(sass)
    assert stats == {"instructions": 7, "spill_instructions": 3, "loop_spill_instructions": 1,
                     "loop_instructions": 3}
