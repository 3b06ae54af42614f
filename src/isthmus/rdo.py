"""Rate-distortion optimized encoding: search for the integer code the model's own objective prefers.

Rounding the encoder's output is a fast guess at the code, not the best one: the encoder was trained
with noise standing in for rounding, and it is one network amortized over all data. :func:`search_code`
improves the guess for each sample, in two stages, against what the model was trained to minimize:
its reconstruction loss of the decoded code plus ``lmbda`` times the code's bits.

1. *Refinement*: a few Adam steps on the continuous code itself, as in training (the decoder sees the
   rounded code, the gradient passes through the rounding; the rate is the learned density of the code
   plus uniform noise from a fixed seed). Of the refined code rounded and the plain rounding, each
   sample keeps whichever scores better exactly.
2. *Greedy sweeps*: one value at a time moves by -1 or +1 whenever that lowers the exact objective,
   with the bits that the integer coding tables charge, until no single move helps (or ``sweeps`` run
   out), like the trellis quantization of classical encoders.

Only the encoder searches: a searched stream is an ordinary stream, and the decoder is unchanged. Every
kept change lowers the exact objective of its sample, so the search never ends worse than rounding.
"""

from __future__ import annotations

from typing import cast

import numpy as np
import torch

from isthmus.bottlenecks import FactorizedDensity
from isthmus.entropy import CdfTables, value_bits
from isthmus.model import AutoencoderNet

#: samples decoded at once
_BATCH = 4096
#: Adam steps and learning rate of the refinement (in code units)
REFINE_STEPS = 100
REFINE_LR = 0.1


def search_code(
    net: AutoencoderNet,
    tables: CdfTables,
    x: np.ndarray,
    *,
    lmbda: float,
    sweeps: int,
    refine_steps: int = REFINE_STEPS,
) -> np.ndarray:
    """The integer code that (locally) minimizes ``loss(x, decode(code)) + lmbda * bits(code)`` per sample.

    Parameters
    ----------
    net : AutoencoderNet
        A network with a quantized bottleneck.
    tables : CdfTables
        Its coding tables, one per code channel.
    x : ndarray of shape (n_samples, *input_shape)
        The samples in the network's scaled units.
    lmbda : float
        Weight of one bit against one unit of the reconstruction loss (the model's ``lmbda`` is the
        trade-off it was trained for).
    sweeps : int
        Most greedy passes over the code's values; a sample whose values no single move improves stops
        early. With 0, the code is the encoder's output rounded, and nothing is searched.
    refine_steps : int, default=REFINE_STEPS
        Adam steps of the refinement before the sweeps (0: start the sweeps from the rounding).

    Returns
    -------
    ndarray of int64, shape (n_samples, n_components)
    """
    was_training = net.training
    net.eval()
    device = next(net.parameters()).device
    try:
        xt = torch.as_tensor(np.ascontiguousarray(x), dtype=torch.float32)
        with torch.no_grad():
            h = torch.cat([net.encoder(xt[a : a + _BATCH].to(device)).float().cpu() for a in range(0, len(xt), _BATCH)])
        best = torch.round(h).numpy().astype(np.int64)
        if sweeps <= 0 or best.size == 0:
            return best
        objective = _Objective(net, tables, xt, lmbda, device)
        current = objective(np.arange(len(best)), best)
        if refine_steps > 0:
            refined = np.concatenate(
                [_refine(net, xt[a : a + _BATCH], h[a : a + _BATCH], lmbda, refine_steps, device)
                 for a in range(0, len(xt), _BATCH)]
            )  # fmt: skip
            value = objective(np.arange(len(best)), refined)
            better = value < current
            best[better], current[better] = refined[better], value[better]
        return _sweep(objective, best, current, sweeps)
    finally:
        net.train(was_training)


class _Objective:
    """``(rows, code) -> (len(rows),)``: the exact objective of integer codes of the samples ``rows``."""

    def __init__(self, net: AutoencoderNet, tables: CdfTables, x: torch.Tensor, lmbda: float, device: torch.device):
        self.net, self.tables, self.x, self.lmbda, self.device = net, tables, x, lmbda, device

    @torch.no_grad()
    def __call__(self, rows: np.ndarray, code: np.ndarray) -> np.ndarray:
        out = np.empty(len(rows))
        for a in range(0, len(rows), _BATCH):
            part = rows[a : a + _BATCH]
            z = torch.as_tensor(code[a : a + _BATCH], dtype=torch.float32, device=self.device)
            out[a : a + len(part)] = self.net.nll(self.x[part].to(self.device), z).double().cpu().numpy()
        channels = np.broadcast_to(np.arange(code.shape[1]), code.shape)
        return out + self.lmbda * value_bits(code, self.tables, channels).sum(axis=1)


def _refine(
    net: AutoencoderNet, x: torch.Tensor, h: torch.Tensor, lmbda: float, steps: int, device: torch.device
) -> np.ndarray:
    """``(batch, n_components)`` int64: the code ``h`` after Adam steps on the training objective, rounded."""
    x = x.to(device)
    y = h.clone().to(device).requires_grad_(True)
    optimizer = torch.optim.Adam([y], lr=REFINE_LR)
    generator = torch.Generator(device=device).manual_seed(0)  # the same input always gives the same stream
    density = cast(FactorizedDensity, net.bottleneck.density)
    for _ in range(steps):
        noise = torch.rand(y.shape, generator=generator, device=device) - 0.5
        code = y + (torch.round(y) - y).detach()  # the decoder sees the rounding; the gradient passes through
        bits = -torch.log2(density.likelihood(y + noise)).sum(dim=1)
        loss = (net.nll(x, code) + lmbda * bits).sum()  # a sum: each sample's steps ignore the others
        (y.grad,) = torch.autograd.grad(loss, [y])  # the network's own gradients stay untouched
        optimizer.step()
    return torch.round(y.detach()).cpu().numpy().astype(np.int64)


def _sweep(objective: _Objective, best: np.ndarray, current: np.ndarray, sweeps: int) -> np.ndarray:
    """Greedy +-1 moves of single values while they lower ``objective``; changes ``best`` in place."""
    active = np.arange(len(best))
    for _ in range(sweeps):
        moved = np.zeros(len(best), dtype=bool)
        for j in range(best.shape[1]):
            for step in (-1, 1):
                candidate = best[active]
                candidate[:, j] += step
                value = objective(active, candidate)
                better = value < current[active]
                rows = active[better]
                best[rows] = candidate[better]
                current[rows] = value[better]
                moved[rows] = True
        active = np.flatnonzero(moved)
        if not active.size:
            break
    return best
