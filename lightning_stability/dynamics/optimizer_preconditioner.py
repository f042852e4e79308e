r"""What an optimizer's next steps do to the loss's curvature: its preconditioner and stability threshold (D1).

Near a minimiser every optimizer below updates ``θ ← θ − P⁻¹ m`` with ``m`` the gradient or an exponential average
of it; on the quadratic ``½ δᵀ H δ`` with a fixed diagonal ``P`` the iteration is stable exactly while

    λ_max(P^{-1/2} H P^{-1/2}) < T

with the threshold ``T`` of the momentum rule (docs/dynamics.md D1, "one ratio for every optimizer"). This module
reads ``P⁻¹`` (one tensor per parameter, the parameter's shape) and ``T`` (per parameter group) from an
optimizer's ``param_groups`` and ``state``:

* `torch.optim.SGD`: ``P⁻¹ = η``; ``T = 2`` without momentum, ``T = (2 + 2β) / (1 − τ)`` for heavy-ball momentum
  ``β`` with dampening ``τ``, ``T = (2 + 2β) / ((1 − τ)(1 + 2β))`` with ``nesterov=True``;
* `torch.optim.Adam` / `torch.optim.AdamW`: ``P⁻¹ = η / [(1 − β₁ᵗ)(√(v_t / (1 − β₂ᵗ)) + ε)]`` from ``exp_avg_sq``
  (``max_exp_avg_sq`` with ``amsgrad``) and ``step``, ``T = (2 + 2β₁) / (1 − β₁)``;
* `torch.optim.RMSprop`: ``P⁻¹ = η / (√v + ε)`` from ``square_avg`` (``v − ḡ²`` with ``centered``, ``ḡ`` its
  ``grad_avg``), ``T = 2 + 2μ`` for its momentum ``μ`` (2 without).

Coupled weight decay ``λ_wd`` (SGD, Adam, RMSprop: ``g ← g + λ_wd θ``) is part of the curvature the optimizer
sees (``H + λ_wd I``) and is returned as ``decay``; AdamW's decoupled decay (and Adam's
``decoupled_weight_decay=True``) is not. Any other optimizer class is refused with `UnreadableOptimizer`.
Subclasses are read as their base class. No Lightning here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

__all__ = ["OptimizerPreconditioner", "UnreadableOptimizer", "read_preconditioner"]


class UnreadableOptimizer(ValueError):
    """The optimizer's preconditioner or threshold cannot be read (its class is not one of those documented)."""


@dataclass(frozen=True)
class OptimizerPreconditioner:
    """``P⁻¹`` and ``T`` of the optimizers that own ``params``, one entry per parameter, in ``params``' order.

    ``inverse[i]`` is ``P⁻¹`` of parameter ``i`` (its shape, float64; zeros for a parameter no optimizer owns or
    that never received a gradient: it does not move), ``threshold[i]`` its group's ``T``, ``decay[i]`` its coupled
    weight decay, ``names`` the optimizers' class names.
    """

    inverse: list[Tensor]
    threshold: list[float]
    decay: list[float]
    names: tuple[str, ...]

    def scale(self) -> Tensor:
        """The flat ``D = P⁻¹ / T`` (float64): the edge ratio is ``λ_max(D^{1/2} (H + W) D^{1/2})`` (`edge_ratio`)."""
        return torch.cat([(inv / t).reshape(-1) for inv, t in zip(self.inverse, self.threshold, strict=True)])

    def flat_decay(self) -> Tensor:
        """The flat diagonal ``W`` of the coupled weight decays (float64)."""
        return torch.cat(
            [
                torch.full((inv.numel(),), d, dtype=torch.float64)
                for inv, d in zip(self.inverse, self.decay, strict=True)
            ]
        )

    def uniform(self) -> tuple[float, float] | None:
        """``(d, w)`` when ``D = d I`` and ``W = w I`` (then the ratio is ``d (λ_max(H) + w)``), else ``None``."""
        scale = self.scale()
        if scale.numel() == 0 or len(set(self.decay)) != 1:
            return None
        first = float(scale[0])
        return (first, self.decay[0]) if bool((scale == first).all()) else None


def _float(value: Any) -> float:
    return float(value.item() if isinstance(value, Tensor) else value)


def _sgd(group: dict[str, Any], state: dict[str, Any], param: Tensor) -> tuple[Tensor, float, float]:
    """SGD: ``P⁻¹ = η``; ``T = (2 + 2β)/(1 − τ)``, divided by ``1 + 2β`` with Nesterov (docstring of the module)."""
    lr, beta, tau = _float(group["lr"]), _float(group.get("momentum", 0.0)), _float(group.get("dampening", 0.0))
    threshold = (2 + 2 * beta) / (1 - tau) if beta > 0 else 2.0
    if beta > 0 and group.get("nesterov", False):
        threshold /= 1 + 2 * beta
    return torch.full(param.shape, lr, dtype=torch.float64), threshold, _float(group.get("weight_decay", 0.0))


def _adam(group: dict[str, Any], state: dict[str, Any], param: Tensor, decoupled: bool) -> tuple[Tensor, float, float]:
    """Adam/AdamW: ``P⁻¹ = η / [(1 − β₁ᵗ)(√(v_t/(1 − β₂ᵗ)) + ε)]``, ``T = (2 + 2β₁)/(1 − β₁)``."""
    lr, eps = _float(group["lr"]), _float(group["eps"])
    beta1, beta2 = (_float(b) for b in group["betas"])
    threshold = (2 + 2 * beta1) / (1 - beta1)
    decay = 0.0 if decoupled or group.get("decoupled_weight_decay", False) else _float(group.get("weight_decay", 0.0))
    key = "max_exp_avg_sq" if group.get("amsgrad", False) else "exp_avg_sq"
    if key not in state:  # never stepped: the parameter does not move
        return torch.zeros(param.shape, dtype=torch.float64), threshold, decay
    step = _float(state["step"])
    second = state[key].detach().to(device="cpu", dtype=torch.float64)
    denominator = (1 - beta1**step) * ((second / (1 - beta2**step)).sqrt() + eps)
    return lr / denominator, threshold, decay


def _rmsprop(group: dict[str, Any], state: dict[str, Any], param: Tensor) -> tuple[Tensor, float, float]:
    """RMSprop: ``P⁻¹ = η / (√v + ε)`` (``v − ḡ²`` centered), ``T = 2 + 2μ``."""
    lr, eps, momentum = _float(group["lr"]), _float(group["eps"]), _float(group.get("momentum", 0.0))
    threshold, decay = 2 + 2 * momentum, _float(group.get("weight_decay", 0.0))
    if "square_avg" not in state:
        return torch.zeros(param.shape, dtype=torch.float64), threshold, decay
    second = state["square_avg"].detach().to(device="cpu", dtype=torch.float64)
    if group.get("centered", False):
        second = second - state["grad_avg"].detach().to(device="cpu", dtype=torch.float64) ** 2
    return lr / (second.sqrt() + eps), threshold, decay


def _read_one(
    optimizer: Any, group: dict[str, Any], state: dict[str, Any], param: Tensor
) -> tuple[Tensor, float, float]:
    if isinstance(optimizer, torch.optim.AdamW):
        return _adam(group, state, param, decoupled=True)
    if isinstance(optimizer, torch.optim.Adam):
        return _adam(group, state, param, decoupled=False)
    if isinstance(optimizer, torch.optim.SGD):
        return _sgd(group, state, param)
    if isinstance(optimizer, torch.optim.RMSprop):
        return _rmsprop(group, state, param)
    raise UnreadableOptimizer(
        f"cannot read the preconditioner of {type(optimizer).__name__} (readable: SGD, Adam, AdamW, RMSprop)"
    )


def read_preconditioner(optimizers: Sequence[Any], params: Sequence[Tensor]) -> OptimizerPreconditioner:
    """`OptimizerPreconditioner` of ``params`` under ``optimizers`` (read at the call: the next steps' ``η`` and
    second moments). A wrapper with a public ``optimizer`` attribute (Lightning's ``LightningOptimizer``) is
    unwrapped once.

    Raises:
        UnreadableOptimizer: an optimizer of another class, or a parameter owned by two optimizers.
    """
    entries: dict[int, tuple[Tensor, float, float]] = {}
    names = []
    for optimizer in optimizers:
        inner = getattr(optimizer, "optimizer", None)
        optimizer = inner if isinstance(inner, torch.optim.Optimizer) else optimizer
        names.append(type(optimizer).__name__)
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise UnreadableOptimizer(
                f"cannot read the preconditioner of {type(optimizer).__name__} (no torch optimizer)"
            )
        for group in optimizer.param_groups:
            for param in group["params"]:
                if id(param) in entries:
                    raise UnreadableOptimizer(f"a parameter of shape {tuple(param.shape)} is in two optimizers")
                entries[id(param)] = _read_one(optimizer, group, optimizer.state.get(param, {}), param)
    inverse, threshold, decay = [], [], []
    for param in params:
        inv, t, d = entries.get(id(param), (torch.zeros(param.shape, dtype=torch.float64), 2.0, 0.0))
        inverse.append(inv.to(torch.float64))
        threshold.append(t)
        decay.append(d)
    return OptimizerPreconditioner(inverse, threshold, decay, tuple(names))
