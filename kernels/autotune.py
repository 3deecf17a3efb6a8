"""The tuner: one place that picks a launch config for every fusedact kernel.

A kernel file declares its config space as data (a list of ``Config``) next to the kernel,
and a ``Tuner`` owns the rest:
- pruning: configs whose blocks are far larger than the problem, or whose estimated shared
  memory exceeds the device's, are dropped before anything is timed;
- keys: the tuning key buckets the batch-like dimension to a power of two, so a new batch
  size reuses an earlier choice;
- modes: under the interpreter exactly one config runs (the kernel's declared
  ``interpreter_config``: ``triton.autotune`` cannot run there, and timing interpreted code
  means nothing); ``FUSEDACT_AUTOTUNE=0`` picks by the heuristic without timing; otherwise
  each config is timed once per key with ``triton.testing.do_bench`` and the fastest kept.
- a config that fails to compile is skipped with a warning, never fatal while another works.

Kernels here write only their outputs, never their inputs, so re-running them to time a
config is safe.
"""
from __future__ import annotations

import dataclasses
import os
import threading
import warnings
from typing import Callable, Sequence

from . import INTERPRETED


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

    def __str__(self) -> str:
        blocks = ", ".join(f"{k}={v}" for k, v in self.kwargs)
        return f"{blocks}, num_warps={self.num_warps}, num_stages={self.num_stages}"


def bucket(n: int) -> int:
    """The power of two at or above ``n`` (1 for n <= 1): the tuning key of a batch dim."""
    return 1 if n <= 1 else 1 << (int(n) - 1).bit_length()


def autotune_mode() -> str:
    """"interpret", "heuristic" (FUSEDACT_AUTOTUNE=0) or "tune"."""
    if INTERPRETED:
        return "interpret"
    if os.environ.get("FUSEDACT_AUTOTUNE", "1").strip().lower() in ("0", "off", "false", "no"):
        return "heuristic"
    return "tune"


class Tuner:
    """Picks and caches a ``Config`` per key for one kernel.

    ``configs``: the config space. ``interpreter_config``: the one config run under the
    interpreter (must be in ``configs``, so the interpreted code is also a compiled one).
    ``prune(config, problem) -> bool``: keep the config for this problem.
    ``heuristic(configs, problem) -> Config``: the choice made without timing.
    """

    def __init__(self, name: str, configs: Sequence[Config], interpreter_config: Config,
                 prune: Callable[[Config, dict], bool],
                 heuristic: Callable[[Sequence[Config], dict], Config]):
        if interpreter_config not in configs:
            raise ValueError(f"{name}: the interpreter config must be one of the configs")
        self.name = name
        self.configs = list(configs)
        self.interpreter_config = interpreter_config
        self.prune = prune
        self.heuristic = heuristic
        self._chosen: dict[tuple, Config] = {}
        self._lock = threading.Lock()

    def candidates(self, problem: dict) -> list[Config]:
        kept = [c for c in self.configs if self.prune(c, problem)]
        return kept or [self.heuristic(self.configs, problem)]

    def choose(self, key: tuple, problem: dict, run: Callable[[Config], None]) -> Config:
        """The config for ``key``; ``run(config)`` launches the kernel once with it."""
        mode = autotune_mode()
        if mode == "interpret":
            return self.interpreter_config
        with self._lock:
            if key in self._chosen:
                return self._chosen[key]
        candidates = self.candidates(problem)
        if mode == "heuristic" or len(candidates) == 1:
            best = self.heuristic(candidates, problem)
        else:
            best = self._time(candidates, run)
        with self._lock:
            self._chosen[key] = best
        return best

    def _time(self, candidates: Sequence[Config], run: Callable[[Config], None]) -> Config:
        from triton.testing import do_bench

        timings = {}
        for config in candidates:
            try:
                timings[config] = do_bench(lambda: run(config), warmup=5, rep=20)
            except Exception as error:  # a config that cannot compile or launch here
                warnings.warn(f"{self.name}: config {config} failed ({error!r}); skipped")
        if not timings:
            raise RuntimeError(f"{self.name}: no config could run")
        return min(timings, key=timings.get)
