r"""Degenerate parametrizations of ``Linear → σ → Linear`` hidden layers (docs/dynamics.md D2).

A hidden layer with incoming weights ``W ∈ R^{m×d}``, bias ``b ∈ R^m``, activation ``σ`` and outgoing weights
``V ∈ R^{p×m}`` computes ``x ↦ V σ(W x + b)``. Several parametrizations realise (nearly) the same function,
which breaks *inverse stability* (close functions need not have close parameters):

* a **dead unit** ``j`` contributes a constant: its pre-activation ``z_j = w_jᵀ x + b_j`` satisfies ``z_j ≤ 0``
  on every probe sample for the ReLU family (ReLU, LeakyReLU, PReLU — the latter two are linear there — and
  ReLU6, also dead when ``z_j ≥ 6`` everywhere), and ``z_j = 0`` identically for ``|·|``;
* **unbalanced scales**: for positively homogeneous ``σ`` (``σ(αz) = ασ(z)``, ``α > 0``) the rescaling
  ``(w_j, b_j) → α (w_j, b_j)``, ``v_j → v_j / α`` leaves the function unchanged; the balance of unit ``j`` is
  ``β_j = ‖(w_j, b_j)‖₂ / ‖v_j‖₂`` (``v_j`` the ``j``-th column of ``V``) and its spread ``max β / min β`` over
  live units measures how far apart the units' scales drifted;
* **redundant or opposite units**: incoming weight vectors with ``cos(w_j, w_k) = w_jᵀ w_k / (‖w_j‖ ‖w_k‖)``
  close to ``+1`` (parallel: the units split one direction) or ``−1`` (opposite: ``relu(z) − relu(−z) = z``,
  ``|z| = |−z|``);
* **zero-weight units**: ``‖(w_j, b_j)‖ = 0`` or ``‖v_j‖ = 0`` (the unit is disconnected).

No Lightning here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from ..activations import AbsoluteValue
from .results import ParametrizationStats

__all__ = [
    "ActivationKind",
    "HiddenLayer",
    "activation_kind",
    "dead_units",
    "find_hidden_layers",
    "parametrization_statistics",
]

ActivationKind = Literal["relu", "relu6", "leaky_relu", "prelu", "abs"]
"""The supported hidden-layer activations: ReLU, ReLU6, LeakyReLU, PReLU and `AbsoluteValue` (``|x|``)."""

# elementwise modules that may sit between the activation and the next Linear without mixing units
_PASSTHROUGH = (nn.Dropout, nn.AlphaDropout, nn.Identity)


def activation_kind(module: nn.Module) -> ActivationKind | None:
    """The kind of a supported activation module, ``None`` for anything else."""
    if isinstance(module, nn.ReLU6):  # a subclass of Hardtanh, not of ReLU
        return "relu6"
    if isinstance(module, nn.ReLU):
        return "relu"
    if isinstance(module, nn.LeakyReLU):
        return "leaky_relu"
    if isinstance(module, nn.PReLU):
        return "prelu"
    if isinstance(module, AbsoluteValue):
        return "abs"
    return None


@dataclass(frozen=True)
class HiddenLayer:
    """A hidden layer ``incoming → activation → outgoing`` of a model, with the modules' qualified names."""

    incoming_name: str
    activation_name: str
    outgoing_name: str
    incoming: nn.Linear
    activation: nn.Module
    outgoing: nn.Linear
    kind: ActivationKind


def find_hidden_layers(model: nn.Module) -> list[HiddenLayer]:
    """Every ``Linear → activation → [Dropout/Identity …] → Linear`` run among the model's leaf modules.

    Leaf modules are taken in registration order (``model.named_modules()``), which is the execution order of
    ``nn.Sequential`` stacks; the outgoing Linear must take the incoming Linear's ``out_features`` as input.
    Activations applied functionally (``F.relu``) or modules registered out of execution order are not found:
    name the modules explicitly instead.
    """
    leaves = [(name, module) for name, module in model.named_modules() if not any(True for _ in module.children())]
    layers: list[HiddenLayer] = []
    for position, (name, module) in enumerate(leaves[:-2]):
        if not isinstance(module, nn.Linear):
            continue
        activation_name, activation = leaves[position + 1]
        kind = activation_kind(activation)
        if kind is None:
            continue
        following = position + 2
        while following < len(leaves) and isinstance(leaves[following][1], _PASSTHROUGH):
            following += 1
        if following == len(leaves):
            continue
        outgoing_name, outgoing = leaves[following]
        if isinstance(outgoing, nn.Linear) and outgoing.in_features == module.out_features:
            layers.append(HiddenLayer(name, activation_name, outgoing_name, module, activation, outgoing, kind))
    return layers


def dead_units(preactivations: Tensor, kind: ActivationKind) -> Tensor:
    """Boolean mask ``[m]`` of the units dead on every row of ``preactivations [N, m]`` (see the module doc)."""
    if preactivations.dim() != 2 or preactivations.shape[0] == 0:
        raise ValueError(
            f"`preactivations` must have shape [N, m] with N >= 1 probe samples, got {tuple(preactivations.shape)}."
        )
    if kind not in ("relu", "relu6", "leaky_relu", "prelu", "abs"):
        raise ValueError(f"`kind` must be one of relu, relu6, leaky_relu, prelu, abs; got {kind!r}.")
    if kind == "abs":
        return (preactivations == 0).all(dim=0)
    dead = (preactivations <= 0).all(dim=0)
    if kind == "relu6":
        dead |= (preactivations >= 6).all(dim=0)
    return dead


def parametrization_statistics(
    weight_in: Tensor,
    bias_in: Tensor | None,
    weight_out: Tensor,
    preactivations: Tensor,
    kind: ActivationKind,
    *,
    threshold: float = 0.99,
    zero_tol: float = 0.0,
) -> ParametrizationStats:
    r"""Dead units, balance, parallel/opposite pairs and zero-weight units of ``x ↦ V σ(W x + b)``.

    Args:
        weight_in: ``W`` ``[m, d]``; bias_in: ``b`` ``[m]`` or ``None``; weight_out: ``V`` ``[p, m]``.
        preactivations: ``Z = X Wᵀ + b`` ``[N, m]`` on the probe samples.
        kind: the activation (`ActivationKind`).
        threshold: a pair ``j < k`` counts as parallel when ``cos(w_j, w_k) > threshold`` and as opposite when
            ``cos(w_j, w_k) < −threshold``.
        zero_tol: a norm ``≤ zero_tol`` counts as zero (incoming ``‖(w_j, b_j)‖``, outgoing ``‖v_j‖`` and, for
            the cosines, ``‖w_j‖``).

    Balance ``β_j = ‖(w_j, b_j)‖ / ‖v_j‖``; ``balance_min/max/spread`` are ``min β``, ``max β`` and
    ``max β / min β`` over the *live* units (not dead, both norms ``> zero_tol``). The cosines are over the
    units with ``‖w_j‖ > zero_tol``; ``max_cosine_pair``/``min_cosine_pair`` name the extreme pairs.
    """
    if not 0 < threshold < 1:
        raise ValueError(f"`threshold` must lie in (0, 1) (a cosine, e.g. 0.99), got {threshold!r}.")
    if not (math.isfinite(zero_tol) and zero_tol >= 0):
        raise ValueError(f"`zero_tol` must be a finite number >= 0, got {zero_tol!r}.")
    if weight_in.dim() != 2 or weight_out.dim() != 2 or weight_out.shape[1] != weight_in.shape[0]:
        raise ValueError(
            f"expected W [m, d] and V [p, m] with the same m, got W {tuple(weight_in.shape)} and "
            f"V {tuple(weight_out.shape)}."
        )
    units = weight_in.shape[0]
    if bias_in is not None and bias_in.shape != (units,):
        raise ValueError(f"`bias_in` must have shape [{units}], got {tuple(bias_in.shape)}.")
    if preactivations.dim() != 2 or preactivations.shape[1] != units:
        raise ValueError(f"`preactivations` must have shape [N, {units}], got {tuple(preactivations.shape)}.")
    w = weight_in.detach().to(torch.float64)
    incoming = w if bias_in is None else torch.cat([w, bias_in.detach().to(torch.float64)[:, None]], dim=1)
    incoming_norms = torch.linalg.vector_norm(incoming, dim=1)
    outgoing_norms = torch.linalg.vector_norm(weight_out.detach().to(torch.float64), dim=0)
    zero_in, zero_out = incoming_norms <= zero_tol, outgoing_norms <= zero_tol
    incoming_norms = torch.where(zero_in, torch.zeros_like(incoming_norms), incoming_norms)
    outgoing_norms = torch.where(zero_out, torch.zeros_like(outgoing_norms), outgoing_norms)
    balance = incoming_norms / outgoing_norms  # inf for a zero outgoing column, nan for 0 / 0
    dead = dead_units(preactivations.detach().to(torch.float64), kind).cpu()
    live = ~dead & ~zero_in.cpu() & ~zero_out.cpu()
    live_balance = balance.cpu()[live]
    if live_balance.numel():
        low, high = float(live_balance.min()), float(live_balance.max())
        spread = high / low
    else:
        low = high = spread = math.nan

    weight_norms = torch.linalg.vector_norm(w, dim=1)
    usable = torch.nonzero(weight_norms > zero_tol).flatten()
    max_cos = min_cos = math.nan
    max_pair = min_pair = None
    parallel = opposite = 0
    if usable.numel() >= 2:
        directions = w[usable] / weight_norms[usable, None]
        cosines = (directions @ directions.T).clamp(-1.0, 1.0)
        upper = torch.triu(torch.ones_like(cosines, dtype=torch.bool), diagonal=1)
        pair_cosines = cosines[upper]
        rows, cols = torch.nonzero(upper, as_tuple=True)
        top, bottom = int(torch.argmax(pair_cosines)), int(torch.argmin(pair_cosines))
        max_cos, min_cos = float(pair_cosines[top]), float(pair_cosines[bottom])
        max_pair = (int(usable[rows[top]]), int(usable[cols[top]]))
        min_pair = (int(usable[rows[bottom]]), int(usable[cols[bottom]]))
        parallel = int((pair_cosines > threshold).sum())
        opposite = int((pair_cosines < -threshold).sum())
    return ParametrizationStats(
        units=units,
        dead=dead,
        incoming_norms=incoming_norms.cpu(),
        outgoing_norms=outgoing_norms.cpu(),
        balance=balance.cpu(),
        live=live,
        balance_min=low,
        balance_max=high,
        balance_spread=spread,
        max_cosine=max_cos,
        max_cosine_pair=max_pair,
        min_cosine=min_cos,
        min_cosine_pair=min_pair,
        parallel_pairs=parallel,
        opposite_pairs=opposite,
        zero_incoming=int(zero_in.sum()),
        zero_outgoing=int(zero_out.sum()),
    )
