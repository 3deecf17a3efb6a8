"""Model surgery: ``fuse`` swaps ``nn.Linear`` + activation pairs for ``FusedLinear``;
``collapse`` folds a stack of activation-free linear layers into the one linear map it is.

Only ``nn.Sequential`` containers are rewritten: there the data flow is the child order, so
"a Linear followed by an activation" means exactly that. A custom module's ``forward`` may
use its children in any order (or twice), so its children are never paired, though
Sequentials nested inside it are.
"""
from __future__ import annotations

import copy
import dataclasses
from typing import Iterable, Optional, Union

import torch
from torch import nn

from fusedact.functional import SUPPORTED_DTYPES
from fusedact.nn import FusedLinear

__all__ = ["FuseRecord", "collapse", "fuse"]


@dataclasses.dataclass(frozen=True)
class FuseRecord:
    """One ``nn.Linear`` that ``fuse`` looked at.

    ``path``: the Linear's qualified name in the model (``"encoder.0"``); ``activation``:
    the module after it (its repr), or None at the end of a Sequential; ``fused``: whether
    it was replaced; ``reason``: why not, when it was not.
    """

    path: str
    activation: Optional[str]
    fused: bool
    reason: Optional[str] = None

    def __str__(self) -> str:
        pair = f"{self.path}: Linear + {self.activation}"
        return f"fused    {pair}" if self.fused else f"skipped  {pair} ({self.reason})"


def _activation_args(module: nn.Module) -> Optional[tuple[str, dict]]:
    """(fusedact activation name, keyword arguments) for a supported activation module, else
    None. Exact types only: a subclass may override forward."""
    kind = type(module)
    simple = {nn.ReLU: "relu", nn.Sigmoid: "sigmoid", nn.Tanh: "tanh", nn.SiLU: "silu",
              nn.Identity: "identity"}
    if kind in simple:
        return simple[kind], {}
    if kind is nn.LeakyReLU:
        return "leaky_relu", {"negative_slope": float(module.negative_slope)}
    if kind is nn.ELU:
        return "elu", {"alpha": float(module.alpha)}
    if kind is nn.GELU:
        return {"none": "gelu", "tanh": "gelu_tanh"}[module.approximate], {}
    return None


def _hooks(module: nn.Module) -> list[str]:
    """The kinds of module-local hooks (and parametrizations) on ``module``: fusing would
    silently drop them, so such modules are left alone."""
    kinds = ["_forward_pre_hooks", "_forward_hooks", "_backward_pre_hooks", "_backward_hooks"]
    found = [k.strip("_").replace("_", " ") for k in kinds if getattr(module, k, None)]
    if torch.nn.utils.parametrize.is_parametrized(module):
        found.append("parametrizations")
    return found


def _why_not(linear: nn.Module, activation: Optional[nn.Module]) -> Optional[str]:
    found = _hooks(linear)
    if found:
        return f"the Linear has {', '.join(found)}"
    if type(linear) is not nn.Linear:
        return f"{type(linear).__name__} is a Linear subclass (its forward may differ)"
    if activation is None:
        return "no activation follows it in its Sequential"
    if _activation_args(activation) is None:
        return f"{type(activation).__name__} is not a supported activation"
    found = _hooks(activation)
    if found:
        return f"the activation has {', '.join(found)}"
    if linear.weight.dtype not in SUPPORTED_DTYPES:
        return f"weight dtype {linear.weight.dtype} is not supported"
    return None


def fuse(model: nn.Module, inplace: bool = False) -> tuple[nn.Module, list[FuseRecord]]:
    """Replace every ``nn.Linear`` followed by a supported activation module inside an
    ``nn.Sequential`` (at any depth, the model itself included) by one ``FusedLinear``.

    Supported: ``nn.ReLU`` (inplace too), ``nn.LeakyReLU`` (its ``negative_slope``),
    ``nn.ELU`` (its ``alpha``), ``nn.Sigmoid``, ``nn.Tanh``, ``nn.GELU`` (either
    ``approximate``), ``nn.SiLU``, ``nn.Identity``. The FusedLinear takes the Linear's slot
    and shares its weight and bias Parameters (same device, dtype, ``requires_grad``), and
    its train/eval mode; the activation's slot gets an ``nn.Identity``, so indices and
    ``state_dict`` keys stay the same (a checkpoint of the original loads into the fused
    model and back). Left alone, and reported: Linear subclasses, activations not listed
    above (or subclasses of them), modules with forward/backward hooks or parametrizations.

    ``inplace=False`` (default) converts a ``copy.deepcopy`` of ``model`` and leaves
    ``model`` untouched; ``inplace=True`` rewrites ``model`` itself, so an optimizer that
    holds its Parameters keeps working. Returns ``(model, records)``: one ``FuseRecord`` per
    ``nn.Linear`` in the model, fused or not and why (``str(record)`` reads well).

    Raises TypeError if ``model`` is not an ``nn.Module``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if not inplace:
        model = copy.deepcopy(model)
    records = []
    for prefix, container in list(model.named_modules()):
        if not isinstance(container, nn.Sequential):
            continue
        names = list(container._modules)
        index = 0
        while index < len(names):
            linear = container._modules[names[index]]
            if not isinstance(linear, nn.Linear):
                index += 1
                continue
            activation = (container._modules[names[index + 1]]
                          if index + 1 < len(names) else None)
            path = f"{prefix}.{names[index]}" if prefix else names[index]
            reason = _why_not(linear, activation)
            records.append(FuseRecord(path, None if activation is None else repr(activation),
                                      reason is None, reason))
            if reason is not None:
                index += 1
                continue
            name, kwargs = _activation_args(activation)
            container._modules[names[index]] = FusedLinear.from_linear(linear, name, **kwargs)
            container._modules[names[index + 1]] = nn.Identity().train(activation.training)
            index += 2
    seen = {record.path for record in records}
    for path, module in model.named_modules():
        if isinstance(module, nn.Linear) and path not in seen:
            records.append(FuseRecord(path, None, False, "not inside an nn.Sequential (the "
                                      "order its parent's forward uses it in is unknown)"))
    return model, records


LinearStack = Union[nn.Sequential, Iterable[nn.Module]]


def collapse(layers: LinearStack) -> nn.Linear:
    """The one ``nn.Linear`` equal to a stack of activation-free linear layers.

    ``layers``: an ``nn.Sequential`` or an iterable of ``nn.Linear``, ``FusedLinear`` with
    ``activation="identity"`` and ``nn.Identity`` modules, applied in order. With
    ``y = W_n(…(W_2(W_1 x + b_1) + b_2)…) + b_n``, the result has ``W' = W_n ⋯ W_2 W_1`` and
    ``b' = W_n ⋯ W_2 b_1 + ⋯ + W_n b_{n-1} + b_n``, computed in float64 and stored in the
    first layer's dtype and device (no bias if no layer has one). This is why a network
    needs activations: without them depth adds nothing a single linear layer cannot do.

    Raises TypeError for a module that is not one of the above (e.g. an activation),
    ValueError for a FusedLinear with an activation, an empty stack, layers whose sizes do
    not chain, or layers on different devices.
    """
    modules = list(layers)
    affine = []
    for index, module in enumerate(modules):
        if isinstance(module, nn.Identity):
            continue
        if isinstance(module, FusedLinear):
            if module.activation != "identity":
                raise ValueError(f"layers[{index}] is a FusedLinear with activation "
                                 f"{module.activation!r}; only activation-free layers collapse")
        elif not isinstance(module, nn.Linear):
            raise TypeError(f"layers[{index}] must be nn.Linear, FusedLinear(activation="
                            f"'identity') or nn.Identity, got {type(module).__name__}")
        affine.append((index, module))
    if not affine:
        raise ValueError("layers must contain at least one linear layer")
    first = affine[0][1]
    device, dtype = first.weight.device, first.weight.dtype
    weight = torch.eye(first.in_features, dtype=torch.float64, device=device)
    bias = torch.zeros(first.in_features, dtype=torch.float64, device=device)
    has_bias = False
    features = first.in_features
    for index, module in affine:
        if module.in_features != features:
            raise ValueError(f"layers[{index}] takes {module.in_features} features but the "
                             f"layer before it gives {features}")
        if module.weight.device != device:
            raise ValueError(f"layers[{index}] is on {module.weight.device}, the first layer "
                             f"on {device}")
        w = module.weight.detach().to(torch.float64)
        weight, bias = w @ weight, w @ bias
        if module.bias is not None:
            bias = bias + module.bias.detach().to(torch.float64)
            has_bias = True
        features = module.out_features
    result = nn.Linear(first.in_features, features, bias=has_bias, device=device, dtype=dtype)
    with torch.no_grad():
        result.weight.copy_(weight)
        if has_bias:
            result.bias.copy_(bias)
    return result.train(first.training)
