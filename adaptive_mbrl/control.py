"""The controller users embed: plan with the current (adapted) model, adapt from every transition.

::

    ctrl = AdaptiveController.from_preset("mb_de", robot="half_cheetah", checkpoint="shipped:half_cheetah/mb")
    ctrl.reset()
    action = ctrl.act(obs)                 # plan with the current (adapted) model
    ctrl.observe(obs, action, next_obs)    # keep the transition; adapt from the last M

Every controller of this project (:class:`AdaptiveController`, :class:`RandomController`, the PEARL / RL²
policy controllers of :mod:`adaptive_mbrl.baselines`) satisfies :class:`Controller` (defined in
:mod:`adaptive_mbrl.contract` with the input checks, re-exported here), which is what evaluation and
rendering drive. It works in any loop that can give it observations in the robot's layout (a gymnasium
env from :func:`adaptive_mbrl.make`, or a raw MuJoCo / PyBullet loop with the robot objective's
``observe``).
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
from adaptive_mbrl.adaptive_policy import AdaptivePolicy, Transition
from adaptive_mbrl.config import from_dict, to_dict
from adaptive_mbrl.contract import Controller, check_action_bounds, real_vector
from adaptive_mbrl.devices import DEFAULT_THREADS, resolve_device, set_threads
from adaptive_mbrl.models.dynamics import DynamicsModel
from adaptive_mbrl.models.state import load_model_state
from adaptive_mbrl.envs.robot_spec import load_robot
from adaptive_mbrl.paths import existing_checkpoint
from adaptive_mbrl.planning import make_planner
from adaptive_mbrl.planning.score_terms import with_upright_cost
from adaptive_mbrl.presets import ControllerPreset, load_preset, with_run_overrides
from adaptive_mbrl.storage.checkpoint import check_actuation, load_checkpoint

log = logging.getLogger(__name__)

__all__ = ["AdaptiveController", "Controller", "RandomController", "check_adapter_fits", "check_action_bounds",
           "real_vector"]

class AdaptiveController:
    """MPC through a learned dynamics model that an :class:`~adaptive_mbrl.adaptation.Adapter` updates
    from the latest M transitions at every control step (one :class:`~adaptive_mbrl.adaptive_policy.AdaptivePolicy`
    environment, the same code meta-training collects with). A probabilistic and / or ensemble model (e.g.
    the ``pets`` / ``pets_de`` presets) or ``planner.particles > 1`` is planned through by trajectory sampling
    (PETS): ``planner.particles`` rollouts per candidate through the adapter's ``particle_step``, scored by
    their mean return; a deterministic single network with one particle rolls out ``adapter.predict``.

    Args:
        model: the trained dynamics model (its weights are the prior that :meth:`reset` restores).
        preset: model / adapter / planner settings.
        reward_fn: batched reward ``(obs [..., o], action [..., a], next_obs [..., o]) -> [...]`` (torch),
            e.g. ``env.unwrapped.reward_fn``.
        termination_fn: optional ``next_obs [..., o] -> bool [...]``; rewards stop after a termination.
        device: torch device for planning (default: the model's); checked by
            :func:`~adaptive_mbrl.devices.resolve_device`.
        seed: seeds the planner's sampling; :meth:`reset` restores this seeded state.
        threads: torch intra-op threads, set (process-wide, ``torch.set_num_threads``) when the
            controller is built; default :data:`~adaptive_mbrl.devices.DEFAULT_THREADS` (1, the fastest for
            planning; see :mod:`adaptive_mbrl.devices`); None leaves torch's setting.
        upright_fn: cosine of the base's tilt, ``next_obs [..., o] -> [...]`` (e.g.
            ``env.unwrapped.objective.uprightness``), for the posture term of ``preset.planner.upright_cost``
            (:meth:`from_checkpoint` passes the robot objective's). Without it the term is left out, with a
            warning when the preset asks for it: pass it for a locomotion robot.
    """

    def __init__(self, model: DynamicsModel, preset: ControllerPreset, reward_fn: Callable[..., Any],
                 termination_fn: Callable[..., Any] | None = None, device: torch.device | str | None = None,
                 seed: int | None = None, threads: int | None = DEFAULT_THREADS,
                 upright_fn: Callable[..., Any] | None = None) -> None:
        set_threads(threads)
        self.device = resolve_device(device) if device is not None else model.device
        self.model = model.to(self.device)
        self.preset = preset
        self.adapter: Adapter = make_adapter(self.model, preset.adapter)
        self.planner = make_planner(preset.planner, model.act_dim, device=self.device, seed=seed)
        if preset.planner.upright_cost > 0 and upright_fn is None:
            log.warning("preset %s: planner.upright_cost=%g is left out, no upright_fn was given (pass "
                        "upright_fn=env.unwrapped.objective.uprightness for a locomotion robot)",
                        preset.name, preset.planner.upright_cost)
        planning_reward = with_upright_cost(reward_fn, upright_fn, preset.planner.upright_cost)
        self.policy = AdaptivePolicy([self.adapter], self.planner, planning_reward, termination_fn)
        self.obs_dim, self.action_dim = model.obs_dim, model.act_dim
        self._seeded_state = self.planner.generator.get_state()

    # --- construction from files -----------------------------------------------------------------------
    @classmethod
    def from_checkpoint(cls, checkpoint: str | Path, preset: str | Path | ControllerPreset | None = None,
                        robot: str | None = None, device: torch.device | str | None = None,
                        seed: int | None = None, backend: str | None = None, overrides: list[str] | None = None,
                        threads: int | None = DEFAULT_THREADS) -> "AdaptiveController":
        """Load a trained model; the preset defaults to the one it was trained with.

        ``checkpoint`` is a ``model.pt`` path or ``shipped:<robot>/<name>``. A ``preset`` may override the
        adapter and planner (e.g. run an MB-trained model as MB+DE); the network always comes from the
        checkpoint (its ``model`` section replaces the preset's). ``overrides`` (``SECTION.KEY=VALUE``, e.g.
        ``planner.samples=200``; ``adapter.*`` and ``planner.*`` only) then change settings of that preset,
        validated like the YAML. The
        checkpoint's ``adapter_state`` (meta-learned adapter parts) is loaded when the adapter kind is the
        one it was trained with. ``robot`` (if given) must match the checkpoint's.

        Raises:
            ValueError: a bad ``device`` (checked first), another robot, or an adapter that cannot run on
                this checkpoint's network (e.g. ``rebal`` on a network trained without a context input).
            FileNotFoundError: no such file, or no such shipped checkpoint (the error lists them).
        """
        torch_device = resolve_device(device)
        path = existing_checkpoint(checkpoint)
        payload = load_checkpoint(path, torch_device)
        check_actuation(payload, path, load_robot(payload["robot"]).actuation.mode)
        if robot is not None and robot != payload["robot"]:
            raise ValueError(f"checkpoint {str(checkpoint)!r} was trained on robot {payload['robot']!r}, "
                             f"not {robot!r}")
        trained = from_dict(ControllerPreset, payload["preset"], source=str(path), path="preset")
        if preset is None:
            preset = trained
        elif not isinstance(preset, ControllerPreset):
            preset = load_preset(preset)
        if overrides:
            preset = with_run_overrides(preset, list(overrides))
        # The network is what was trained; a copy, so the caller's preset object is left as it was.
        preset = dataclasses.replace(preset, model=trained.model)
        check_adapter_fits(trained, preset, str(checkpoint))
        model = DynamicsModel(payload["obs_dim"], payload["action_dim"], trained.model, device=torch_device)
        load_model_state(model, payload["model_state"])
        from adaptive_mbrl.envs.objectives import robot_objective
        objective = robot_objective(payload["robot"], backend)
        controller = cls(model, preset, objective.reward, objective.terminated, device=torch_device, seed=seed,
                         threads=threads, upright_fn=getattr(objective, "uprightness", None))
        # Learned adapter parts (Meta-SGD rates, ReBAL's encoder) belong to the adapter they were trained
        # with; another adapter kind (e.g. a GrBAL prior run as MB) starts without them.
        if payload.get("adapter_state") and preset.adapter.kind == trained.adapter.kind:
            controller.adapter.load_state_dict(payload["adapter_state"])
        return controller

    @classmethod
    def from_preset(cls, preset: str | Path | ControllerPreset, robot: str, checkpoint: str | Path,
                    device: torch.device | str | None = None, seed: int | None = None,
                    threads: int | None = DEFAULT_THREADS) -> "AdaptiveController":
        """The preset's adapter and planner around the model in ``checkpoint`` (a path or
        ``shipped:<robot>/<name>``, trained on ``robot``)."""
        return cls.from_checkpoint(checkpoint, preset=preset, robot=robot, device=device, seed=seed,
                                   threads=threads)

    # --- the step-level API ----------------------------------------------------------------------------
    def reset(self) -> None:
        """Start an episode: restore the prior model, forget the transitions, clear the planner's warm
        start, and restore the planner's random state to the one it had when built (seeded by ``seed``).

        So an episode repeated in one's own loop (same observations) gets exactly the same actions, and
        each episode is independent of how many were played before.
        """
        self.policy.reset()
        self.planner.generator.set_state(self._seeded_state)

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Plan from observation ``obs`` [o]; returns the action [a] in [-1, 1] (float32).

        Raises:
            TypeError: ``obs`` does not hold real numbers (e.g. booleans or strings).
            ValueError: ``obs`` is not 1-D, has the wrong size or contains NaN / infinite values.
            RuntimeError: the plan is not finite even with the prior model (the model is broken).
        """
        obs_t = self._as_tensor(obs, self.obs_dim, "obs")[None]
        action = self.policy.act(obs_t)
        if not self.policy.predicts_finitely(obs_t, action):
            log.warning("the adapted model predicts non-finite states; falling back to the prior model")
            self.adapter.reset()
            self.planner.reset()
            action = self.policy.act(obs_t)
            if not self.policy.predicts_finitely(obs_t, action):
                raise RuntimeError("the dynamics model predicts non-finite states even with its prior weights")
        return action[0].cpu().numpy().astype(np.float32)

    def observe(self, obs: np.ndarray, action: np.ndarray, next_obs: np.ndarray) -> None:
        """Keep transition ``(obs [o], action [a], next_obs [o])`` and adapt from the last M.

        Raises:
            TypeError / ValueError: as :meth:`act`, for each argument; ValueError also for an ``action``
                outside the action space [-1, 1] (nothing is recorded then).
        """
        action_np = real_vector(action, self.action_dim, "action")
        check_action_bounds(action_np)
        obs_t, next_t = self._as_tensor(obs, self.obs_dim, "obs"), self._as_tensor(next_obs, self.obs_dim, "next_obs")
        action_t = torch.as_tensor(action_np, device=self.device)
        self.policy.observe(obs_t[None], action_t[None], next_t[None])

    @property
    def window(self) -> "deque[Transition]":
        """The transitions adaptation looks at, oldest first (at most ``preset.adapter.window``)."""
        return self.policy.windows[0]

    # --- helpers ---------------------------------------------------------------------------------------
    def _as_tensor(self, value: np.ndarray, size: int, name: str) -> torch.Tensor:
        return torch.as_tensor(real_vector(value, size, name), device=self.device)

    def describe(self) -> dict[str, Any]:
        """The preset as plain data."""
        return to_dict(self.preset)


def check_adapter_fits(trained: ControllerPreset, preset: ControllerPreset, checkpoint: str) -> None:
    """Refuse an adapter that cannot run on the trained network, naming why.

    ReBAL feeds a context from its meta-trained encoder into the network, so it needs a network trained
    with a context input (``model.context_dim > 0``, i.e. a ReBAL checkpoint); every other adapter feeds
    none, so it cannot run a network that needs one.
    """
    context_dim, kind = trained.model.context_dim, preset.adapter.kind
    if kind == "rebal" and context_dim == 0:
        raise ValueError(
            f"checkpoint {checkpoint!r} was trained with adapter {trained.adapter.kind!r} (preset {trained.name!r}): "
            "its network has no context input (model.context_dim = 0) and it has no meta-trained context "
            "encoder, so it cannot run the 'rebal' adapter (the network comes from the checkpoint; a preset "
            "cannot change it). Use a checkpoint trained with a rebal preset (e.g. shipped:half_cheetah/rebal "
            "or `adaptive-mbrl train --controller rebal`), or an adapter that runs on any network: none, "
            "finetune, grbal")
    if kind != "rebal" and context_dim > 0:
        raise ValueError(
            f"checkpoint {checkpoint!r} was trained with adapter {trained.adapter.kind!r} (preset {trained.name!r}): "
            f"its network takes a context input (model.context_dim = {context_dim}) that only the 'rebal' "
            f"adapter provides, so it cannot run adapter {kind!r}; allowed: rebal")


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
        """A random action [action_dim] (float32), whatever the values of ``obs`` (a 1-D real array, checked
        as :meth:`AdaptiveController.act` does, any size)."""
        real_vector(obs, None, "obs")
        return self.rng.uniform(-1.0, 1.0, self.action_dim).astype(np.float32)

    def observe(self, obs: np.ndarray, action: np.ndarray, next_obs: np.ndarray) -> None:
        """Ignored: a random controller does not adapt."""
