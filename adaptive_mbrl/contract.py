"""The controller contract: ``reset / act / observe``, and the input checks every controller applies.

::

    from adaptive_mbrl.control import Controller   # re-exported there (and as adaptive_mbrl.Controller)
    isinstance(ctrl, Controller)                    # runtime-checkable

This module sits at the bottom of the package (numpy and torch only), so that every controller
(:mod:`adaptive_mbrl.control`, :mod:`adaptive_mbrl.baselines`) and everything that drives one (evaluation,
rendering, the examples) can share it without importing one another.
"""
from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

ACTION_LOW, ACTION_HIGH = -1.0, 1.0
"""Every robot's normalised action space (the environment maps [-1, 1] to its actuators)."""
ACTION_TOLERANCE = 1e-6
"""How far outside [-1, 1] an observed action may be (float rounding) before :meth:`observe` refuses it."""


@runtime_checkable
class Controller(Protocol):
    """What evaluation, rendering and the examples drive: one episode is ``reset()``, then per control
    step ``action = act(obs)``, the environment's step, and ``observe(obs, action, next_obs)``.

    ``obs`` / ``next_obs`` are 1-D real arrays ``[o]`` in the robot's observation layout; ``action`` is
    a 1-D float32 array ``[a]`` in ``[-1, 1]``.
    """

    def reset(self) -> None: ...

    def act(self, obs: np.ndarray) -> np.ndarray: ...

    def observe(self, obs: np.ndarray, action: np.ndarray, next_obs: np.ndarray) -> None: ...


def real_vector(value: Any, size: int | None, name: str) -> np.ndarray:
    """``value`` as a float32 array ``[size]``, refusing anything that is not already a 1-D finite real array.

    Accepted: numpy arrays, torch tensors (any device) and lists of float or int numbers. Not flattened
    or cast from other kinds: an array of shape ``(17, 1)`` is refused (rather than silently taken as
    17 values), and so are booleans, strings and complex numbers.

    Args:
        size: the number of values expected (None: any).
        name: the argument's name, for the error message.

    Raises:
        TypeError: the values are not real numbers (booleans, strings, objects, complex).
        ValueError: not 1-D, the wrong size, or NaN / infinite values.
    """
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    try:
        array = np.asarray(value)
    except ValueError as err:  # ragged nested lists
        raise ValueError(f"{name} must be a 1-D array of {size or 'some'} real values; "
                         f"got {type(value).__name__} that is not an array ({err})") from err
    if array.dtype == np.bool_ or not (np.issubdtype(array.dtype, np.floating)
                                       or np.issubdtype(array.dtype, np.integer)):
        raise TypeError(f"{name} must hold real numbers (float or int), got dtype {array.dtype} "
                        f"({type(value).__name__})")
    if array.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array [{size if size is not None else 'n'}], got shape "
                         f"{tuple(array.shape)}")
    if size is not None and array.size != size:
        raise ValueError(f"{name} has {array.size} values; this controller expects {size}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or infinite values at indices {np.flatnonzero(~np.isfinite(array)).tolist()}")
    return array.astype(np.float32)


def check_action_bounds(action: np.ndarray, name: str = "action") -> None:
    """Refuse an ``action`` [a] outside the action space ``[-1, 1]`` (beyond :data:`ACTION_TOLERANCE`).

    A controller that adapted on an action the robot never executed (the environment clips to [-1, 1])
    would learn a wrong model.
    """
    outside = np.flatnonzero((action < ACTION_LOW - ACTION_TOLERANCE) | (action > ACTION_HIGH + ACTION_TOLERANCE))
    if outside.size:
        raise ValueError(f"{name} is outside the action space [{ACTION_LOW:g}, {ACTION_HIGH:g}] at indices "
                         f"{outside.tolist()}: values [{', '.join(f'{v:.6g}' for v in action[outside])}]; pass the action the robot "
                         f"executed (clip it to [{ACTION_LOW:g}, {ACTION_HIGH:g}])")
