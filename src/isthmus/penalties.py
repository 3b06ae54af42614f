"""Code regularizers: loss terms on the code and activation constraints that shape it.

A penalty is one entry of ``PENALTIES``: an optional loss ``term`` (weighted by ``penalty_weight`` in the
loss; ``"auto"`` is the entry's own ``weight``) and an optional ``constrain`` applied to the code wherever it
is computed (training and ``transform`` alike); it says whether the code may be wider than the input
(``overcomplete``): a regularized code need not be a bottleneck to learn something. An entry declares its
hyper-parameters (``params``: default, meaning, allowed values); the estimator takes them by name in
``penalty_params`` (``sparsity_target`` and ``sparsity_k`` are also parameters of their own), and the term
and the constraint read them resolved, from ``ctx.params``. So a new penalty, hyper-parameters included,
is a function and a table line here; ``config.CHOICES`` follows the table, and the estimator's docstring
lists the name (``tests/test_choices.py`` fails until it does).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import torch
from torch import Tensor

from isthmus.errors import ConfigError
from isthmus.settings import ModelConfig

#: keeps the mean activation away from 0 and 1, where the KL divergence's logarithms blow up
_RATE_EPS = 1e-6
#: perplexity of the "tsne" input affinities, at most a third of the batch. van der Maaten (2009) used
#: 30 in batches of 5,000; a batch of 500 MNIST rows gives 2-D codes with held-out kNN-5 accuracy
#: 0.80 at 30, 0.84 at 10 and 0.84 at 3 (10,000 training rows, 30 epochs): a small batch is a sparse
#: sample of the data, so its nearest rows are already far
TSNE_PERPLEXITY = 5.0
#: bisection steps on each row's log precision; the search interval is LOG_BETA_RANGE wide, so the
#: precision is found to within a factor exp(LOG_BETA_RANGE / 2**steps) (1.000002)
_TSNE_STEPS = 30
#: degrees of freedom of the Student-t kernel on the code: 1 is t-SNE's; below 1 the heavier tail
#: separates clusters further (Kobak et al., 2019): kNN-5 accuracy 0.80 at 0.5, 0.78 at 1 (as above)
TSNE_DOF = 0.5
_LOG_BETA_RANGE = (-10.0, 20.0)


class PenaltyContext(NamedTuple):
    """What a penalty term may look at."""

    x: Tensor  # (batch, *input_shape): the encoder's (possibly corrupted) input
    code: Tensor  # (batch, n_components): the constrained code
    encode: Callable[[Tensor], Tensor]  # input -> code, differentiable, for Jacobian penalties
    config: ModelConfig
    params: Mapping[str, Any]  # the penalty's hyper-parameters, resolved (``penalty_params``)
    # (weight (n_components, n_features), bias) when the code is constrain(weight @ x.flatten() + bias)
    # exactly (a one-layer encoder and a deterministic bottleneck): penalties may use closed forms then
    affine: tuple[Tensor, Tensor] | None = None


class Param(NamedTuple):
    """A penalty's hyper-parameter: its default, what it means (one line), and which values it takes."""

    default: Any
    doc: str
    allowed: Callable[[Any], bool]
    must_be: str  # what ``allowed`` accepts, for the error: "an integer >= 1"


class Penalty(NamedTuple):
    """A table entry: loss term, code constraint, whether the code may be wider than the input, the
    weight of the term that ``penalty_weight="auto"`` stands for, and the hyper-parameters."""

    term: Callable[[PenaltyContext], Tensor] | None = None
    constrain: Callable[[Tensor, Mapping[str, Any]], Tensor] | None = None
    overcomplete: bool = False
    # a weight at which the term does its job on its own, beside a reconstruction loss summed over the
    # features of a sample (see each entry); 0 for entries without a term
    weight: float = 0.0
    params: Mapping[str, Param] = {}
    # a check of the resolved hyper-parameters against the rest of the config: None, or what is wrong
    check: Callable[[Mapping[str, Any], ModelConfig], str | None] | None = None


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _is_rate(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 < value < 1.0


def penalty_params(config: ModelConfig) -> dict[str, Any]:
    """The hyper-parameters of ``config.penalty``: each from ``penalty_params``, else from the config field
    of its name, else its default."""
    given = config.penalty_params or {}
    declared = PENALTIES[config.penalty].params
    return {name: given.get(name, getattr(config, name, p.default)) for name, p in declared.items()}


def check_params(config: ModelConfig) -> None:
    """Refuse hyper-parameters that the penalty does not declare or whose values it does not take.

    The hyper-parameters that are config fields of their own (``sparsity_target``) are checked whatever the
    penalty, as every field is; ``penalty_params`` must name the chosen penalty's own.
    """
    fields = {name: p for entry in PENALTIES.values() for name, p in entry.params.items() if hasattr(config, name)}
    for name, p in fields.items():
        _check_value(name, getattr(config, name), p)
    entry, given = PENALTIES[config.penalty], dict(config.penalty_params or {})
    for name, value in given.items():
        if name in fields:
            raise ConfigError(f"penalty_params sets {name}, which is a parameter of its own: set {name}={value!r}")
        if name not in entry.params:
            takes = ", ".join(entry.params) or "no hyper-parameters"
            raise ConfigError(f"penalty_params sets {name}, but penalty={config.penalty!r} takes {takes}")
        _check_value(name, value, entry.params[name])
    problem = None if entry.check is None else entry.check(penalty_params(config), config)
    if problem is not None:
        raise ConfigError(problem)


def _check_value(name: str, value: Any, param: Param) -> None:
    if not param.allowed(value):
        raise ConfigError(f"{name}={value!r} must be {param.must_be}")


def penalty_weight(config: ModelConfig) -> float:
    """The weight of the penalty term: ``config.penalty_weight``, or its table entry's for ``"auto"``."""
    if config.penalty_weight == "auto":
        return PENALTIES[config.penalty].weight
    return float(config.penalty_weight)


def l1_activity(ctx: PenaltyContext) -> Tensor:
    """Mean over the batch of the code's L1 norm."""
    return ctx.code.abs().sum(dim=1).mean()


def sigmoid_code(code: Tensor, params: Mapping[str, Any]) -> Tensor:
    """Squash the code into (0, 1): unit activations that a rate can describe."""
    return torch.sigmoid(code)


def kl_sparsity(ctx: PenaltyContext) -> Tensor:
    """``sum_j KL(rho || rho_hat_j)``: each unit's batch-mean activation ``rho_hat_j`` pulled toward the
    target rate ``rho = sparsity_target`` (Ng, "Sparse autoencoder", CS294A notes)."""
    rho = ctx.params["sparsity_target"]
    rho_hat = ctx.code.float().mean(dim=0).clamp(_RATE_EPS, 1.0 - _RATE_EPS)  # (n_components,)
    kl = rho * torch.log(rho / rho_hat) + (1.0 - rho) * torch.log((1.0 - rho) / (1.0 - rho_hat))
    return kl.sum()


def top_k(code: Tensor, params: Mapping[str, Any]) -> Tensor:
    """Keep each row's ``sparsity_k`` largest values and zero the rest (Makhzani & Frey, 2013).

    The winners are picked by index (``topk`` + ``scatter``), so ties still leave exactly k entries; a
    winner that is exactly zero becomes the smallest normal float, so the support is always k wide
    without changing any output measurably. Gradients flow through the winners only.
    """
    values, index = code.topk(params["sparsity_k"], dim=1)  # (batch, k)
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


def _squared_distances(v: Tensor) -> Tensor:
    """``(batch, batch)`` squared Euclidean distances between rows, without a square root (whose gradient
    is infinite at zero)."""
    sq = v.square().sum(dim=1)  # (batch,)
    return (sq[:, None] + sq[None, :] - 2.0 * v @ v.T).clamp_min(0.0)


@torch.no_grad()
def tsne_affinities(x: Tensor, perplexity: float = TSNE_PERPLEXITY) -> Tensor:
    """``(batch, batch)`` joint input affinities P of t-SNE within a batch ``(batch, *input_shape)``.

    Row i holds a Gaussian conditional ``p_{j|i}`` over its ``3 * perplexity`` nearest other rows (as in
    Barnes-Hut t-SNE; the rest get 0), its precision found by bisection so that its entropy is
    ``log(perplexity)``; ``P = (p_{j|i} + p_{i|j}) / (2 batch)`` sums to 1. The perplexity is capped at
    ``(batch - 1) / 3``, so that small batches still have near and far rows.
    """
    n = len(x)
    perplexity = min(perplexity, (n - 1) / 3.0)
    d = _squared_distances(x.detach().flatten(1).float())  # (batch, batch)
    d.fill_diagonal_(math.inf)  # no row is its own neighbour
    near, index = d.topk(min(n - 1, math.ceil(3 * perplexity)), dim=1, largest=False)  # (batch, k), ascending
    near = near - near[:, :1]  # shifts leave p unchanged; the nearest row weighs 1
    near = near / near.mean(dim=1, keepdim=True).clamp_min(1e-12)  # mean 1: one search interval fits every row
    lo = torch.full((n, 1), _LOG_BETA_RANGE[0], device=x.device)
    hi = torch.full((n, 1), _LOG_BETA_RANGE[1], device=x.device)
    for _ in range(_TSNE_STEPS):
        mid = (lo + hi) / 2.0
        beta = mid.exp()
        w = (-beta * near).exp()  # (batch, k)
        z = w.sum(dim=1, keepdim=True)
        entropy = z.log() + beta * (w * near).sum(dim=1, keepdim=True) / z  # (batch, 1) nats
        too_flat = entropy > math.log(perplexity)  # the entropy falls as the precision rises
        lo = torch.where(too_flat, mid, lo)
        hi = torch.where(too_flat, hi, mid)
    w = (-((lo + hi) / 2.0).exp() * near).exp()
    conditional = torch.zeros_like(d).scatter_(1, index, w / w.sum(dim=1, keepdim=True))  # (batch, batch)
    return (conditional + conditional.T) / (2.0 * n)


def tsne(ctx: PenaltyContext) -> Tensor:
    """``KL(P || Q)`` of parametric t-SNE within the batch (van der Maaten, 2009), in nats.

    P: Gaussian affinities of the encoder's inputs at perplexity ``TSNE_PERPLEXITY``
    (``tsne_affinities``); Q: Student-t affinities (``TSNE_DOF`` degrees of freedom) of the codes. Rows close in
    the input are pulled together in the code and far ones pushed apart, so that a low-dimensional code
    keeps neighbourhoods (clusters) rather than whatever reconstructs best. Larger batches see more
    true neighbours per row.
    """
    n = len(ctx.code)
    if n < 4:  # a perplexity needs near and far rows
        return ctx.code.float().sum() * 0.0
    p = tsne_affinities(ctx.x, TSNE_PERPLEXITY)  # (batch, batch), sums to 1
    # (batch, batch) log Student-t kernel
    log_w = -(TSNE_DOF + 1.0) / 2.0 * torch.log1p(_squared_distances(ctx.code.float()) / TSNE_DOF)
    eye = torch.eye(n, dtype=torch.bool, device=log_w.device)
    log_q = log_w - log_w.masked_fill(eye, -math.inf).logsumexp(dim=(0, 1))  # (batch, batch), Q sums to 1
    return (torch.xlogy(p, p) - p * log_q.masked_fill(eye, 0.0)).sum()


_RATE = "a number strictly between 0 and 1 (the target mean activation of a code unit), e.g. sparsity_target=0.05"


def _k_fits(params: Mapping[str, Any], config: ModelConfig) -> str | None:
    if params["sparsity_k"] <= config.n_components:
        return None
    return (
        f"sparsity_k={params['sparsity_k']} must be <= n_components={config.n_components} with penalty='topk'; "
        "lower sparsity_k or raise n_components"
    )


PENALTIES: dict[str, Penalty] = {
    "none": Penalty(),
    "l1": Penalty(term=l1_activity, overcomplete=True, weight=1e-3),
    # 1.0: 100 units on the digits reach a mean activation of 0.05 +- 0.02 for sparsity_target=0.05
    # (tests/test_defaults.py); 1e-3 left them at 0.43
    "kl_sparsity": Penalty(
        term=kl_sparsity,
        constrain=sigmoid_code,
        overcomplete=True,
        weight=1.0,
        params={"sparsity_target": Param(0.05, "target mean activation of each code unit", _is_rate, _RATE)},
    ),
    "topk": Penalty(
        constrain=top_k,
        overcomplete=True,
        params={"sparsity_k": Param(10, "non-zero code units per sample", _is_count, "an integer >= 1")},
        check=_k_fits,
    ),
    "contractive": Penalty(term=contractive, constrain=sigmoid_code, overcomplete=True, weight=0.1),
    # the KL of t-SNE is a few nats per batch: 3000 makes it dominate the reconstruction (preset embed-2d)
    "tsne": Penalty(term=tsne, weight=3000.0),
}
