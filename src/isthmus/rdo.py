"""Rate-distortion optimized encoding: search for the integer code the model's own objective prefers.

Rounding the encoder's output is a fast guess at the code, not the best one: the encoder was trained
with noise standing in for rounding, and it is one network amortized over all data. :func:`search_code`
starts from the rounded code and moves one value at a time by -1 or +1 whenever that lowers, exactly,
what the model was trained to minimize: its reconstruction loss of the decoded integer code plus
``lmbda`` times the bits that the integer coding tables charge for the code. It sweeps over the
code's values until no single move helps (or ``sweeps`` run out), like the trellis quantization of
classical encoders. Only the encoder searches: a searched stream is an ordinary stream, and the
decoder is unchanged.

Every accepted move lowers the objective of its sample, so the search never ends worse than rounding.
"""

from __future__ import annotations

import numpy as np
import torch

from isthmus.entropy import CdfTables, value_bits
from isthmus.model import AutoencoderNet

#: samples decoded at once
_BATCH = 4096


@torch.no_grad()
def search_code(
    net: AutoencoderNet,
    tables: CdfTables,
    x: np.ndarray,
    code: np.ndarray,
    *,
    lmbda: float,
    sweeps: int,
) -> np.ndarray:
    """The integer code that greedily minimizes ``loss(x, decode(code)) + lmbda * bits(code)`` per sample.

    Parameters
    ----------
    net : AutoencoderNet
        A network with a quantized bottleneck.
    tables : CdfTables
        Its coding tables, one per code channel.
    x : ndarray of shape (n_samples, *input_shape)
        The samples in the network's scaled units.
    code : ndarray of int of shape (n_samples, n_components)
        The starting code (the rounded encoder output).
    lmbda : float
        Weight of one bit against one unit of the reconstruction loss (the model's ``lmbda`` is the
        trade-off it was trained for).
    sweeps : int
        Most passes over the code's values; a sample whose values no single move improves stops early.

    Returns
    -------
    ndarray of int64, shape (n_samples, n_components)
    """
    best = np.asarray(code, dtype=np.int64).copy()
    if sweeps <= 0 or best.size == 0:
        return best
    n, width = best.shape
    channels = np.arange(width)
    was_training = net.training
    net.eval()
    device = next(net.parameters()).device
    try:
        xt = torch.as_tensor(np.ascontiguousarray(x), dtype=torch.float32)

        def objective(rows: np.ndarray, candidate: np.ndarray) -> np.ndarray:
            out = np.empty(len(rows))
            for a in range(0, len(rows), _BATCH):
                part = rows[a : a + _BATCH]
                z = torch.as_tensor(candidate[a : a + _BATCH], dtype=torch.float32, device=device)
                loss = net.nll(xt[part].to(device), z)
                out[a : a + len(part)] = loss.double().cpu().numpy()
            bits = value_bits(candidate, tables, np.broadcast_to(channels, candidate.shape)).sum(axis=1)
            return out + lmbda * bits

        active = np.arange(n)
        current = objective(active, best)
        for _ in range(sweeps):
            moved = np.zeros(n, dtype=bool)
            for j in range(width):
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
    finally:
        net.train(was_training)
    return best
