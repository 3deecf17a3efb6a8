"""fusedact: Triton kernels that fuse a layer's affine map with its activation.

Public API (re-exports only): ``linear_act``, ``FusedLinear``, ``ACTIVATIONS``, ``softmax``,
``log_softmax``, ``kd_loss``, ``TemperatureSoftmax``, ``KDLoss``, ``backend``; model surgery
``fuse``, ``collapse``, ``FuseRecord``.
Set ``TRITON_INTERPRET=1`` before importing to run the Triton kernels on the CPU.
"""
from fusedact import backend
from fusedact.activations import ACTIVATIONS
from fusedact.functional import kd_loss, linear_act, log_softmax, softmax
from fusedact.nn import FusedLinear, KDLoss, TemperatureSoftmax
from fusedact.convert import FuseRecord, collapse, fuse

__version__ = "0.1.0"

__all__ = ["ACTIVATIONS", "FusedLinear", "KDLoss", "TemperatureSoftmax", "backend", "kd_loss",
           "linear_act", "log_softmax", "softmax", "__version__"]
__all__ += ["FuseRecord", "collapse", "fuse"]
