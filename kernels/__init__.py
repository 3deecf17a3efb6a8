"""Triton kernels of fusedact, installed as ``fusedact.kernels``.

Everything that touches Triton lives here; nothing here imports the ``fusedact`` code above
it. Whether the kernels run on a GPU or through Triton's CPU interpreter is decided when this
package is imported (``triton.jit`` reads ``TRITON_INTERPRET`` at decoration time), so
``INTERPRETED`` records that decision once.
"""
from triton import knobs

#: True when every ``@triton.jit`` function in this package was built for the interpreter.
INTERPRETED: bool = bool(knobs.runtime.interpret)

import functools  # noqa: E402
import threading  # noqa: E402

_INTERPRETER_LOCK = threading.RLock()


def interpreter_serialized(launcher):
    """Run ``launcher`` under one process-wide lock when interpreting.

    Triton's interpreter keeps the state of a launch (the program id being run, the patched
    ``triton.language`` functions) in module globals, so two threads interpreting kernels at
    once corrupt each other ("x >= grid_dim[0]"). Compiled launches are thread-safe and never
    take the lock: on a GPU the launcher is returned unchanged.
    """
    if not INTERPRETED:
        return launcher

    @functools.wraps(launcher)
    def serialized(*args, **kwargs):
        with _INTERPRETER_LOCK:
            return launcher(*args, **kwargs)

    return serialized
