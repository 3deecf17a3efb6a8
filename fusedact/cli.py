"""The fusedact command line: ``python -m fusedact <command> [args]``.

Each command lives in its own module with a ``main(argv) -> int``; this file only routes.
"""
from __future__ import annotations

import importlib
import sys
from typing import Optional, Sequence

#: command -> (module with main(argv), or "module:function", one-line help)
COMMANDS = {
    "info": ("fusedact.cli", "versions, devices and which backend each op takes"),
    "tune": ("fusedact.tune_cli", "pre-tune kernels for given shapes and dtypes (needs a GPU)"),
    "cache": ("fusedact.tune_cli:cache_main", "show, locate (path) or clear the tuning cache"),
    "check": ("fusedact.check_cli", "every op here vs the float64 reference; exit 1 on a fail"),
    "aot-report": ("fusedact.aot", "compile every kernel variant for sm_80/sm_90 with no GPU: "
                                   "registers, spills, shared memory, tensor cores"),
}


def info(argv: Sequence[str]) -> int:
    import torch
    import triton

    import fusedact
    from fusedact import backend

    print(f"fusedact {fusedact.__version__}, torch {torch.__version__}, triton {triton.__version__}")
    print(f"CUDA available: {torch.cuda.is_available()}"
          + (f" ({torch.cuda.get_device_name()})" if torch.cuda.is_available() else ""))
    print(f"Triton interpreter: {'on' if backend.interpreter_enabled() else 'off'}")
    for device in ["cpu"] + (["cuda"] if torch.cuda.is_available() else []):
        print(f"ops on {device} tensors run on: {backend.active(torch.empty(0, device=device))}")
    from fusedact import amp
    from fusedact.kernels import autotune

    print(f"ops: {', '.join(amp.REGISTERED)} (all take the path above)")
    print(f"autotune cache: {autotune.cache_dir()} (mode {autotune.autotune_mode()})")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        width = max(map(len, COMMANDS))
        print("usage: python -m fusedact <command> [args]\n\ncommands:")
        for name, (_, summary) in COMMANDS.items():
            print(f"  {name:<{width}}  {summary}")
        return 0 if not argv or argv[0] in ("-h", "--help") else 2
    module_name, _ = COMMANDS[argv[0]]
    if argv[0] == "info":
        return info(argv[1:])
    module_name, _, function = module_name.partition(":")
    return getattr(importlib.import_module(module_name), function or "main")(argv[1:])
