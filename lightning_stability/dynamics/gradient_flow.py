r"""Gradient flow across depth (docs/dynamics.md D3): per-layer gradient norms and the first/last layer ratio.

For a network ``x ↦ f_L ∘ … ∘ f_1(x)`` the gradient reaching layer ``ℓ`` is a product of the Jacobians of the
layers above it, ``∇_{θ_ℓ} L = (∂f_ℓ/∂θ_ℓ)ᵀ D_{ℓ+1}ᵀ W_{ℓ+1}ᵀ ⋯ D_Lᵀ W_Lᵀ ∇_{f_L} L``; products of many
factors shrink or grow geometrically with depth (vanishing / exploding gradients). The layer norm is
``‖g_ℓ‖_p = (Σ_{q ∈ θ_ℓ} ‖g_q‖_p^p)^{1/p}`` (``max_q ‖g_q‖_∞`` for ``p = ∞``), the p-norm of the layer's gradients
seen as one vector, and ``r = ‖g_first‖ / ‖g_last‖`` compares the layer nearest the input with the one nearest
the output: ``r ≪ 1`` vanishing, ``r ≫ 1`` exploding. No Lightning here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import nn

__all__ = ["depth_layers", "first_last_ratio", "layer_norms"]


def depth_layers(model: nn.Module) -> list[str]:
    """Names of the modules that own a trainable weight matrix or kernel (``weight`` with ≥ 2 dimensions).

    These are the model's layers in the depth sense (Linear, Conv, Embedding, …) in registration order;
    normalisation layers (1-D weights) and modules without their own parameters are left out.
    """
    names = []
    for name, module in model.named_modules():
        # the module's own parameter registered as `weight` (not a submodule's, not a property that computes one)
        weight = dict(module.named_parameters(recurse=False, remove_duplicate=False)).get("weight")
        if isinstance(weight, nn.Parameter) and weight.requires_grad and weight.dim() >= 2:
            names.append(name)
    return names


def layer_norms(
    parameter_norms: Mapping[str, float], layers: Sequence[str], norm_type: float = 2.0
) -> dict[str, float]:
    r"""``‖g_ℓ‖_p`` for every layer ``ℓ`` in ``layers`` from the per-parameter norms ``‖g_q‖_p``.

    Args:
        parameter_norms: ``{qualified parameter name: ‖g_q‖_p}`` (parameters without a gradient left out).
        layers: module names; a parameter ``"a.b.weight"`` belongs to the layer ``"a.b"`` (its owner).
        norm_type: ``p > 0`` or ``inf``.

    A layer none of whose parameters has a gradient is left out of the result.
    """
    p = float(norm_type)
    if not p > 0:
        raise ValueError(f"`norm_type` must be a positive number or inf, got {norm_type!r}.")
    grouped: dict[str, list[float]] = {}
    wanted = set(layers)
    for name, value in parameter_norms.items():
        owner = name.rpartition(".")[0]
        if owner in wanted:
            grouped.setdefault(owner, []).append(float(value))
    result = {}
    for layer in layers:
        if layer not in grouped:
            continue
        values = torch.tensor(grouped[layer], dtype=torch.float64)
        result[layer] = float(values.max() if math.isinf(p) else torch.linalg.vector_norm(values, ord=p))
    return result


def first_last_ratio(norms: Sequence[float]) -> float:
    """``‖g_first‖ / ‖g_last‖`` of norms in depth order: ``inf`` if only the last is 0, ``nan`` if both are."""
    if len(norms) < 2:
        raise ValueError(f"the first/last ratio needs at least two layers, got {len(norms)}.")
    first, last = float(norms[0]), float(norms[-1])
    if last == 0:
        return math.nan if first == 0 else math.inf
    return first / last
