"""Code regularizers: loss terms on the code and activation constraints that shape it.

A penalty has an optional loss ``term`` (weighted by ``penalty_weight`` in the loss) and an optional
``constrain`` applied to the code wherever it is computed (training and ``transform`` alike).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from torch import Tensor

from isthmus.config import ModelConfig


class PenaltyContext(NamedTuple):
    """What a penalty term may look at."""

    x: Tensor  # (batch, *input_shape): the encoder's (possibly corrupted) input
    code: Tensor  # (batch, n_components): the constrained code
    encode: Callable[[Tensor], Tensor]  # input -> code, differentiable, for Jacobian penalties
    config: ModelConfig


class Penalty(NamedTuple):
    """A table entry: loss term, code constraint, and whether the code may be wider than the input."""

    term: Callable[[PenaltyContext], Tensor] | None = None
    constrain: Callable[[Tensor, ModelConfig], Tensor] | None = None
    overcomplete: bool = False


def l1_activity(ctx: PenaltyContext) -> Tensor:
    """Mean over the batch of the code's L1 norm."""
    return ctx.code.abs().sum(dim=1).mean()


PENALTIES: dict[str, Penalty] = {
    "none": Penalty(),
    "l1": Penalty(term=l1_activity, overcomplete=True),
}
