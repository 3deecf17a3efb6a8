"""Autocast (``torch.autocast``, AMP) rules for the ``fusedact::`` custom ops.

A custom op is invisible to autocast unless it registers a kernel at the Autocast dispatch
keys; without one it runs in whatever dtype it is handed, and torch ops inside its CPU body
would autocast on their own. So each op gets a kernel for ``AutocastCPU`` and
``AutocastCUDA`` that casts its floating inputs (float64 and other devices' tensors are left
alone, as torch does) and then runs the op with autocast off:

- ``"lower"``: to the autocast dtype (``torch.get_autocast_dtype``, fp16 or bf16), torch's
  policy for ``linear``: a FusedLinear under autocast runs exactly where an nn.Linear would.
- ``"fp32"``: to float32, torch's CUDA policy for ``softmax`` / ``log_softmax`` / ``kl_div``
  (on the CPU torch leaves softmax in its input dtype; fusedact uses fp32 on both so a
  result does not depend on the device).
- ``None``: no cast, only autocast off inside (backward ops, which see the forward's dtypes).

``torch.library.register_autocast`` takes one fixed dtype, which fits "fp32" but not
"lower" (the dtype is chosen by the user's ``torch.autocast(dtype=...)`` at run time), so
this module registers the same kind of kernel itself, reading the dtype when it runs. The
cast happens in the dispatcher, so it is traced by torch.compile and recorded by autograd
(gradients reach fp32 master weights in fp32). Registration happens when this module is
imported (with the ops), like the ops themselves: no device is touched.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from fusedact import ops

#: op name in ops.py -> cast policy. Ops not defined in this build are skipped.
POLICIES: dict[str, Optional[str]] = {
    "linear_act_fwd": "lower",
    "linear_act_bwd": None,
    "softmax_fwd": "fp32",
    "softmax_bwd": None,
    "kd_loss_fwd": "fp32",
    "kd_loss_bwd": None,
}
DEVICE_TYPES = ("cpu", "cuda")

_lib = torch.library.Library("fusedact", "IMPL")


def cast_dtype(device_type: str, policy: Optional[str]) -> Optional[torch.dtype]:
    """The dtype ``policy`` casts to on ``device_type`` now, or None when autocast is off
    there (or the policy casts nothing)."""
    # other device types (meta, ...) have no autocast here; torch.is_autocast_enabled
    # raises for some of them
    if (policy is None or device_type not in DEVICE_TYPES
            or not torch.is_autocast_enabled(device_type)):
        return None
    return torch.float32 if policy == "fp32" else torch.get_autocast_dtype(device_type)


def effective_dtype(tensor: Tensor, policy: Optional[str]) -> torch.dtype:
    """The dtype ``tensor`` will have inside an op of this ``policy``: its own, or the
    autocast dtype when autocast is on for its device and it is eligible (floating, not
    float64). functional.py checks dtype agreement with this, so that a bf16 activation
    meeting an fp32 weight under autocast is accepted, as nn.Linear accepts it."""
    dtype = cast_dtype(tensor.device.type, policy)
    if dtype is None or not tensor.is_floating_point() or tensor.dtype == torch.float64:
        return tensor.dtype
    return dtype


def _cast(value, device_type: str, dtype: Optional[torch.dtype]):
    if (dtype is not None and isinstance(value, Tensor) and value.is_floating_point()
            and value.dtype != torch.float64 and value.device.type == device_type):
        return value.to(dtype)
    return value


def _make_kernel(overload, device_type: str, policy: Optional[str]):
    key = getattr(torch._C.DispatchKey, "Autocast" + torch._C._dispatch_key_for_device(device_type))

    def kernel(_keyset, *args):
        dtype = cast_dtype(device_type, policy)
        # Exclude this Autocast key (what torch.library.register_autocast does), so the op
        # and any torch op inside its body run as called, without re-casting.
        with torch._C._ExcludeDispatchKeyGuard(torch._C.DispatchKeySet(key)):
            return overload(*(_cast(arg, device_type, dtype) for arg in args))

    return kernel


def _register() -> list[str]:
    registered = []
    for name, policy in POLICIES.items():
        op = getattr(ops, name, None)
        if op is None:  # an op of a feature this build does not have
            continue
        overload = getattr(torch.ops.fusedact, name).default
        for device_type in DEVICE_TYPES:
            key = "Autocast" + torch._C._dispatch_key_for_device(device_type)
            _lib.impl(name, _make_kernel(overload, device_type, policy), key, with_keyset=True)
        registered.append(name)
    return registered


#: the ops that got autocast kernels (tests check every fusedact op is among them)
REGISTERED: tuple = tuple(_register())
