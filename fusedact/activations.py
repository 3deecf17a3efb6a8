"""The activation registry: names, parameters, and what each one saves for backward.

Host-side facts only; the math lives twice on purpose: ``fusedact.kernels.activations`` (the
Triton code) and ``fusedact.reference`` (the float64 oracle), which test each other.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Optional


@dataclasses.dataclass(frozen=True)
class Activation:
    """One activation: its torch name, its parameter (if any) and how it saves for backward.

    ``output_derivative``: dy/dz can be written from the output y (see SEED-NOTES), so the
    backward keeps y, which the next layer keeps anyway as its input, instead of z.
    """

    name: str
    param_name: Optional[str] = None      # "negative_slope" or "alpha"
    param_default: float = 0.0
    output_derivative: bool = False

    def derivative_from_output(self, param: float) -> bool:
        """True when the backward can use y instead of z for this parameter value.

        leaky_relu with a negative slope and elu with a negative alpha make y > 0 reachable
        from z < 0, so y no longer tells which side z was on: those keep z.
        """
        if self.name in ("leaky_relu", "elu"):
            return param >= 0.0
        return self.output_derivative


_REGISTRY = {a.name: a for a in (
    Activation("identity", output_derivative=True),
    Activation("sigmoid", output_derivative=True),
    Activation("tanh", output_derivative=True),
    Activation("relu", output_derivative=True),
    Activation("leaky_relu", "negative_slope", 0.01, output_derivative=True),
    Activation("elu", "alpha", 1.0, output_derivative=True),
    Activation("gelu"),
    Activation("gelu_tanh"),
    Activation("silu"),
)}

#: The supported activation names, as torch.nn.functional names them (gelu_tanh is
#: ``F.gelu(z, approximate="tanh")``).
ACTIVATIONS: tuple = tuple(_REGISTRY)


def resolve(activation: str, negative_slope: Optional[float] = None,
            alpha: Optional[float] = None) -> tuple[Activation, float]:
    """Validate an activation name and its parameter; returns (spec, param as float).

    Raises ValueError for an unknown name (listing the valid ones), a parameter given to an
    activation that does not take it, or a parameter that is not a finite real number.
    """
    if not isinstance(activation, str):
        raise TypeError(f"activation must be a str, one of {', '.join(ACTIVATIONS)}; "
                        f"got {type(activation).__name__}")
    spec = _REGISTRY.get(activation)
    if spec is None:
        raise ValueError(f"unknown activation {activation!r}; expected one of: "
                         f"{', '.join(ACTIVATIONS)}")
    given = {"negative_slope": negative_slope, "alpha": alpha}
    for name, value in given.items():
        if value is not None and name != spec.param_name:
            raise ValueError(f"{name}={value!r} was given, but activation {activation!r} takes "
                             f"{'no parameter' if spec.param_name is None else spec.param_name}")
    if spec.param_name is None:
        return spec, 0.0
    value = given[spec.param_name]
    if value is None:
        return spec, spec.param_default
    # `abs(v) < inf` rather than math.isfinite: it also traces under torch.compile, where a
    # float attribute may arrive as a symbolic float.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not abs(value) < math.inf:
        raise ValueError(f"{spec.param_name} must be a finite real number, got {value!r}")
    return spec, float(value)
