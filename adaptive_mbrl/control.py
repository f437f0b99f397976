"""The controller users embed: plan with the current (adapted) model, adapt from every transition.

::

    ctrl = AdaptiveController.from_preset("mb_de", robot="half_cheetah", checkpoint=path)
    ctrl.reset()
    action = ctrl.act(obs)                 # plan with the current (adapted) model
    ctrl.observe(obs, action, next_obs)    # keep the transition; adapt from the last M

It works in any loop that can give it observations in the robot's layout (a gymnasium env from
:func:`adaptive_mbrl.make`, or a raw MuJoCo / PyBullet loop with the robot objective's ``observe``).
"""
from __future__ import annotations

import dataclasses
import logging
from collections import deque
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from adaptive_mbrl.adaptation.base import Adapter
from adaptive_mbrl.adaptation.registry import make_adapter
from adaptive_mbrl.config import from_dict, to_dict
from adaptive_mbrl.models.dynamics import DynamicsModel
from adaptive_mbrl.models.state import load_model_state
from adaptive_mbrl.planning import TrajectoryScorer, make_planner
from adaptive_mbrl.presets import ControllerPreset, load_preset
from adaptive_mbrl.envs.robot_spec import load_robot
from adaptive_mbrl.storage.checkpoint import check_actuation, load_checkpoint

log = logging.getLogger(__name__)


class AdaptiveController:
    """MPC through a learned dynamics model that an :class:`~adaptive_mbrl.adaptation.Adapter` updates
    from the latest M transitions at every control step.

    Args:
        model: the trained dynamics model (its weights are the prior that :meth:`reset` restores).
        preset: model / adapter / planner settings.
        reward_fn: batched reward ``(obs [..., o], action [..., a], next_obs [..., o]) -> [...]`` (torch),
            e.g. ``env.unwrapped.reward_fn``.
        termination_fn: optional ``next_obs [..., o] -> bool [...]``; rewards stop after a termination.
        device: torch device for planning (default: the model's).
        seed: seeds the planner's sampling.
    """

    def __init__(self, model: DynamicsModel, preset: ControllerPreset, reward_fn: Callable[..., Any],
                 termination_fn: Callable[..., Any] | None = None, device: torch.device | str | None = None,
                 seed: int | None = None) -> None:
        self.device = torch.device(device) if device is not None else model.device
        self.model = model.to(self.device)
        self.preset = preset
        self.adapter: Adapter = make_adapter(self.model, preset.adapter)
        self.planner = make_planner(preset.planner, model.act_dim, device=self.device, seed=seed)
        self.scorer = TrajectoryScorer(self.adapter.predict, reward_fn, termination_fn)
        self.window: deque[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = deque(maxlen=preset.adapter.window)
        self.obs_dim, self.action_dim = model.obs_dim, model.act_dim

    # --- construction from files -----------------------------------------------------------------------
    @classmethod
    def from_checkpoint(cls, checkpoint: str | Path, preset: str | Path | ControllerPreset | None = None,
                        robot: str | None = None, device: torch.device | str | None = None,
                        seed: int | None = None, backend: str | None = None) -> "AdaptiveController":
        """Load a trained model; the preset defaults to the one it was trained with.

        A ``preset`` may override the adapter and planner (e.g. run an MB-trained model as MB+DE); the
        network always comes from the checkpoint (its ``model`` section replaces the preset's). The
        checkpoint's ``adapter_state`` (meta-learned adapter parts) is loaded when the adapter kind is
        the one it was trained with.
        ``robot`` (if given) must match the checkpoint's.
        """
        payload = load_checkpoint(checkpoint, device)
        check_actuation(payload, checkpoint, load_robot(payload["robot"]).actuation.mode)
        if robot is not None and robot != payload["robot"]:
            raise ValueError(f"checkpoint {str(checkpoint)!r} was trained on robot {payload['robot']!r}, "
                             f"not {robot!r}")
        trained = from_dict(ControllerPreset, payload["preset"], source=str(checkpoint), path="preset")
        if preset is None:
            preset = trained
        elif not isinstance(preset, ControllerPreset):
            preset = load_preset(preset)
        # The network is what was trained; a copy, so the caller's preset object is left as it was.
        preset = dataclasses.replace(preset, model=trained.model)
        model = DynamicsModel(payload["obs_dim"], payload["action_dim"], trained.model, device=device)
        load_model_state(model, payload["model_state"])
        from adaptive_mbrl.envs.objectives import robot_objective
        objective = robot_objective(payload["robot"], backend)
        controller = cls(model, preset, objective.reward, objective.terminated, device=device, seed=seed)
        # Learned adapter parts (Meta-SGD rates, ReBAL's encoder) belong to the adapter they were trained
        # with; another adapter kind (e.g. a GrBAL prior run as MB) starts without them.
        if payload.get("adapter_state") and preset.adapter.kind == trained.adapter.kind:
            controller.adapter.load_state_dict(payload["adapter_state"])
        return controller

    @classmethod
    def from_preset(cls, preset: str | Path, robot: str, checkpoint: str | Path,
                    device: torch.device | str | None = None, seed: int | None = None) -> "AdaptiveController":
        """The preset's adapter and planner around the model in ``checkpoint`` (trained on ``robot``)."""
        return cls.from_checkpoint(checkpoint, preset=preset, robot=robot, device=device, seed=seed)

    # --- the step-level API ----------------------------------------------------------------------------
    def reset(self) -> None:
        """Start an episode: restore the prior model, forget the transitions, clear the planner."""
        self.adapter.reset()
        self.planner.reset()
        self.window.clear()

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Plan from observation ``obs`` [o]; returns the action [a] in [-1, 1] (float32).

        Raises:
            ValueError: ``obs`` has the wrong size or contains NaN / infinite values.
            RuntimeError: the plan is not finite even with the prior model (the model is broken).
        """
        obs_t = self._as_tensor(obs, self.obs_dim, "obs")
        action = self._plan(obs_t)
        if not self._plan_is_sound(obs_t, action):
            log.warning("the adapted model predicts non-finite states; falling back to the prior model")
            self.adapter.reset()
            self.planner.reset()
            action = self._plan(obs_t)
            if not self._plan_is_sound(obs_t, action):
                raise RuntimeError("the dynamics model predicts non-finite states even with its prior weights")
        return action.cpu().numpy().astype(np.float32)

    def _plan_is_sound(self, obs_t: torch.Tensor, action: torch.Tensor) -> bool:
        """The action is finite and the model's prediction for it is finite. (The planners never pick a
        candidate with a non-finite return, so a broken model would otherwise yield arbitrary actions.)"""
        if not torch.isfinite(action).all():
            return False
        with torch.inference_mode():
            return bool(torch.isfinite(self.adapter.predict(obs_t[None], action[None])).all())

    def observe(self, obs: np.ndarray, action: np.ndarray, next_obs: np.ndarray) -> None:
        """Keep transition ``(obs [o], action [a], next_obs [o])`` and adapt from the last M."""
        transition = (self._as_tensor(obs, self.obs_dim, "obs"), self._as_tensor(action, self.action_dim, "action"),
                      self._as_tensor(next_obs, self.obs_dim, "next_obs"))
        self.window.append(transition)
        obs_w, act_w, next_w = (torch.stack(column) for column in zip(*self.window))
        self.adapter.adapt(obs_w, act_w, next_w)

    # --- helpers ---------------------------------------------------------------------------------------
    def _plan(self, obs_t: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return self.planner.plan(obs_t[None], self.scorer)[0]

    def _as_tensor(self, value: np.ndarray, size: int, name: str) -> torch.Tensor:
        tensor = torch.as_tensor(np.asarray(value, dtype=np.float32), device=self.device).reshape(-1)
        if tensor.numel() != size:
            raise ValueError(f"{name} has {tensor.numel()} values; this controller expects {size}")
        if not torch.isfinite(tensor).all():
            bad = torch.nonzero(~torch.isfinite(tensor)).flatten().tolist()
            raise ValueError(f"{name} contains NaN or infinite values at indices {bad}")
        return tensor

    def describe(self) -> dict[str, Any]:
        """The preset as plain data."""
        return to_dict(self.preset)


class RandomController:
    """Uniformly random actions in [-1, 1] behind the controller interface: the floor every method must
    clear, usable wherever an :class:`AdaptiveController` is (``reset`` / ``act`` / ``observe``).

    Args:
        action_dim: size of the action.
        seed: seeds the action stream (the same seed gives the same actions).
    """

    def __init__(self, action_dim: int, seed: int | None = None) -> None:
        self.action_dim = action_dim
        self.rng = np.random.default_rng(seed)

    def reset(self) -> None:
        """Nothing to forget; the action stream continues."""

    def act(self, obs: np.ndarray) -> np.ndarray:
        """A random action [action_dim] (float32), whatever ``obs`` is."""
        return self.rng.uniform(-1.0, 1.0, self.action_dim).astype(np.float32)

    def observe(self, obs: np.ndarray, action: np.ndarray, next_obs: np.ndarray) -> None:
        """Ignored: a random controller does not adapt."""
