"""The SharpnessMonitor's fit-start probes (docs/dynamics.md D1): the loss must be a differentiable scalar, no
``@once_differentiable`` function may sit in its graph, and one Hessian-vector product must run."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from ..distributions import MisconfigurationError
from ..dynamics import HessianVectorProduct
from ..lightning_internals import autograd_function_class
from .sharpness_loss import BINARY_LOSS_EXAMPLE, MULTICLASS_LOSS_EXAMPLE, cross_entropy_loss

__all__ = ["check_loss", "default_loss", "first_line", "probe_double_backward", "refuse_once_differentiable"]

_ONCE_DIFFERENTIABLE_CODE = once_differentiable(lambda ctx: None).__code__
"""The code of the wrapper `torch.autograd.function.once_differentiable` puts around a backward."""

Refuse = Callable[[str], MisconfigurationError]
"""The monitor's ``error``: a `MisconfigurationError` with the monitor's name."""


def _graph_nodes(root: Any) -> Iterator[Any]:
    """Every node of the autograd graph that ends in ``root`` (a ``grad_fn``), each once."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        yield node
        stack.extend(child for child, _ in node.next_functions)


def first_line(failure: BaseException) -> str:
    """The first line of an exception's message, or its class name when the message is empty."""
    text = str(failure).strip()
    return text.splitlines()[0] if text else type(failure).__name__


def default_loss(error: Refuse, pl_module: Any, batch: Any) -> Tensor:
    """`cross_entropy_loss` on ``batch``, its errors turned into a `MisconfigurationError` that says what the
    default loss computes and names ``loss_fn=`` with an example (its own such errors pass unchanged)."""
    try:
        return cross_entropy_loss(pl_module, batch)
    except (MisconfigurationError, torch.cuda.OutOfMemoryError):
        raise
    except Exception as failure_error:
        failure = first_line(failure_error)
        raise error(
            "the default loss (cross entropy of the model's class scores against `(x, y)` batches' labels; "
            "binary cross entropy with labels 0 or 1 for a model of one logit) fails on one training sample: "
            f"{type(failure_error).__name__}: {failure}. Pass the loss you train with as `loss_fn=`, e.g. "
            f"`{MULTICLASS_LOSS_EXAMPLE}` or, for one logit, `{BINARY_LOSS_EXAMPLE}`."
        ) from failure_error


def check_loss(error: Refuse, loss: Any) -> None:
    """``loss`` must be a scalar tensor that depends on the trainable parameters."""
    if not isinstance(loss, Tensor) or loss.numel() != 1:
        got = f"a tensor of shape {tuple(loss.shape)}" if isinstance(loss, Tensor) else type(loss).__name__
        raise error(
            f"`loss_fn` must return the mean loss of a batch as a scalar tensor, got {got}. Pass "
            "`loss_fn=lambda module, batch: <mean training loss of the batch>`."
        )
    if not loss.requires_grad:
        raise error(
            "`loss_fn`'s loss does not depend on the trainable parameters (no gradient); it must run the model "
            "on the batch with gradients enabled."
        )


def refuse_once_differentiable(error: Refuse, loss: Tensor) -> None:
    """Refuse a custom ``autograd.Function`` whose backward is marked ``@once_differentiable`` in the loss's graph.

    Its double backward does not fail under `torch.autograd.grad`: the error node it leaves hangs off detached
    inputs, so the engine prunes it, and when the incoming gradient needs no grad nothing is recorded at all —
    the Hessian-vector product then silently misses every term through that function. Only the forward graph
    shows it, so it is searched here."""
    classes = (autograd_function_class(node) for node in _graph_nodes(loss.grad_fn))
    functions = sorted(
        {
            cls.__name__
            for cls in classes
            if getattr(getattr(cls, "backward", None), "__code__", None) is _ONCE_DIFFERENTIABLE_CODE
        }
    )
    if functions:
        raise error(
            f"the loss goes through the custom autograd.Function {', '.join(functions)} whose backward is marked "
            "@once_differentiable: torch treats its backward as a constant when differentiating a second time "
            "(no error), so every Hessian-vector product — and λ_max — would be wrong. Make its backward "
            "differentiable (remove @once_differentiable and write the backward with differentiable torch "
            "operations), freeze the parameters that feed into it (requires_grad=False), or remove the "
            "SharpnessMonitor."
        )


def probe_double_backward(error: Refuse, params: list[Tensor], closure: Callable[[], Tensor], seed: int) -> None:
    """One Hessian-vector product of ``closure``'s loss; an operation without a double backward is a
    MisconfigurationError."""
    operator = HessianVectorProduct(params, [closure])
    generator = torch.Generator().manual_seed(seed)
    vector = torch.randn(operator.dim, generator=generator, dtype=torch.float64)
    try:
        operator(vector)
    except torch.cuda.OutOfMemoryError:  # not about differentiability
        raise
    except RuntimeError as failure_error:
        failure = first_line(failure_error)
        raise error(
            "cannot compute a Hessian-vector product (a double backward through the model) on one training "
            f"sample: {failure}. Every operation between the trainable parameters and the loss must be "
            "differentiable twice: replace the failing one (e.g. a custom autograd.Function marked "
            "@once_differentiable, or a fused kernel without double backward) by a differentiable form, freeze "
            "the parameters that feed into it (requires_grad=False), or remove the SharpnessMonitor. (Attention "
            "is already computed with its math backend, which is differentiable twice.)"
        ) from failure_error
