r"""The largest Hessian eigenvalue ``λ_max(∇²L(θ))`` from Hessian-vector products (double backward).

Gradient descent ``θ ← θ − η ∇L(θ)`` linearised around a minimiser ``θ*`` is ``δ ← (I − η H) δ`` with
``H = ∇²L(θ*)``; the equilibrium is Lyapunov-stable only while every eigenvalue of ``I − η H`` lies in
``[−1, 1]``, i.e. while ``η λ_max(H) / 2 ≤ 1`` (docs/dynamics.md D1). This module estimates ``λ_max`` — the largest
*algebraic* eigenvalue — without forming ``H``:

* `HessianVectorProduct`: ``v ↦ H v = ∇_θ (∇_θ L(θ) · v)`` for ``L = Σ_c w_c L_c`` (chunks of data);
* `power_iteration`: ``v ← (H + s I) v / ‖(H + s I) v‖`` with the Rayleigh quotient ``ρ = vᵀ H v``;
* `lanczos_top_eigenvalues`: Lanczos with full reorthogonalisation, the largest Ritz values of ``T_k`` (residual
  stopping rule), `lanczos_top_eigenvalue` the top one;
* `top_hessian_eigenvalue`: the two combined into ``λ_max`` (power iteration shifts when the dominant
  eigenvalue is negative);
* `twice_differentiable_attention`: the attention kernel under which products run (the fused ones have no
  double backward).

No Lightning here; iterations run in float64, products in the parameters' dtype.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Literal

import torch
from torch import Tensor

from .results import EigenEstimate

__all__ = [
    "HessianVectorProduct",
    "lanczos_top_eigenvalue",
    "lanczos_top_eigenvalues",
    "power_iteration",
    "top_hessian_eigenvalue",
    "twice_differentiable_attention",
]

MatVec = Callable[[Tensor], Tensor]
"""A symmetric linear operator on flat float64 vectors."""


@contextmanager
def twice_differentiable_attention() -> Iterator[None]:
    """Inside, `torch.nn.functional.scaled_dot_product_attention` uses its math backend only.

    The fused attention kernels (flash attention, also on CPU; memory-efficient; cuDNN) have a backward but no
    derivative of that backward, so a double backward through them fails
    (``derivative for aten::_scaled_dot_product_flash_attention_for_cpu_backward is not implemented``). The
    math backend is composed of ordinary differentiable operations (matmul, softmax, dropout), so it can be
    differentiated twice. The backend is chosen when the forward runs, so the loss must be computed inside. The
    previous backend selection is restored on exit; training outside is unaffected. Results agree with the
    fused kernels up to floating-point rounding; the math backend materialises the attention matrix, which costs
    memory and time on long sequences.
    """
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError:  # torch < 2.3
        with torch.backends.cuda.sdp_kernel(enable_flash=False, enable_math=True, enable_mem_efficient=False):
            yield
        return
    with sdpa_kernel(SDPBackend.MATH):
        yield


class HessianVectorProduct:
    r"""``v ↦ H v`` with ``H = ∇²_θ L(θ)`` and ``L(θ) = Σ_c w_c L_c(θ)``, never forming ``H``.

    ``H v = ∇_θ ⟨∇_θ L(θ), v⟩`` (Pearlmutter): one backward pass with ``create_graph=True`` for the gradient,
    one more through the gradient for each product. Only `torch.autograd.grad` is used, so no parameter's
    ``.grad`` is read or written. The loss closures and both backward passes run under
    `twice_differentiable_attention` — always, not as a fall-back: every fused attention kernel lacks a double
    backward, so trying one first would only waste a forward and a backward pass before failing.

    Args:
        params: the parameters ``θ`` (tensors with ``requires_grad=True``), flattened in this order.
        losses: closures returning the scalar losses ``L_c`` (e.g. the mean loss of one chunk of samples).
        weights: ``w_c``, one per closure (default 1 each), e.g. ``chunk size / total size``.

    With a single closure its gradient graph is built once and kept across products; with several, each
    product recomputes every chunk's gradient, so memory holds one chunk's graph at a time.
    """

    def __init__(
        self,
        params: Sequence[Tensor],
        losses: Sequence[Callable[[], Tensor]],
        weights: Sequence[float] | None = None,
    ) -> None:
        self.params = list(params)
        if not self.params:
            raise ValueError("HessianVectorProduct needs at least one parameter; pass the trainable parameters.")
        if any(not p.requires_grad for p in self.params):
            raise ValueError("HessianVectorProduct: every parameter must have requires_grad=True.")
        if not losses:
            raise ValueError("HessianVectorProduct needs at least one loss closure.")
        self.losses = list(losses)
        self.weights = [1.0] * len(self.losses) if weights is None else [float(w) for w in weights]
        if len(self.weights) != len(self.losses):
            raise ValueError(f"got {len(self.weights)} weights for {len(self.losses)} loss closures; pass one each.")
        self.dim = sum(p.numel() for p in self.params)
        self.dtype = self.params[0].dtype
        self.device = self.params[0].device
        self._kept: Tensor | None = None
        self._loss_values: dict[int, float] = {}
        self.products = 0

    @property
    def loss(self) -> float:
        """``L(θ) = Σ_c w_c L_c(θ)`` as evaluated by the products (each closure's latest value); ``nan`` before the
        first product."""
        if len(self._loss_values) != len(self.losses):
            return math.nan
        return sum(weight * self._loss_values[index] for index, weight in enumerate(self.weights))

    def _flat_gradient(self, index: int) -> Tensor:
        with torch.enable_grad(), twice_differentiable_attention():
            loss = self.losses[index]()
            if not isinstance(loss, Tensor) or loss.numel() != 1:
                raise ValueError(f"a loss closure must return a scalar tensor, got {type(loss).__name__}.")
            if not torch.isfinite(loss):
                raise ValueError(
                    f"the loss is {loss.item()} (not finite); the Hessian is undefined. Lower the learning rate "
                    "or check the model's outputs."
                )
            self._loss_values[index] = float(loss.detach())
            grads = torch.autograd.grad(loss, self.params, create_graph=True, allow_unused=True)
        return torch.cat(
            [(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(grads, self.params, strict=True)]
        )

    def _grad_of(self, flat_gradient: Tensor, vector: Tensor, retain: bool) -> Tensor:
        if not flat_gradient.requires_grad:  # the loss is affine in θ: H = 0
            return torch.zeros(self.dim, dtype=self.dtype, device=self.device)
        with torch.enable_grad(), twice_differentiable_attention():
            parts = torch.autograd.grad(
                flat_gradient, self.params, grad_outputs=vector, retain_graph=retain, allow_unused=True
            )
        return torch.cat(
            [(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(parts, self.params, strict=True)]
        )

    def __call__(self, vector: Tensor) -> Tensor:
        """``H v`` for a flat ``v`` of length `dim` (returned in float64)."""
        if vector.shape != (self.dim,):
            raise ValueError(f"expected a flat vector of length {self.dim}, got shape {tuple(vector.shape)}.")
        v = vector.to(dtype=self.dtype, device=self.device)
        self.products += 1
        if len(self.losses) == 1:
            if self._kept is None:
                self._kept = self._flat_gradient(0)
            return (self.weights[0] * self._grad_of(self._kept, v, retain=True)).to(torch.float64)
        total = torch.zeros(self.dim, dtype=torch.float64, device=self.device)
        for index, weight in enumerate(self.weights):
            total += weight * self._grad_of(self._flat_gradient(index), v, retain=False).to(torch.float64)
        return total


def _check_settings(tol: float, max_iter: int) -> None:
    if not (isinstance(tol, int | float) and math.isfinite(tol) and 0 < tol < 1):
        raise ValueError(f"`tol` must be a number in (0, 1) (a relative tolerance, e.g. 1e-3), got {tol!r}.")
    if not isinstance(max_iter, int) or isinstance(max_iter, bool) or max_iter < 2:
        raise ValueError(f"`max_iter` must be an integer >= 2 (the cap on Hessian-vector products), got {max_iter!r}.")


def _unit(vector: Tensor) -> Tensor:
    norm = torch.linalg.vector_norm(vector)
    if not torch.isfinite(norm) or norm == 0:
        raise ValueError("the start vector must be finite and non-zero.")
    return vector.to(torch.float64) / norm


def _finite(product: Tensor) -> Tensor:
    if not torch.isfinite(product).all():
        raise ValueError(
            "a Hessian-vector product is not finite (NaN or inf); the loss surface is not twice differentiable "
            "in floating point here — lower the learning rate or check the model's outputs."
        )
    return product


def power_iteration(
    matvec: MatVec, start: Tensor, *, tol: float = 1e-3, max_iter: int = 100, shift: float = 0.0
) -> EigenEstimate:
    r"""Power iteration on ``A = H + s I``; returns the Rayleigh quotient ``ρ = vᵀ H v`` of its last iterate.

    ``w_k = H v_k``, ``ρ_k = v_kᵀ w_k``, ``v_{k+1} = (w_k + s v_k) / ‖w_k + s v_k‖``; stops when
    ``|ρ_k − ρ_{k−1}| ≤ tol · |ρ_k|`` or after ``max_iter`` products. The iterate converges to the eigenvector of
    the eigenvalue of ``H`` whose ``|λ + s|`` is largest (when that one is unique). The result holds the last
    ``v_k`` with its ``ρ_k``, the relative residual ``‖w_k − ρ_k v_k‖ / |ρ_k|`` (0 when ``H v = 0``) and
    ``image_norm = ‖w_k‖``.
    """
    _check_settings(tol, max_iter)
    v = _unit(start)
    previous = math.nan
    for products in range(1, max_iter + 1):
        w = _finite(matvec(v))
        rho = float(torch.dot(v, w))
        image_norm = float(torch.linalg.vector_norm(w))
        residual_norm = float(torch.linalg.vector_norm(w - rho * v))
        residual = residual_norm / abs(rho) if rho != 0 else (0.0 if residual_norm == 0 else math.inf)
        converged = residual_norm == 0 or (not math.isnan(previous) and abs(rho - previous) <= tol * abs(rho))
        shifted = w + shift * v
        norm = torch.linalg.vector_norm(shifted)
        if converged or norm == 0 or products == max_iter:  # norm 0: v is an eigenvector of H (eigenvalue −s)
            return EigenEstimate(rho, v, products, converged or norm == 0, residual, shift, image_norm)
        previous = rho
        v = shifted / norm
    raise AssertionError("unreachable: the loop returns at products == max_iter")


def lanczos_top_eigenvalues(
    matvec: MatVec, start: Tensor, *, k: int = 1, tol: float = 1e-3, max_iter: int = 100
) -> list[EigenEstimate]:
    r"""Lanczos with full reorthogonalisation: the ``k`` largest algebraic Ritz values of the tridiagonal ``T_m``.

    ``q_1 = v / ‖v‖``; ``r = H q_m − β_{m−1} q_{m−1}``, ``α_m = q_mᵀ r``, ``r ← r − α_m q_m`` then re-orthogonalised
    against every ``q_j``, ``β_m = ‖r‖``, ``q_{m+1} = r / β_m``. With ``T_m = S Θ Sᵀ`` the Ritz pair
    ``(θ_i, y_i = Q_m s_i)`` has residual ``‖H y_i − θ_i y_i‖ = β_m |s_{m,i}|``; stops when the top one's is
    ``≤ tol · |θ_1|`` and each of the next ``k − 1`` is ``≤ tol · |θ_1|`` (D1), when ``β_m`` vanishes (an
    invariant subspace: exact) or after ``max_iter`` products. Returns ``min(k, m)`` estimates, largest first,
    each with the products of the whole run. Memory: ``max_iter`` vectors of the parameters' length (float64).
    """
    _check_settings(tol, max_iter)
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f"`k` must be a positive integer (how many top eigenvalues), got {k!r}.")
    q = _unit(start)
    basis: list[Tensor] = []
    alphas: list[float] = []
    betas: list[float] = []
    beta, previous_q = 0.0, torch.zeros_like(q)
    converged = False
    for _ in range(max_iter):
        basis.append(q)
        r = _finite(matvec(q)) - beta * previous_q
        alpha = float(torch.dot(q, r))
        r = r - alpha * q
        stacked = torch.stack(basis)
        r = r - stacked.T @ (stacked @ r)  # full reorthogonalisation (twice is enough in float64)
        r = r - stacked.T @ (stacked @ r)
        alphas.append(alpha)
        beta = float(torch.linalg.vector_norm(r))
        tridiagonal = torch.diag(torch.tensor(alphas, dtype=torch.float64))
        if betas:
            off = torch.tensor(betas, dtype=torch.float64)
            tridiagonal += torch.diag(off, 1) + torch.diag(off, -1)
        values, vectors = torch.linalg.eigh(tridiagonal)
        count = min(k, len(alphas))
        top = abs(float(values[-1]))
        residual_norms = [beta * abs(float(vectors[-1, -1 - i])) for i in range(count)]
        if beta <= 1e-12 * max(top, 1e-300) or (count == k and all(norm <= tol * top for norm in residual_norms)):
            converged = True
            break
        betas.append(beta)
        previous_q, q = q, r / beta
    basis_matrix = torch.stack(basis).T
    estimates = []
    for i in range(min(k, len(alphas))):
        theta = float(values[-1 - i])
        norm = beta * abs(float(vectors[-1, -1 - i]))
        residual = norm / abs(theta) if theta != 0 else (0.0 if norm == 0 else math.inf)
        ritz_vector = basis_matrix @ vectors[:, -1 - i].to(basis[0].device)
        estimates.append(EigenEstimate(theta, ritz_vector, len(basis), converged, residual))
    return estimates


def lanczos_top_eigenvalue(matvec: MatVec, start: Tensor, *, tol: float = 1e-3, max_iter: int = 100) -> EigenEstimate:
    r"""The largest algebraic eigenvalue by `lanczos_top_eigenvalues` with ``k = 1``: stops when the top Ritz pair's
    residual ``‖H y − θ y‖ = β_m |s_m|`` is ``≤ tol · |θ|`` (D1)."""
    return lanczos_top_eigenvalues(matvec, start, k=1, tol=tol, max_iter=max_iter)[0]


def top_hessian_eigenvalue(
    matvec: MatVec,
    dim: int,
    *,
    method: Literal["power", "lanczos"] = "power",
    tol: float = 1e-3,
    max_iter: int = 100,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> EigenEstimate:
    r"""The largest algebraic eigenvalue ``λ_max`` of the symmetric operator ``matvec`` on ``R^dim``.

    The start vector is ``N(0, I)`` from a generator seeded with ``seed`` (the global RNG is not touched).

    ``method="power"``: power iteration on ``H`` gives the dominant eigenvalue ``ρ`` (largest ``|λ|``). If
    ``ρ > 0`` and its residual is ``≤ √tol`` (the iterate is an eigenvector, not a mix of ``±λ``), then
    ``λ_max = ρ``. Otherwise (a negative dominant eigenvalue, or ``λ_max ≈ −λ_min``) iterate again on
    ``H + s I`` with ``s = ‖H v‖ ≈ max|λ|``, whose eigenvalues ``λ + s ≥ ≈ 0`` make ``λ_max + s`` dominant:
    ``λ_max = ρ'`` (the Rayleigh quotient of ``H`` at the shifted run's iterate). ``max_iter`` caps each run.

    ``method="lanczos"``: `lanczos_top_eigenvalue` (no shift needed; faster convergence, more memory).
    ``products`` of the result counts all operator applications.
    """
    if method not in ("power", "lanczos"):
        raise ValueError(f"`method` must be 'power' or 'lanczos', got {method!r}.")
    if not isinstance(dim, int) or dim < 1:
        raise ValueError(f"`dim` must be a positive integer, got {dim!r}.")
    _check_settings(tol, max_iter)
    generator = torch.Generator().manual_seed(seed)
    start = torch.randn(dim, generator=generator, dtype=torch.float64).to(device)
    if method == "lanczos":
        return lanczos_top_eigenvalue(matvec, start, tol=tol, max_iter=max_iter)
    dominant = power_iteration(matvec, start, tol=tol, max_iter=max_iter)
    if dominant.value > 0 and dominant.residual <= math.sqrt(tol):
        return dominant
    shift = dominant.image_norm
    restart = torch.randn(dim, generator=generator, dtype=torch.float64).to(device)
    shifted = power_iteration(matvec, restart, tol=tol, max_iter=max_iter, shift=shift)
    return EigenEstimate(
        shifted.value,
        shifted.vector,
        dominant.products + shifted.products,
        shifted.converged,
        shifted.residual,
        shift,
    )
