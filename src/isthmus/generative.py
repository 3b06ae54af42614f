"""The generative uses of a variational autoencoder: ELBO, importance-weighted log-likelihood, sampling,
and interpolation between codes (any bottleneck).

Everything here works on a trained :class:`~isthmus.model.AutoencoderNet` in the network's (scaled)
units; ``Autoencoder`` wraps it for the caller's units. Log-likelihoods are in nats per sample, with
the reconstruction loss read as a likelihood (``model.RECONSTRUCTION``): Bernoulli for ``"bce"``,
Gaussian with variance 1/2 for ``"mse"``, Gaussian with learned per-feature variance for ``"gaussian"``.

With a posterior ``q(z|x) = N(mu, diag(sigma^2))`` from the encoder, the prior ``p(z) = N(0, I)`` and
the decoder's ``p(x|z)``, the importance-weighted bound (Burda et al., 2016) with K samples is

    log p(x) >= L_K = logsumexp_k [log p(x|z_k) + log p(z_k) - log q(z_k|x)] - log K,  z_k ~ q(z|x)

``L_1`` is the ELBO, ``E[L_K]`` grows with K and tends to ``log p(x)``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from isthmus.errors import ConfigError
from isthmus.model import AutoencoderNet
from isthmus.nets import crop_like
from isthmus.shapes import any_size

if TYPE_CHECKING:
    from isthmus.fitted import Fitted

#: decoder rows per call in ``log_likelihood`` (data rows x importance samples): bounds memory
MAX_ROWS = 8192
_LOG_2PI = math.log(2 * math.pi)


def check_generative(net: AutoencoderNet, what: str) -> None:
    """Raise ConfigError unless ``net`` has a probabilistic code (a bottleneck with a posterior)."""
    if not net.bottleneck.variational:
        raise ConfigError(
            f"{what} needs a generative model, but this one has bottleneck={net.config.bottleneck!r}; "
            "train it with bottleneck='gaussian' (e.g. preset 'vae')"
        )


def posterior(net: AutoencoderNet, x: Tensor) -> tuple[Tensor, Tensor]:
    """``(mean, log_var)``, each ``(batch, n_components)``, of q(z|x)."""
    check_generative(net, "the posterior")
    return net.bottleneck.posterior(net.encoder(x))


def _log_normal(z: Tensor, mean: Tensor, log_var: Tensor) -> Tensor:
    # (..., n_components) -> (...): log N(z; mean, exp(log_var)) summed over the last axis
    return -0.5 * ((z - mean).square() * (-log_var).exp() + log_var + _LOG_2PI).sum(-1)


def log_weights(net: AutoencoderNet, x: Tensor, n_samples: int, *, generator: torch.Generator | None = None) -> Tensor:
    """``(n_samples, batch)`` importance log-weights ``log p(x|z) + log p(z) - log q(z|x)``, z ~ q(z|x)."""
    return _log_weights(net, x, *posterior(net, x), n_samples, generator)


def _log_weights(
    net: AutoencoderNet, x: Tensor, mean: Tensor, log_var: Tensor, n_samples: int, generator: torch.Generator | None
) -> Tensor:
    # (n_samples, batch) log-weights given the posterior (mean, log_var), each (batch, n_components)
    eps = torch.randn((n_samples, *mean.shape), generator=generator, device=mean.device, dtype=mean.dtype)
    z = mean + (0.5 * log_var).exp() * eps  # (n_samples, batch, n_components)
    log_q = _log_normal(z, mean, log_var)
    log_prior = _log_normal(z, torch.zeros_like(z), torch.zeros_like(z))
    rows = x.expand(n_samples, *x.shape).reshape(-1, *x.shape[1:])  # (n_samples * batch, *input_shape)
    log_px = -net.nll(rows, z.reshape(-1, z.shape[-1])).reshape(n_samples, len(x))
    return log_px + log_prior - log_q


def log_likelihood(
    net: AutoencoderNet, x: Tensor, n_importance: int, *, generator: torch.Generator | None = None
) -> Tensor:
    """``(batch,)`` importance-weighted estimate ``L_K`` of log p(x) in nats, ``K = n_importance``.

    The samples are drawn in chunks of at most ``MAX_ROWS`` decoder rows and only their log-weights
    (``(K, batch)``) are kept, so memory stays bounded for any K.
    """
    if isinstance(n_importance, bool) or not isinstance(n_importance, int) or n_importance < 1:
        raise ConfigError(f"n_importance={n_importance!r} must be an integer >= 1 (1 gives the ELBO)")
    check_generative(net, "log_likelihood")
    out = []
    batch = max(1, min(len(x), MAX_ROWS))
    for start in range(0, len(x), batch):
        xb = x[start : start + batch]
        mean, log_var = posterior(net, xb)  # encoded once, sampled n_importance times
        chunk = max(1, MAX_ROWS // len(xb))
        weights = [
            _log_weights(net, xb, mean, log_var, min(chunk, n_importance - done), generator)
            for done in range(0, n_importance, chunk)
        ]
        out.append(torch.logsumexp(torch.cat(weights), dim=0) - math.log(n_importance))
    return torch.cat(out) if out else x.new_zeros(0)


def elbo(net: AutoencoderNet, x: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
    """``(batch,)`` one-sample estimate of the ELBO in nats (beta 1, no warm-up, no free bits)."""
    return log_likelihood(net, x, 1, generator=generator)


def sample(net: AutoencoderNet, n: int, *, generator: torch.Generator | None = None) -> Tensor:
    """``(n, *input_shape)``: decoder means (expected values of p(x|z)) at ``z ~ N(0, I)``, scaled units."""
    check_generative(net, "sample")
    device = next(net.parameters()).device
    z = torch.randn((n, net.config.n_components), generator=generator, device=device)
    return net.decode(z)


def interpolate(net: AutoencoderNet, a: Tensor, b: Tensor, steps: int) -> Tensor:
    """``(batch, steps, *input_shape)``: decodings of ``(1 - t) code(a) + t code(b)``, t from 0 to 1.

    The codes are the deterministic ones (``encode``: the posterior mean of a VAE), so this works for
    every bottleneck; ``a`` and ``b`` are ``(batch, *input_shape)`` in scaled units.
    """
    za, zb = net.encode(a), net.encode(b)  # (batch, n_components), or a code map (batch, n_components, h, w)
    t = torch.linspace(0.0, 1.0, steps, device=za.device, dtype=za.dtype)
    t = t.reshape(1, steps, *[1] * (za.ndim - 1))  # (1, steps, 1, ...): one weight per step, broadcast
    z = (1 - t) * za[:, None] + t * zb[:, None]  # (batch, steps, *code shape)
    out = crop_like(net.decode(z.reshape(-1, *za.shape[1:])), a)  # a code map's decoding cut to a's size
    return out.reshape(len(a), steps, *out.shape[1:])


def log_jacobian(scale: np.ndarray, loss: str) -> float:
    """log |Jacobian| of a scaler of ``scale``: what turns a density of scaled values into one in the caller's
    units (subtract it); 0 for the Bernoulli loss ``"bce"``, whose likelihood is a probability, not a density."""
    if loss == "bce":
        return 0.0
    return float(np.log(scale.astype(np.float64)).sum())


# ---------------------------------------------------------------------------------------- in the caller's units


def draw(fitted: Fitted, n_samples: int, random_state: Any) -> np.ndarray:
    """``(n_samples, *input_shape)`` decoder means at codes drawn from the prior, in the caller's units."""
    fitted.check_decoder("sample")
    check_generative(fitted.net, "sample")
    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
        raise ConfigError(f"n_samples={n_samples!r} must be an integer >= 1")
    fitted.net.eval()
    with torch.inference_mode():
        out = sample(fitted.net, int(n_samples), generator=fitted.generator(random_state))
    out_np = out.float().cpu().numpy().reshape(int(n_samples), *fitted.input_shape)
    return fitted.scaler.inverse_transform(out_np)


def check_steps(steps: Any) -> None:
    """Refuse an interpolation of fewer than 2 points."""
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 2:
        raise ConfigError(f"steps={steps!r} must be an integer >= 2 (both end points included)")


def interpolate_scaled(
    fitted: Fitted, sa: np.ndarray, sb: np.ndarray, steps: int, shape: tuple[int, ...]
) -> np.ndarray:
    """``(n, steps, *sample shape)`` in the caller's units: :func:`interpolate` between the scaled samples
    ``sa`` and ``sb`` of one shape; ``shape`` is ``a``'s sample shape (a fully convolutional model keeps it)."""
    device = fitted.device
    fitted.net.eval()
    with torch.inference_mode():
        out = interpolate(fitted.net, torch.from_numpy(sa).to(device), torch.from_numpy(sb).to(device), steps)
    shape = shape if fitted.spatial else tuple(fitted.input_shape)  # any size: a's own
    out_np = out.float().cpu().numpy().reshape(len(sa), steps, *shape)
    return (any_size(fitted.scaler) if fitted.spatial else fitted.scaler).inverse_transform(out_np)


def check_likelihood(fitted: Fitted) -> None:
    """Refuse a likelihood of a model without a decoder or without a probabilistic code."""
    fitted.check_decoder("compute a likelihood")
    check_generative(fitted.net, "log_likelihood")


def log_likelihood_of(fitted: Fitted, scaled: np.ndarray, n_importance: int, random_state: Any) -> np.ndarray:
    """``(n,)`` float64 :func:`log_likelihood` of scaled rows, in nats of the caller's units (the scaler's
    log-Jacobian included; see :func:`log_jacobian`)."""
    x = torch.from_numpy(scaled).to(fitted.device)
    fitted.net.eval()
    with torch.inference_mode():
        ll = log_likelihood(fitted.net, x, n_importance, generator=fitted.generator(random_state))
    return ll.double().cpu().numpy() - log_jacobian(fitted.scaler.scale, fitted.resolved["loss"])
