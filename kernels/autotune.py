"""The tuner: one place that picks a launch config for every fusedact kernel.

A kernel file declares its config space as data (a list of ``Config``) next to the kernel,
and a ``Tuner`` owns the rest.

Pruning
    Before anything is timed, configs whose estimated shared memory exceeds the device's
    (``shared_memory=`` callable against ``problem["max_shared_memory"]``) or that the
    kernel's own ``prune(config, problem)`` rejects (e.g. blocks far larger than the
    problem) are dropped.
Keys
    The launcher's key buckets the batch-like dimension to a power of two (``bucket``), so a
    new batch size or sequence length reuses an earlier choice.
Modes (``FUSEDACT_AUTOTUNE``)
    ``tune`` (default on a GPU): each surviving config is timed once per key and the fastest
    is kept and persisted. ``heuristic`` (also ``0``/``off``): nothing is ever timed; a tuned
    entry already on disk or shipped is used, else the kernel's documented ``heuristic``
    rule picks from the shape. ``interpret``: exactly the kernel's ``interpreter_config``;
    always the mode under ``TRITON_INTERPRET=1`` (``triton.autotune`` cannot run there, and
    timing interpreted code means nothing).
Where a choice comes from, in order
    this process's memory -> the local cache file -> the tables shipped in the package
    (``fusedact/kernels/tuned/*.json``) -> timing (``tune``) or the rule (``heuristic``).
Persistence
    One JSON file per GPU model in ``FUSEDACT_CACHE_DIR`` (default
    ``$XDG_CACHE_HOME/fusedact`` or ``~/.cache/fusedact``). An entry is keyed by kernel
    name, Triton version, a hash of the kernel's source (Triton's ``cache_key`` of the jit
    function, which covers the jit functions it calls; else the source of the module that
    declared the tuner) and the launcher's key (dtype, shape bucket, ...); the GPU model is
    the file. Writes take an ``fcntl`` lock on ``.lock`` in the folder, re-read the file,
    merge, write a temporary file and ``os.replace`` it, so concurrent processes never
    leave a torn or truncated file and never lose each other's entries. A file that cannot
    be read (corrupt, not JSON, a link out of the folder) or written gives one warning and
    the run goes on. JSON only: nothing is ever unpickled or executed.
Time budget (``FUSEDACT_TUNE_BUDGET_S``, default 30 s)
    Tuning one key stops timing further configs once the budget is spent (the heuristic's
    pick is always timed first, so a cut-short tuning is never worse than the rule; its
    result is persisted, marked ``budget_hit``, so later processes do not pay again). Every
    tuning is recorded in ``Tuner.history`` and logged on the ``fusedact.autotune`` logger.
Several processes of one job (``torch.distributed`` initialised, world size > 1)
    Only rank 0 decides (cache, tables, timing); the choice is broadcast with
    ``broadcast_object_list`` so every rank runs the same config. Every rank must therefore
    launch the same keys in the same order (the usual SPMD program); where that does not
    hold, set ``FUSEDACT_TUNE_DISTRIBUTED=0`` (each rank decides alone; shared cache files
    still make them agree once tuned) or pre-tune with ``python -m fusedact tune``.
A config that fails to compile or launch is skipped with a warning, never fatal while
another works.

Kernels here write only their outputs, never their inputs, so re-running them to time a
config is safe.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import inspect
import json
import logging
import os
import re
import sys
import tempfile
import threading
import time
import warnings
from typing import Any, Callable, Iterator, Optional, Sequence

from . import INTERPRETED

logger = logging.getLogger("fusedact.autotune")

ENV_MODE = "FUSEDACT_AUTOTUNE"
ENV_CACHE_DIR = "FUSEDACT_CACHE_DIR"
ENV_BUDGET = "FUSEDACT_TUNE_BUDGET_S"
ENV_DISTRIBUTED = "FUSEDACT_TUNE_DISTRIBUTED"
MODES = ("tune", "heuristic", "interpret")
DEFAULT_BUDGET_S = 30.0
FORMAT = "fusedact-autotune"
FORMAT_VERSION = 1
#: Larger cache files are refused unread: a real one holds a few hundred small entries.
MAX_FILE_BYTES = 16 << 20
#: Tables shipped in the package, used when no local entry exists.
SHIPPED_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tuned")


@dataclasses.dataclass(frozen=True)
class Config:
    """One launch configuration: constexpr block sizes plus warps and pipeline stages."""

    kwargs: tuple  # ((name, value), ...) of constexpr meta-parameters, hashable
    num_warps: int = 4
    num_stages: int = 3

    @staticmethod
    def make(num_warps: int = 4, num_stages: int = 3, **kwargs) -> "Config":
        return Config(tuple(sorted(kwargs.items())), num_warps, num_stages)

    def meta(self) -> dict:
        return dict(self.kwargs)

    def to_json(self) -> dict:
        return {"kwargs": self.meta(), "num_warps": self.num_warps, "num_stages": self.num_stages}

    @staticmethod
    def from_json(data: Any) -> "Config":
        """The config a ``to_json`` dict describes; ValueError for anything else."""
        if not isinstance(data, dict) or not isinstance(data.get("kwargs"), dict):
            raise ValueError(f"not a config: {data!r}")
        values = list(data["kwargs"].values()) + [data.get("num_warps"), data.get("num_stages")]
        if not all(isinstance(v, (int, bool)) for v in values):
            raise ValueError(f"config values must be integers: {data!r}")
        return Config.make(num_warps=data["num_warps"], num_stages=data["num_stages"],
                           **data["kwargs"])

    def __str__(self) -> str:
        blocks = ", ".join(f"{k}={v}" for k, v in self.kwargs)
        return f"{blocks}, num_warps={self.num_warps}, num_stages={self.num_stages}"


def bucket(n: int) -> int:
    """The power of two at or above ``n`` (1 for n <= 1): the tuning key of a batch dim."""
    return 1 if n <= 1 else 1 << (int(n) - 1).bit_length()


def autotune_mode() -> str:
    """"interpret", "heuristic" or "tune": see the module docstring.

    Raises ValueError for a ``FUSEDACT_AUTOTUNE`` value it does not know.
    """
    if INTERPRETED:
        return "interpret"
    raw = os.environ.get(ENV_MODE, "").strip().lower()
    if raw in ("", "1", "on", "true", "yes", "tune"):
        return "tune"
    if raw in ("0", "off", "false", "no", "heuristic"):
        return "heuristic"
    if raw in ("interpret", "interpreter", "single"):
        return "interpret"
    raise ValueError(f"{ENV_MODE} must be one of tune, heuristic, interpret (or 1/0), got {raw!r}")


def tune_budget_s() -> float:
    """Seconds one key may spend timing configs (``FUSEDACT_TUNE_BUDGET_S``; <= 0: no limit)."""
    raw = os.environ.get(ENV_BUDGET)
    if raw is None or not raw.strip():
        return DEFAULT_BUDGET_S
    try:
        budget = float(raw)
    except ValueError:
        warnings.warn(f"{ENV_BUDGET}={raw!r} is not a number; using {DEFAULT_BUDGET_S} s")
        return DEFAULT_BUDGET_S
    return budget if budget > 0 else float("inf")


# --------------------------------------------------------------------- device identity

def device_name(index: Optional[int] = None) -> str:
    """The GPU model that tuned results belong to (one cache file each)."""
    import torch

    if index is None:
        index = torch.cuda.current_device()
    return torch.cuda.get_device_name(index)


def triton_version() -> str:
    import triton

    return triton.__version__


def source_hash(kernel: Any) -> str:
    """A short hash of a kernel's source.

    ``kernel``: a ``@triton.jit`` function (its ``cache_key``, which Triton derives from the
    source of the function and every jit function it calls), an interpreted kernel or a
    plain function (its source), or a string (taken as the hash itself).
    """
    if isinstance(kernel, str):
        return kernel
    text = None
    key = getattr(kernel, "cache_key", None)  # JITFunction, triton 3.6 and 3.9
    if isinstance(key, str):
        text = key
    else:
        src = getattr(kernel, "src", None)
        if isinstance(src, str):
            text = src
        else:
            fn = getattr(kernel, "fn", kernel)  # InterpretedFunction wraps the function
            try:
                text = inspect.getsource(fn)
            except (OSError, TypeError):
                text = repr(kernel)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _file_hash(path: Optional[str]) -> str:
    if not path:
        return "unknown"
    try:
        with open(path, "rb") as handle:
            return hashlib.sha256(handle.read()).hexdigest()[:16]
    except OSError:
        return "unknown"


# ------------------------------------------------------------------------- the cache

def cache_dir() -> str:
    """The folder of the tuning cache: ``FUSEDACT_CACHE_DIR``, else the user's cache dir."""
    configured = os.environ.get(ENV_CACHE_DIR)
    if configured:
        return os.path.abspath(os.path.expanduser(configured))
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.abspath(os.path.join(base, "fusedact"))


def device_file_name(device: str) -> str:
    """``NVIDIA H100 80GB HBM3`` -> ``NVIDIA_H100_80GB_HBM3.json``: no separators, no dots
    in front, so the file always lies directly in its folder."""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", device).strip("_-")[:120]
    return f"{stem or 'device'}.json"


def _inside(path: str, folder: str) -> bool:
    """True when ``path`` (links resolved) lies directly in ``folder`` (links resolved)."""
    real = os.path.realpath(path)
    return os.path.dirname(real) == os.path.realpath(folder)


_warned: set = set()


def _warn_once(tag: str, message: str) -> None:
    if tag not in _warned:
        _warned.add(tag)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


def read_table(path: str, folder: str) -> dict:
    """The entries of one cache or shipped file; {} with a warning when it cannot be used.

    Refuses (warns, returns {}) a path outside ``folder``, a link that leads out of it, a
    file over ``MAX_FILE_BYTES``, and anything that is not our JSON format. JSON only: no
    pickle, no code, is ever loaded.
    """
    if not os.path.lexists(path):
        return {}
    if not _inside(path, folder):
        _warn_once(f"outside:{path}", f"fusedact autotune: refusing {path}: it lies outside the "
                   f"cache folder {folder}; tuning without it")
        return {}
    try:
        if os.path.getsize(path) > MAX_FILE_BYTES:
            raise ValueError(f"larger than {MAX_FILE_BYTES} bytes")
        with open(path, "rb") as handle:
            data = json.loads(handle.read().decode("utf-8"))
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError("not a fusedact autotune file")
        if data.get("version") != FORMAT_VERSION:
            raise ValueError(f"format version {data.get('version')!r}, expected {FORMAT_VERSION}")
        entries = data.get("entries")
        if not isinstance(entries, dict):
            raise ValueError("no 'entries' object")
        return {k: v for k, v in entries.items() if isinstance(k, str) and isinstance(v, dict)}
    except (OSError, ValueError, UnicodeDecodeError) as error:  # JSONDecodeError is a ValueError
        _warn_once(f"corrupt:{path}:{error}", f"fusedact autotune: ignoring the cache file {path} "
                   f"({error}); the run continues and will rewrite it")
        return {}


@contextlib.contextmanager
def _locked(folder: str) -> Iterator[None]:
    """An exclusive lock shared by every process using ``folder`` (fcntl; none elsewhere:
    there os.replace alone keeps the file whole, but concurrent merges may drop entries)."""
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    fd = os.open(os.path.join(folder, ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def write_entries(device: str, new_entries: dict, folder: Optional[str] = None) -> bool:
    """Merge ``new_entries`` into ``device``'s file, atomically; False (and one warning) on
    failure. Entries other processes wrote meanwhile are kept."""
    folder = folder or cache_dir()
    path = os.path.join(folder, device_file_name(device))
    try:
        os.makedirs(folder, exist_ok=True)
        with _locked(folder):
            entries = read_table(path, folder)
            if not _inside(path, folder):
                raise OSError(f"{path} leads outside {folder}")
            entries.update(new_entries)
            data = {"format": FORMAT, "version": FORMAT_VERSION, "device": device,
                    "entries": dict(sorted(entries.items()))}
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=folder)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    json.dump(data, handle, indent=1)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        return True
    except OSError as error:
        _warn_once(f"write:{folder}", f"fusedact autotune: cannot write the cache in {folder} "
                   f"({error}); tuned configs will not persist, the run continues")
        return False


def entry_key(kernel_name: str, triton: str, src_hash: str, key: tuple) -> str:
    """The string an entry is stored under: kernel | triton version | source hash | key."""
    return f"{kernel_name}|triton={triton}|src={src_hash}|{json.dumps(_jsonable(key))}"


def _jsonable(key: Any) -> Any:
    if isinstance(key, (tuple, list)):
        return [_jsonable(k) for k in key]
    if key is None or isinstance(key, (bool, int, float, str)):
        return key
    return str(key)


# ---------------------------------------------------------------- torch.distributed

def _distributed() -> Optional[tuple]:
    """(rank, world_size) when rank 0 should decide for a torch.distributed group, else None."""
    if os.environ.get(ENV_DISTRIBUTED, "1").strip().lower() in ("0", "off", "false", "no"):
        return None
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()):
        return None
    world = dist.get_world_size()
    return (dist.get_rank(), world) if world > 1 else None


def _broadcast_from_rank0(payload: Any) -> Any:
    import torch.distributed as dist

    box = [payload]
    dist.broadcast_object_list(box, src=0)  # pickles Python objects: only our small dicts
    return box[0]


# -------------------------------------------------------------------------- the tuner

@dataclasses.dataclass
class TuningRecord:
    """What one tuning did: reported by ``python -m fusedact tune`` and logged."""

    kernel: str
    key: tuple
    seconds: float
    timed: int          # configs timed
    candidates: int     # configs left after pruning
    failed: int         # configs that failed to compile or launch
    budget_hit: bool
    best: Config
    best_ms: float
    heuristic: Config   # the rule's pick (always timed, first)
    heuristic_ms: float


#: Every Tuner constructed in this process, by name (the CLI lists and reports them).
TUNERS: dict = {}
_retuning = False


@contextlib.contextmanager
def retuning() -> Iterator[None]:
    """Within the block, keys new to this process are timed again even when the cache or a
    shipped table has them (``python -m fusedact tune --force``); results are persisted."""
    global _retuning
    previous, _retuning = _retuning, True
    try:
        yield
    finally:
        _retuning = previous


def _heuristic_json(record: "TuningRecord") -> dict:
    ms = record.heuristic_ms
    return {"config": record.heuristic.to_json(), "ms": None if ms != ms else round(ms, 6)}


def _default_bench(fn: Callable[[], None]) -> float:
    from triton.testing import do_bench

    return do_bench(fn, warmup=5, rep=20)


#: The timer ``fn -> milliseconds`` used when a Tuner is given none (tests replace it).
BENCH: Callable[[Callable[[], None]], float] = _default_bench


class Tuner:
    """Picks, caches and persists a ``Config`` per key for one kernel.

    ``configs``: the config space. ``interpreter_config``: the one config run under the
    interpreter (must be in ``configs``, so the interpreted code is also a compiled one).
    ``prune(config, problem) -> bool``: keep the config for this problem.
    ``heuristic(configs, problem) -> Config``: the choice made without timing.
    Optional: ``kernel``, the jit function (or a source-hash string) whose source keys the
    persisted entries (default: the source file of the module that builds the Tuner);
    ``shared_memory(config, problem) -> bytes``, checked against
    ``problem["max_shared_memory"]``; ``bench(fn) -> ms``, the timer (default
    ``triton.testing.do_bench``); ``persist=False`` keeps choices in memory only.
    """

    def __init__(self, name: str, configs: Sequence[Config], interpreter_config: Config,
                 prune: Callable[[Config, dict], bool],
                 heuristic: Callable[[Sequence[Config], dict], Config], *,
                 kernel: Any = None,
                 shared_memory: Optional[Callable[[Config, dict], int]] = None,
                 bench: Optional[Callable[[Callable[[], None]], float]] = None,
                 persist: bool = True):
        if interpreter_config not in configs:
            raise ValueError(f"{name}: the interpreter config must be one of the configs")
        self.name = name
        self.configs = list(configs)
        self.interpreter_config = interpreter_config
        self.prune = prune
        self.heuristic = heuristic
        self.kernel = kernel
        self.shared_memory = shared_memory
        self.bench = bench
        self.persist = persist
        self.history: list[TuningRecord] = []
        self._chosen: dict[tuple, Config] = {}
        self._lock = threading.RLock()
        self._src_hash: Optional[str] = None
        # Only a path is kept now; the file is hashed on first use (nothing at import time).
        self._defined_in = None
        if kernel is None:
            frame = sys._getframe(1)
            self._defined_in = frame.f_globals.get("__file__")
        TUNERS[name] = self

    # -- pruning

    def candidates(self, problem: dict) -> list[Config]:
        """The configs worth timing for ``problem``; never empty."""
        fitting = self.configs
        if self.shared_memory is not None and "max_shared_memory" in problem:
            fitting = [c for c in self.configs
                       if self.shared_memory(c, problem) <= problem["max_shared_memory"]]
        kept = [c for c in fitting if self.prune(c, problem)]
        return kept or [self.heuristic(fitting or self.configs, problem)]

    # -- choosing

    def choose(self, key: tuple, problem: dict, run: Callable[[Config], None]) -> Config:
        """The config for ``key``; ``run(config)`` launches the kernel once with it.

        The mode is read when a key is first seen in this process; later calls for the key
        are one dict lookup (this sits on every launch).
        """
        if INTERPRETED:
            return self.interpreter_config
        chosen = self._chosen.get(key)  # a dict read is atomic: no lock on the hot path
        if chosen is not None:
            return chosen
        mode = autotune_mode()
        with self._lock:
            if key in self._chosen:
                return self._chosen[key]
            group = _distributed()
            if mode == "interpret":
                best = self.interpreter_config
            elif group is None:
                best = self._decide(key, problem, run, mode)
            else:
                best = self._decide_as_group(key, problem, run, mode, group[0])
            self._chosen[key] = best
            return best

    def _decide_as_group(self, key, problem, run, mode, rank) -> Config:
        """Rank 0 decides and broadcasts; the others take its config."""
        payload = None
        failure = None
        if rank == 0:
            try:
                payload = {"key": _jsonable(key),
                           "config": self._decide(key, problem, run, mode).to_json()}
            except Exception as error:  # tell the other ranks instead of leaving them waiting
                failure = error
                payload = {"key": _jsonable(key), "error": f"{type(error).__name__}: {error}"}
        payload = _broadcast_from_rank0(payload)
        if failure is not None:
            raise failure
        if "error" in payload:
            raise RuntimeError(f"{self.name}: rank 0 could not choose a config: {payload['error']}")
        if payload["key"] != _jsonable(key):
            _warn_once(f"rankkey:{self.name}", f"fusedact autotune: {self.name} on rank {rank} "
                       f"launched key {key} while rank 0 launched {payload['key']}; using rank "
                       f"0's config. Ranks must launch the same shapes in the same order, or "
                       f"set {ENV_DISTRIBUTED}=0")
        config = Config.from_json(payload["config"])
        if config not in self.configs:
            raise RuntimeError(f"{self.name}: rank 0 chose {config}, which is not in this rank's "
                               "config space (different fusedact versions?)")
        return config

    def _decide(self, key, problem, run, mode) -> Config:
        """Local cache -> shipped tables -> timing (tune) or the rule (heuristic)."""
        device = self._device(problem)
        found = None if (_retuning and mode == "tune") else self.lookup(key, device)
        if found is not None:
            return found
        candidates = self.candidates(problem)
        if mode == "heuristic" or len(candidates) == 1:
            return self.heuristic(candidates, problem)
        best, record, timings = self._time(key, candidates, problem, run)
        if self.persist:
            self._store(key, device, best, record, timings)
        return best

    def _device(self, problem: dict) -> str:
        return problem.get("device_name") or device_name(problem.get("device_index"))

    def source_hash(self) -> str:
        if self._src_hash is None:
            if self.kernel is not None:
                self._src_hash = source_hash(self.kernel)
            else:
                self._src_hash = "file-" + _file_hash(self._defined_in)
        return self._src_hash

    def entry_key(self, key: tuple) -> str:
        return entry_key(self.name, triton_version(), self.source_hash(), key)

    def lookup(self, key: tuple, device: str) -> Optional[Config]:
        """A persisted config for ``key`` on ``device``: the local cache (exact match on
        kernel, Triton version, source hash and key), else a shipped table (match on kernel
        and key; any config still in the space is a valid launch). None when neither has one.
        """
        if not self.persist:
            return None
        folder = cache_dir()
        entry = read_table(os.path.join(folder, device_file_name(device)), folder).get(self.entry_key(key))
        config = self._valid(entry)
        if config is not None:
            return config
        shipped = read_table(os.path.join(SHIPPED_DIR, device_file_name(device)), SHIPPED_DIR)
        wanted = json.dumps(_jsonable(key))
        for entry in shipped.values():
            if entry.get("kernel") == self.name and json.dumps(entry.get("key")) == wanted:
                config = self._valid(entry)
                if config is not None:
                    return config
        return None

    def _valid(self, entry: Optional[dict]) -> Optional[Config]:
        if entry is None:
            return None
        try:
            config = Config.from_json(entry.get("config"))
        except (ValueError, TypeError, KeyError):
            return None
        return config if config in self.configs else None

    def _time(self, key, candidates, problem, run):
        bench = self.bench or BENCH
        budget = tune_budget_s()
        first = self.heuristic(candidates, problem)  # timed first: a cut-short tuning keeps it
        order = [first] + [c for c in candidates if c != first]
        timings: dict[Config, float] = {}
        failed = 0
        budget_hit = False
        start = time.perf_counter()
        for config in order:
            if timings and time.perf_counter() - start > budget:
                budget_hit = True
                break
            try:
                timings[config] = float(bench(lambda: run(config)))
            except Exception as error:  # a config that cannot compile or launch here
                failed += 1
                warnings.warn(f"fusedact autotune: {self.name}: config {config} failed "
                              f"({type(error).__name__}: {error}); trying the next", RuntimeWarning)
        seconds = time.perf_counter() - start
        if not timings:
            raise RuntimeError(f"{self.name}: none of {len(order)} configs could run for key {key}")
        best = min(timings, key=timings.get)
        record = TuningRecord(self.name, key, seconds, len(timings), len(candidates), failed,
                              budget_hit, best, timings[best], first,
                              timings.get(first, float("nan")))
        self.history.append(record)
        logger.info("%s %s: %s (%.4f ms) after timing %d of %d configs in %.2f s%s",
                    self.name, key, best, timings[best], len(timings), len(candidates), seconds,
                    " (time budget reached)" if budget_hit else "")
        if budget_hit:
            warnings.warn(f"fusedact autotune: {self.name} {key}: the {budget:g} s budget "
                          f"({ENV_BUDGET}) ran out after {len(timings)} of {len(candidates)} "
                          f"configs; using (and caching) the best so far. `python -m fusedact tune "
                          f"--force` with a larger budget re-tunes it", RuntimeWarning)
        return best, record, timings

    def _store(self, key, device, best, record, timings) -> None:
        entry = {"kernel": self.name, "key": _jsonable(key), "triton": triton_version(),
                 "src": self.source_hash(), "config": best.to_json(),
                 "ms": round(record.best_ms, 6), "tuning_s": round(record.seconds, 3),
                 "timed": record.timed, "candidates": record.candidates,
                 "budget_hit": record.budget_hit, "heuristic": _heuristic_json(record),
                 "timings_ms": {str(c): round(t, 6) for c, t in timings.items()},
                 "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        write_entries(device, {self.entry_key(key): entry})

    def chosen(self) -> dict:
        """key -> config chosen so far in this process."""
        with self._lock:
            return dict(self._chosen)

    def forget(self) -> None:
        """Drop this process's in-memory choices (the disk cache is untouched)."""
        with self._lock:
            self._chosen.clear()
