"""Code regularizers: loss terms on the code and activation constraints that shape it.

A penalty has an optional loss ``term`` (weighted by ``penalty_weight`` in the loss) and an optional
``constrain`` applied to the code wherever it is computed (training and ``transform`` alike), and says
whether the code may be wider than the input (``overcomplete``): a regularized code need not be a
bottleneck to learn something.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from isthmus.config import ModelConfig

#: keeps the mean activation away from 0 and 1, where the KL divergence's logarithms blow up
_RATE_EPS = 1e-6


class PenaltyContext(NamedTuple):
    """What a penalty term may look at."""

    x: Tensor  # (batch, *input_shape): the encoder's (possibly corrupted) input
    code: Tensor  # (batch, n_components): the constrained code
    encode: Callable[[Tensor], Tensor]  # input -> code, differentiable, for Jacobian penalties
    config: ModelConfig
    # (weight (n_components, n_features), bias) when the code is constrain(weight @ x.flatten() + bias)
    # exactly (a one-layer encoder and a deterministic bottleneck): penalties may use closed forms then
    affine: tuple[Tensor, Tensor] | None = None


class Penalty(NamedTuple):
    """A table entry: loss term, code constraint, and whether the code may be wider than the input."""

    term: Callable[[PenaltyContext], Tensor] | None = None
    constrain: Callable[[Tensor, ModelConfig], Tensor] | None = None
    overcomplete: bool = False


def l1_activity(ctx: PenaltyContext) -> Tensor:
    """Mean over the batch of the code's L1 norm."""
    return ctx.code.abs().sum(dim=1).mean()


def sigmoid_code(code: Tensor, config: ModelConfig) -> Tensor:
    """Squash the code into (0, 1): unit activations that a rate can describe."""
    return torch.sigmoid(code)


def kl_sparsity(ctx: PenaltyContext) -> Tensor:
    """``sum_j KL(rho || rho_hat_j)``: each unit's batch-mean activation ``rho_hat_j`` pulled toward the
    target rate ``rho = sparsity_target`` (Ng, "Sparse autoencoder", CS294A notes)."""
    rho = ctx.config.sparsity_target
    rho_hat = ctx.code.float().mean(dim=0).clamp(_RATE_EPS, 1.0 - _RATE_EPS)  # (n_components,)
    kl = rho * torch.log(rho / rho_hat) + (1.0 - rho) * torch.log((1.0 - rho) / (1.0 - rho_hat))
    return kl.sum()


def top_k(code: Tensor, config: ModelConfig) -> Tensor:
    """Keep each row's ``sparsity_k`` largest values and zero the rest (Makhzani & Frey, 2013).

    The winners are picked by index (``topk`` + ``scatter``), so ties still leave exactly k entries; a
    winner that is exactly zero becomes the smallest normal float, so the support is always k wide
    without changing any output measurably. Gradients flow through the winners only.
    """
    values, index = code.topk(config.sparsity_k, dim=1)  # (batch, k)
    tiny = torch.finfo(code.dtype).tiny
    values = torch.where(values == 0, torch.full_like(values, tiny), values)
    return torch.zeros_like(code).scatter(1, index, values)


def jacobian_norm_sq(encode: Callable[[Tensor], Tensor], x: Tensor, *, create_graph: bool = True) -> Tensor:
    """``(batch,)`` squared Frobenius norm of each sample's Jacobian d code / d input, exactly.

    One batched vector-Jacobian product per code unit (``is_grads_batched``): row j of every sample's
    Jacobian at once. Exact for any encoder whose samples do not interact (no batch statistics).
    """
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        code = encode(x)  # (batch, n_components)
        n = code.shape[1]
        # basis[j] selects unit j in every sample: (n_components, batch, n_components)
        basis = torch.eye(n, dtype=code.dtype, device=code.device)[:, None, :].expand(n, *code.shape)
        (rows,) = torch.autograd.grad(code, x, basis, create_graph=create_graph, is_grads_batched=True)
    return rows.float().square().flatten(2).sum(dim=(0, 2))  # (n_components, batch, features) -> (batch,)


def contractive(ctx: PenaltyContext) -> Tensor:
    """Batch mean of ``||d code / d x||_F^2`` (Rifai et al., 2011).

    For a one-layer sigmoid encoder ``h = sigmoid(W x + b)`` it is the closed form
    ``sum_j (h_j (1 - h_j))^2 ||W_j||^2``; for any other encoder the exact Jacobian from autograd.
    """
    if ctx.affine is not None:
        weight, _ = ctx.affine
        h = ctx.code.float()  # (batch, n_components): sigmoid outputs
        return ((h * (1.0 - h)).square() * weight.float().square().sum(dim=1)).sum(dim=1).mean()
    return jacobian_norm_sq(ctx.encode, ctx.x).mean()


PENALTIES: dict[str, Penalty] = {
    "none": Penalty(),
    "l1": Penalty(term=l1_activity, overcomplete=True),
    "kl_sparsity": Penalty(term=kl_sparsity, constrain=sigmoid_code, overcomplete=True),
    "topk": Penalty(constrain=top_k, overcomplete=True),
    "contractive": Penalty(term=contractive, constrain=sigmoid_code, overcomplete=True),
}
