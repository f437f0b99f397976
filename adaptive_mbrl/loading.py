"""Load any trained controller of this project from its checkpoint: model-based or a model-free baseline.

::

    import adaptive_mbrl as am
    ctrl = am.load_controller("shipped:half_cheetah/mb", "mb_de", seed=0)   # MB model run as MB+DE
    ctrl = am.load_controller("runs/pearl_cartpole/model.pt")              # a PEARL policy

Whatever it loads satisfies :class:`~adaptive_mbrl.control.Controller` (``reset / act / observe``).
Evaluation (:mod:`adaptive_mbrl.evaluation`) and the CLI load controllers through :func:`load_controller`.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from adaptive_mbrl.devices import DEFAULT_THREADS, resolve_device, set_threads
from adaptive_mbrl.paths import existing_checkpoint

if TYPE_CHECKING:
    import torch

    from adaptive_mbrl.control import Controller
    from adaptive_mbrl.presets import ControllerPreset

BASELINE_KINDS = ("pearl", "rl2")


def load_controller(checkpoint: str | Path, preset: "str | Path | ControllerPreset | None" = None, *,
                    robot: str | None = None, device: "str | torch.device | None" = "cpu", seed: int | None = None,
                    overrides: Sequence[str] | None = None, backend: str | None = None,
                    threads: int | None = DEFAULT_THREADS) -> "Controller":
    """The controller stored in ``checkpoint``: an :class:`~adaptive_mbrl.control.AdaptiveController` (MB,
    MB+DE, GrBAL, ReBAL) or a PEARL / RL² :class:`~adaptive_mbrl.baselines.PolicyController`.

    Args:
        checkpoint: a ``model.pt`` path or ``shipped:<robot>/<name>`` (``adaptive-mbrl list controllers``).
        preset: model-based only: run the trained network with another preset's adapter and planner
            (a shipped preset name, a ``.yaml`` path or a ``ControllerPreset``); default: the trained one.
        robot: if given, the checkpoint must have been trained on this robot.
        device: torch device (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...), checked before anything is loaded.
        seed: seeds the planner's (or the policy's) sampling.
        overrides: model-based: ``adapter.*`` / ``planner.*`` settings (``SECTION.KEY=VALUE``) applied
            to the preset, validated like the YAML (e.g. ``["planner.samples=200"]``); PEARL: only
            ``adapt_within_episode=true|false``; RL²: none.
        backend: simulator whose robot objective gives the reward (default: MuJoCo's).
        threads: torch intra-op threads, set process-wide when the controller is built (default
            :data:`~adaptive_mbrl.devices.DEFAULT_THREADS`; None leaves torch's setting).

    Raises:
        ValueError: a bad device, a checkpoint of another robot, a preset for a baseline, overrides a
            baseline cannot take, or an adapter that cannot run on the checkpoint's network.
        FileNotFoundError: no such file or shipped checkpoint.
    """
    torch_device = resolve_device(device)
    path = existing_checkpoint(checkpoint)
    from adaptive_mbrl.storage.checkpoint import load_checkpoint

    payload = load_checkpoint(path, torch_device)
    kind = payload["preset"].get("kind") if isinstance(payload.get("preset"), dict) else None
    if kind not in BASELINE_KINDS:
        from adaptive_mbrl.control import AdaptiveController
        return AdaptiveController.from_checkpoint(checkpoint, preset=preset, robot=robot, device=torch_device, seed=seed,
                                                  backend=backend, overrides=list(overrides or []), threads=threads)
    if preset:
        raise ValueError(f"checkpoint {str(checkpoint)!r} is a {kind} policy; preset ({preset!r}) applies to "
                         "model-based checkpoints only")
    from adaptive_mbrl.baselines.presets import baseline_run_options
    try:
        baseline_run_options(kind, list(overrides or []))
    except ValueError as err:
        raise ValueError(f"checkpoint {str(checkpoint)!r} is a {kind} policy; overrides {list(overrides or [])}: "
                         f"{err}") from None
    if robot is not None and robot != payload["robot"]:
        raise ValueError(f"checkpoint {str(checkpoint)!r} was trained on robot {payload['robot']!r}, not {robot!r}")
    set_threads(threads)
    from adaptive_mbrl.baselines.controller import PolicyController
    return PolicyController.from_checkpoint(path, device=torch_device, seed=seed, backend=backend,
                                            overrides=list(overrides or []))
