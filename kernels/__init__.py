"""Triton kernels of fusedact, installed as ``fusedact.kernels``.

Everything that touches Triton lives here; nothing here imports the ``fusedact`` code above
it. Whether the kernels run on a GPU or through Triton's CPU interpreter is decided when this
package is imported (``triton.jit`` reads ``TRITON_INTERPRET`` at decoration time), so
``INTERPRETED`` records that decision once.
"""
from triton import knobs

#: True when every ``@triton.jit`` function in this package was built for the interpreter.
INTERPRETED: bool = bool(knobs.runtime.interpret)
