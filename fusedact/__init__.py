"""fusedact: Triton kernels that fuse a layer's affine map with its activation.

Public API (re-exports only): ``linear_act``, ``FusedLinear``, ``ACTIVATIONS``, ``backend``.
Set ``TRITON_INTERPRET=1`` before importing to run the Triton kernels on the CPU.
"""
from fusedact import backend
from fusedact.activations import ACTIVATIONS
from fusedact.functional import linear_act
from fusedact.nn import FusedLinear
from fusedact.convert import FuseRecord, collapse, fuse

__version__ = "0.1.0"

__all__ = ["ACTIVATIONS", "FusedLinear", "backend", "linear_act", "__version__"]
__all__ += ["FuseRecord", "collapse", "fuse"]
