"""Loading saved weights into a model, with errors that say what does not fit."""
from __future__ import annotations

from typing import Mapping

import torch
from torch import Tensor, nn


class ModelStateError(ValueError):
    """A saved state does not fit the model (missing / unexpected entries or different shapes)."""


def state_mismatches(model: nn.Module, state: Mapping[str, Tensor]) -> list[str]:
    """Human-readable differences between ``model.state_dict()`` and ``state`` (empty when they fit)."""
    own = model.state_dict()
    problems = [f"{k}: saved {list(state[k].shape)}, model {list(v.shape)}"
                for k, v in own.items() if k in state and tuple(state[k].shape) != tuple(v.shape)]
    problems += [f"{k}: missing from the saved state (model {list(own[k].shape)})" for k in own if k not in state]
    problems += [f"{k}: not in the model (saved {list(state[k].shape)})" for k in state if k not in own]
    return problems


def load_model_state(model: nn.Module, state: Mapping[str, Tensor]) -> None:
    """Copy ``state`` (a ``state_dict``, e.g. from ``torch.load(..., weights_only=True)``) into ``model``.

    Tensors are moved to the model's device and dtype.

    Raises:
        ModelStateError: naming every entry whose shape differs (saved vs. model shape), is missing or is
            unexpected; usually the model config (hidden sizes, ensemble size, context size) differs from
            the one the state was saved with.
    """
    problems = state_mismatches(model, state)
    if problems:
        kind = type(model).__name__
        raise ModelStateError(f"saved state does not fit this {kind} (was it saved with another config?): "
                              + "; ".join(problems))
    with torch.no_grad():
        model.load_state_dict(dict(state), strict=True)
