"""Ahead-of-time compile report: build every kernel variant for real GPUs, with no GPU.

Every module of ``fusedact.kernels`` that defines ``compile_variants() -> list[Variant]``
(kernels/variants.py) is enumerated; each variant is compiled for sm_80 (A100) and sm_90
(H100/H200) with ``triton.compile(ASTSource(...), target=GPUTarget("cuda", arch, 32))`` and
its cubin read with the ``cuobjdump`` that ships in Triton's wheel:
``--dump-resource-usage`` (registers, stack frame, local memory, static shared memory) and
``--dump-sass`` (HGMMA: Hopper's wgmma tensor cores; HMMA: Ampere's mma; LDL/STL: local
memory traffic, i.e. spills). Triton's own ``metadata.shared`` is the dynamic shared memory
a launch asks for, and what Triton's launcher checks against the device's limit.

A module may also define ``keep_variant(variant, max_shared_memory) -> bool``: its launchers'
own config pruning. A variant it drops on an arch is reported as "pruned" there (the
runtime never launches it), not as a failure; a variant it keeps must compile, fit the
arch's shared memory, use the tensor cores where ``Variant.tensor_cores`` says so and not
spill inside a loop nor beyond ``SPILL_FRACTION`` of its instructions.

Compiles run in a process pool (spawned with the interpreter off: ``TRITON_INTERPRET=1``
makes ``@triton.jit`` return interpreter functions that cannot be compiled) and results are
cached on disk, keyed by the kernels' source, the variant, the arch and Triton's version.

    python -m fusedact aot-report [--arch 80,90] [--subset] [--json PATH] [--jobs N]
"""
from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import dataclasses
import functools
import hashlib
import importlib
import inspect
import json
import multiprocessing
import os
import pathlib
import pkgutil
import re
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Iterable, Optional, Sequence

#: Shared memory per block a kernel may opt into (bytes), as the runtime reads it off the
#: device (``max_shared_mem``): A100 163 KiB, H100/H200 227 KiB.
SHARED_MEMORY_LIMIT = {80: 163 * 1024, 90: 227 * 1024}
ARCHS = (80, 90)

#: Spill bounds. ptxas puts spilled registers in the stack frame; each LDL/STL is a
#: local-memory access (L1, then L2). Inside a loop (a backward branch in the SASS: a
#: matmul's K loop, a softmax's row loop) a spill is paid every iteration, so none is allowed
#: there. Outside loops (a matmul's epilogue: bias, activation, stores of a 128-register
#: accumulator) it is paid once per program: we allow up to SPILL_FRACTION of the kernel's
#: instructions to be spill accesses, i.e. at most a few percent on a part of the kernel
#: that is itself a small part of the time when K is large.
SPILL_FRACTION = 0.05
#: Inside loops the same reasoning per iteration: spill accesses may be at most 1% of the
#: loop bodies' instructions (a loop body of a few hundred FFMA/HMMA with two LDL is fine;
#: measured on fp32 64x64x32 rowsum sm_90; a K loop that reloads its accumulator is not).
LOOP_SPILL_FRACTION = 0.01
CACHE_SCHEMA = 3  # bump when the fields a worker returns change

_ITEMSIZE = {"fp16": 2, "bf16": 2, "fp32": 4, "fp64": 8}


@dataclasses.dataclass
class Row:
    """One (variant, arch) of the report."""

    module: str
    kernel: str
    label: str
    dtype: str
    arch: int
    num_warps: int
    num_stages: int
    status: str                       # "ok", "pruned" (the runtime never launches it), "failed"
    error: str = ""
    registers: int = -1
    stack_bytes: int = -1             # stack frame: spilled registers live here
    local_bytes: int = -1
    shared_bytes: int = -1            # Triton's dynamic shared memory (what a launch asks for)
    static_shared_bytes: int = -1
    shared_limit: int = 0
    hgmma: bool = False
    hmma: bool = False
    spill_instructions: int = 0       # LDL + STL in the SASS
    loop_spill_instructions: int = 0  # ... of which inside a loop body
    loop_instructions: int = 0        # instructions inside loop bodies
    instructions: int = 0             # SASS instructions in all
    tensor_cores_required: bool = False
    compile_seconds: float = 0.0
    cached: bool = False

    @property
    def problems(self) -> list[str]:
        """Why this row fails the report (empty: it passes)."""
        if self.status == "pruned":
            return []
        if self.status != "ok":
            return [f"does not compile: {self.error.splitlines()[0] if self.error else '?'}"]
        found = []
        if self.shared_bytes > self.shared_limit:
            found.append(f"shared memory {self.shared_bytes} B > {self.shared_limit} B")
        if self.loop_spill_instructions > LOOP_SPILL_FRACTION * max(self.loop_instructions, 1):
            found.append(f"{self.loop_spill_instructions} spill accesses (LDL/STL) in loop bodies "
                         f"of {self.loop_instructions} instructions (bound {LOOP_SPILL_FRACTION:.0%})")
        if self.spill_instructions > SPILL_FRACTION * max(self.instructions, 1):
            found.append(f"spills: {self.spill_instructions} of {self.instructions} instructions "
                         f"are LDL/STL (bound {SPILL_FRACTION:.0%}); stack {self.stack_bytes} B")
        if self.tensor_cores_required and self.arch >= 90 and not self.hgmma:
            found.append("no HGMMA (Hopper tensor cores) in the SASS")
        if self.tensor_cores_required and self.arch == 80 and not self.hmma:
            found.append("no HMMA (Ampere tensor cores) in the SASS")
        return found


# ------------------------------------------------------------------------ discovery

def kernel_modules() -> list[str]:
    """Names of the ``fusedact.kernels`` modules that define ``compile_variants``."""
    import fusedact.kernels as package

    names = []
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        name = f"{package.__name__}.{info.name}"
        if hasattr(importlib.import_module(name), "compile_variants"):
            names.append(name)
    return names


@functools.lru_cache(maxsize=None)
def _variants_of(module_name: str) -> tuple:
    return tuple(importlib.import_module(module_name).compile_variants())


def _kept(module_name: str, variant, arch: int) -> bool:
    keep = getattr(importlib.import_module(module_name), "keep_variant", None)
    return True if keep is None else bool(keep(variant, SHARED_MEMORY_LIMIT[arch]))


def source_hash() -> str:
    """Hash of the device code of ``fusedact.kernels``: every @triton.jit function's source
    and every module-level ``tl.constexpr`` (a kernel may use any helper of any module).
    Host code (launchers, config lists) is left out: the variant's label carries the config.
    """
    import fusedact.kernels as package
    import triton.language as tl

    digest = hashlib.sha256()
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        for name, value in sorted(vars(module).items()):
            function = getattr(value, "fn", None)
            if callable(function) and hasattr(value, "arg_names"):
                try:
                    text = inspect.getsource(function)
                except (OSError, TypeError):
                    text = getattr(value, "src", "") or repr(function)
                digest.update(f"{info.name}.{name}:{text}".encode())
            elif isinstance(value, tl.constexpr):
                digest.update(f"{info.name}.{name}={value.value!r}".encode())
    return digest.hexdigest()[:16]


def find_cuobjdump() -> Optional[str]:
    """The cuobjdump in Triton's wheel (triton/backends/nvidia/bin), else one on PATH."""
    candidates = []
    if os.environ.get("TRITON_CUOBJDUMP_PATH"):
        candidates.append(os.environ["TRITON_CUOBJDUMP_PATH"])
    try:
        import triton.backends.nvidia as nvidia_backend

        for root in nvidia_backend.__path__:
            candidates.append(os.path.join(root, "bin", "cuobjdump"))
    except ImportError:
        pass
    which = shutil.which("cuobjdump")
    if which:
        candidates.append(which)
    for candidate in candidates:
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def unavailable_reason() -> Optional[str]:
    """Why this machine cannot build for NVIDIA GPUs ahead of time (None: it can)."""
    try:
        from triton.backends.compiler import GPUTarget  # noqa: F401
        from triton.compiler import ASTSource  # noqa: F401
        import triton.backends.nvidia.compiler  # noqa: F401
    except Exception as error:  # pragma: no cover - depends on the wheel
        return f"Triton's NVIDIA backend cannot be imported ({error!r})"
    if find_cuobjdump() is None:
        return "no cuobjdump in triton/backends/nvidia/bin nor on PATH"
    return None


# -------------------------------------------------------------------------- compile

def _compile(module_name: str, index: int, label: str, arch: int, cuobjdump: str) -> dict:
    """Worker: compile variant ``index`` of ``module_name`` for ``arch`` and read its cubin."""
    import fusedact.kernels
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    if fusedact.kernels.INTERPRETED:
        raise RuntimeError("the AOT worker was started with TRITON_INTERPRET=1")
    variant = _variants_of(module_name)[index]
    if variant.label != label:
        raise RuntimeError(f"variant {index} of {module_name} changed: {variant.label} != {label}")
    names = list(variant.kernel.arg_names)
    attrs = {}
    for name, kind in variant.signature.items():
        if (kind.startswith("*") or name in variant.divisible_by_16) and kind != "constexpr":
            attrs[(names.index(name),)] = [["tt.divisibility", 16]]
    start = time.perf_counter()
    result = {"status": "ok"}
    try:
        compiled = triton.compile(
            ASTSource(variant.kernel, dict(variant.signature), dict(variant.constexprs), attrs),
            target=GPUTarget("cuda", arch, 32),
            options={"num_warps": variant.num_warps, "num_stages": variant.num_stages})
    except Exception as error:
        return {"status": "failed", "error": f"{type(error).__name__}: {error}"[-2000:],
                "compile_seconds": time.perf_counter() - start}
    result["compile_seconds"] = time.perf_counter() - start
    result["shared_bytes"] = int(compiled.metadata.shared)
    with tempfile.TemporaryDirectory() as folder:
        cubin = os.path.join(folder, "kernel.cubin")
        with open(cubin, "wb") as handle:
            handle.write(compiled.asm["cubin"])
        usage = subprocess.run([cuobjdump, "--dump-resource-usage", cubin], capture_output=True,
                               text=True, timeout=120, check=True).stdout
        sass = subprocess.run([cuobjdump, "--dump-sass", cubin], capture_output=True,
                              text=True, timeout=120, check=True).stdout
    result.update(sass_statistics(sass))
    fields = dict(re.findall(r"\b(REG|STACK|SHARED|LOCAL):(\d+)", usage.split("Function", 1)[-1]))
    result.update(registers=int(fields.get("REG", -1)), stack_bytes=int(fields.get("STACK", -1)),
                  static_shared_bytes=int(fields.get("SHARED", -1)),
                  local_bytes=int(fields.get("LOCAL", -1)),
                  hgmma=bool(re.search(r"\bHGMMA\.", sass)), hmma=bool(re.search(r"\bHMMA\.", sass)))
    return result


_SASS_LINE = re.compile(r"/\*([0-9a-f]{4,})\*/\s+(.*?);")
_BRANCH = re.compile(r"\bBRA(?:\.\w+)*\s+(?:`\()?0x([0-9a-f]+)")
_SPILL = re.compile(r"\b(?:LDL|STL)(?:\.\w+)*\s")


def sass_statistics(sass: str) -> dict:
    """Instruction count, spill accesses, and spill accesses inside loops (the span of a
    backward branch, from its target to the branch) of a cuobjdump --dump-sass listing."""
    addresses, spills, loops = [], [], []
    for match in _SASS_LINE.finditer(sass):
        address, text = int(match.group(1), 16), match.group(2)
        addresses.append(address)
        if _SPILL.search(text + " "):
            spills.append(address)
        branch = _BRANCH.search(text)
        if branch and int(branch.group(1), 16) < address:
            loops.append((int(branch.group(1), 16), address))
    def looped(address):
        return any(start <= address <= end for start, end in loops)

    return {"instructions": len(addresses), "spill_instructions": len(spills),
            "loop_spill_instructions": sum(map(looped, spills)),
            "loop_instructions": sum(map(looped, addresses))}


def _cache_dir() -> pathlib.Path:
    root = os.environ.get("FUSEDACT_AOT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "fusedact", "aot")
    return pathlib.Path(root)


def _cache_key(module_name: str, label: str, arch: int, sources: str) -> str:
    import triton

    text = f"{CACHE_SCHEMA}|{sources}|{triton.__version__}|{module_name}|{label}|sm_{arch}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@contextlib.contextmanager
def _interpreter_off():
    """Spawned workers inherit the environment: compile with real @triton.jit functions."""
    saved = os.environ.pop("TRITON_INTERPRET", None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ["TRITON_INTERPRET"] = saved


def select_subset(items: Sequence[tuple]) -> list[tuple]:
    """A representative subset of (module, index, variant, arch) items kept on their arch.

    For each kernel, every launch config (block sizes, warps, stages) is built on BOTH
    archs, in a tensor-core dtype where the kernel has one (so HGMMA/HMMA are checked for
    every config), the dtype rotating over the configs; then every other constexpr value
    and every dtype of that kernel not yet seen is added once, alternating archs. Pruned
    items are never chosen (they are not built by the runtime either).
    """
    def config_key(variant):
        blocks = tuple(sorted((k, v) for k, v in variant.constexprs.items()
                              if k.startswith(("BLOCK", "GROUP"))))
        return (variant.name, blocks, variant.num_warps, variant.num_stages)

    chosen: dict = {}
    by_config: dict = {}
    for item in items:
        by_config.setdefault(config_key(item[2]), []).append(item)
    for rotation, (key, group) in enumerate(sorted(by_config.items(), key=lambda kv: str(kv[0]))):
        for arch in ARCHS:
            candidates = [item for item in group if item[3] == arch]
            if not candidates:
                continue
            preferred = [item for item in candidates if item[2].tensor_cores] or candidates
            dtypes = sorted({item[2].dtype for item in preferred})
            dtype = dtypes[(rotation + arch // 10) % len(dtypes)]
            pick = next(item for item in preferred if item[2].dtype == dtype)
            chosen[(pick[0], pick[1], arch)] = pick
    seen = {}
    for item in chosen.values():
        for key, value in item[2].constexprs.items():
            seen.setdefault(item[2].name, set()).add((key, repr(value)))
        seen[item[2].name].add(("dtype", item[2].dtype))
    turn = 0
    for item in items:
        variant = item[2]
        wanted = {(k, repr(v)) for k, v in variant.constexprs.items()} | {("dtype", variant.dtype)}
        if not wanted <= seen.setdefault(variant.name, set()):
            arch = ARCHS[turn % len(ARCHS)]
            twin = next((other for other in items if other[:2] == item[:2] and other[3] == arch), item)
            chosen.setdefault((twin[0], twin[1], twin[3]), twin)
            seen[variant.name] |= wanted
            turn += 1
    return sorted(chosen.values(), key=lambda item: (item[0], item[1], item[3]))


def report(archs: Iterable[int] = ARCHS, subset: bool = False, jobs: Optional[int] = None,
           use_cache: bool = True, modules: Optional[Sequence[str]] = None,
           progress=None, match: Optional[str] = None) -> list[Row]:
    """Compile every variant (or the subset) for each arch; return one Row per (variant, arch)."""
    reason = unavailable_reason()
    if reason:
        raise RuntimeError(f"cannot compile ahead of time: {reason}")
    cuobjdump = find_cuobjdump()
    archs = tuple(archs)
    modules = list(modules) if modules is not None else kernel_modules()
    sources = source_hash()
    items = []   # (module, index, variant, arch), for kept variants only
    rows: dict = {}
    for module_name in modules:
        for index, variant in enumerate(_variants_of(module_name)):
            if match and match not in variant.label:
                continue
            for arch in archs:
                row = Row(module_name, variant.name, variant.label, variant.dtype, arch,
                          variant.num_warps, variant.num_stages, "pruned",
                          shared_limit=SHARED_MEMORY_LIMIT[arch],
                          tensor_cores_required=bool(variant.tensor_cores)
                          and variant.dtype in ("fp16", "bf16"))
                rows[(module_name, index, arch)] = row
                if _kept(module_name, variant, arch):
                    row.status = "todo"
                    items.append((module_name, index, variant, arch))
    if subset:
        items = select_subset(items)
        rows = {key: row for key, row in rows.items()
                if row.status == "pruned" or key in {(m, i, a) for m, i, _, a in items}}
    cache = _cache_dir()
    todo = []
    for module_name, index, variant, arch in items:
        row = rows[(module_name, index, arch)]
        path = cache / f"{_cache_key(module_name, variant.label, arch, sources)}.json"
        if use_cache and path.is_file():
            try:
                _apply(row, json.loads(path.read_text()))
                row.cached = True
                continue
            except (OSError, ValueError):
                pass
        todo.append((module_name, index, variant, arch, path))
    jobs = jobs or max(1, min(len(todo), os.cpu_count() or 1))
    if todo:
        context = multiprocessing.get_context("spawn")
        with _interpreter_off(), concurrent.futures.ProcessPoolExecutor(jobs, mp_context=context) as pool:
            futures = {pool.submit(_compile, m, i, v.label, a, cuobjdump): (m, i, v, a, p)
                       for m, i, v, a, p in todo}
            for done, future in enumerate(concurrent.futures.as_completed(futures), 1):
                module_name, index, variant, arch, path = futures[future]
                row = rows[(module_name, index, arch)]
                try:
                    result = future.result()
                except Exception as error:
                    result = {"status": "failed", "error": f"{type(error).__name__}: {error}"}
                _apply(row, result)
                if use_cache and result["status"] in ("ok", "failed") and "Broken" not in row.error:
                    try:
                        cache.mkdir(parents=True, exist_ok=True)
                        path.write_text(json.dumps(result))
                    except OSError:
                        pass
                if progress:
                    progress(done, len(todo), row)
    return sorted(rows.values(), key=lambda r: (r.module, r.kernel, r.arch, r.label))


def _apply(row: Row, result: dict) -> None:
    for key, value in result.items():
        setattr(row, key, value)


# --------------------------------------------------------------------------- output

def to_json(rows: Sequence[Row]) -> dict:
    import triton

    return {"triton": triton.__version__, "spill_fraction_bound": SPILL_FRACTION,
            "loop_spill_fraction_bound": LOOP_SPILL_FRACTION,
            "shared_memory_limit": SHARED_MEMORY_LIMIT,
            "rows": [dict(dataclasses.asdict(row), problems=row.problems) for row in rows]}


def format_table(rows: Sequence[Row]) -> str:
    """A per-kernel summary, then one line per built row, then the failures."""
    lines = []
    groups: dict = {}
    for row in rows:
        groups.setdefault((row.kernel, row.arch), []).append(row)
    lines.append(f"{'kernel':<18}{'arch':>6}{'built':>7}{'pruned':>8}{'failed':>8}"
                 f"{'regs max':>10}{'stack max':>11}{'spill max':>11}{'smem max KiB':>14}"
                 f"  tensor cores (fp16/bf16)")
    for (kernel, arch), group in sorted(groups.items()):
        built = [r for r in group if r.status == "ok"]
        tc = [r for r in built if r.tensor_cores_required]
        mma = "HGMMA" if arch >= 90 else "HMMA"
        have = sum(r.hgmma if arch >= 90 else r.hmma for r in tc)
        lines.append(
            f"{kernel:<18}{'sm_' + str(arch):>6}{len(built):>7}"
            f"{sum(r.status == 'pruned' for r in group):>8}{sum(r.status == 'failed' for r in group):>8}"
            f"{max((r.registers for r in built), default=0):>10}"
            f"{max((r.stack_bytes for r in built), default=0):>11}"
            f"{max((r.spill_instructions for r in built), default=0):>11}"
            f"{max((r.shared_bytes for r in built), default=0) / 1024:>14.1f}"
            f"  {f'{mma} in {have}/{len(tc)}' if tc else 'n/a'}")
    lines.append("")
    lines.append(f"{'arch':<6}{'status':<8}{'regs':>5}{'stack':>6}{'spill':>6}{'loop':>5}"
                 f"{'smem KiB':>9}{'mma':>7}  variant   (spill: LDL/STL; loop: of which in a loop)")
    for row in rows:
        if row.status == "ok":
            mma = "HGMMA" if row.hgmma else ("HMMA" if row.hmma else "-")
            lines.append(f"sm_{row.arch:<3}{row.status:<8}{row.registers:>5}{row.stack_bytes:>6}"
                         f"{row.spill_instructions:>6}{row.loop_spill_instructions:>5}"
                         f"{row.shared_bytes / 1024:>9.1f}{mma:>7}  {row.label}")
        elif row.status != "pruned":  # pruned rows: counted below, listed in the JSON
            lines.append(f"sm_{row.arch:<3}{row.status:<8}{'':>38}  {row.label}")
    failing = [row for row in rows if row.problems]
    lines.append("")
    lines.append(f"{len(rows)} rows: {sum(r.status == 'ok' for r in rows)} built, "
                 f"{sum(r.status == 'pruned' for r in rows)} pruned on their arch by the runtime, "
                 f"{len(failing)} with problems")
    for row in failing:
        lines.append(f"  PROBLEM sm_{row.arch} {row.label}: {'; '.join(row.problems)}")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fusedact aot-report", description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="80,90", help="comma-separated compute capabilities (80,90)")
    parser.add_argument("--subset", action="store_true", help="the representative subset the test builds")
    parser.add_argument("--json", metavar="PATH", help="also write the table as JSON")
    parser.add_argument("--jobs", type=int, default=None, help="compile processes (default: all cores)")
    parser.add_argument("--no-cache", action="store_true", help="rebuild even what is cached")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.add_argument("--match", default=None, help="only variants whose label contains this")
    args = parser.parse_args(list(argv) if argv is not None else None)
    archs = [int(a) for a in args.arch.split(",") if a.strip()]
    unknown = [a for a in archs if a not in SHARED_MEMORY_LIMIT]
    if unknown:
        parser.error(f"--arch: unknown {unknown}; known: {sorted(SHARED_MEMORY_LIMIT)}")
    reason = unavailable_reason()
    if reason:
        print(f"aot-report: cannot compile ahead of time here: {reason}", file=sys.stderr)
        return 2

    def progress(done, total, row):
        if not args.quiet:
            print(f"[{done}/{total}] sm_{row.arch} {row.status} {row.label}", file=sys.stderr, flush=True)

    start = time.perf_counter()
    rows = report(archs, subset=args.subset, jobs=args.jobs, use_cache=not args.no_cache,
                  progress=progress, match=args.match)
    print(format_table(rows))
    print(f"\n({time.perf_counter() - start:.1f} s; cache {_cache_dir()})")
    if args.json:
        pathlib.Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        pathlib.Path(args.json).write_text(json.dumps(to_json(rows), indent=1, default=str))
    return 1 if any(row.problems for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
