"""Train a dynamics model for MB / MB+DE: random data, then rounds of (MPC collection -> refit).

A run folder holds ``config.yaml`` (the resolved preset and run settings), ``buffer.npz`` (all data),
``model.pt`` (the latest checkpoint), ``progress.json`` (iteration, env steps, returns, losses,
wall-clock, and each round's split of it into ``collect_s`` and ``fit_s``) and ``metrics.csv``. Every file
is written atomically after every round, so ``resume=True`` continues a killed run from its last finished
round with nothing lost.

A probabilistic ensemble (PETS: ``model.probabilistic``, ``model.ensemble_size``) trains on its Gaussian NLL
(:func:`~adaptive_mbrl.models.fit`), picks its ``model.elites`` on the held-out rows after every fit, and
collects with trajectory sampling (the planner's ``particles`` / ``propagation``); the elites and the learned
log-variance bounds are part of the model's state, so the checkpoint keeps them.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from adaptive_mbrl.adaptive_policy import uses_particles
from adaptive_mbrl.config import from_dict, to_dict
from adaptive_mbrl.envs.robot_spec import load_robot
from adaptive_mbrl.models.dynamics import DynamicsModel
from adaptive_mbrl.models.fitting import fit
from adaptive_mbrl.models.particles import EnsembleParticleStep
from adaptive_mbrl.models.state import load_model_state
from adaptive_mbrl.planning import PlannerConfig, TrajectoryScorer, make_planner
from adaptive_mbrl.presets import ControllerPreset
from adaptive_mbrl.storage.checkpoint import check_actuation, load_checkpoint, save_checkpoint
from adaptive_mbrl.storage.runs import (RunSettings, open_run_folder, phase_seconds, report_round, run_config,
                                        write_progress)
from adaptive_mbrl.training.buffer import TransitionBuffer
from adaptive_mbrl.training.collect import VectorCollector, planner_policy, random_policy


VAL_FRACTION = 0.1
"""Share of the buffer held out when fitting: early stopping, and the elites' ranking (``model.elites``)."""


def _fit(model: DynamicsModel, buffer: TransitionBuffer, epochs: int, generator: torch.Generator,
         progress: bool | None) -> float:
    """Refit ``model`` on the whole buffer (the model's own loss: MSE, or NLL for a probabilistic model; its
    elites re-chosen on the held-out rows); returns the kept epoch's validation loss."""
    data = buffer.tensors(model.device)
    result = fit(model, data["obs"], data["action"], data["next_obs"], epochs=epochs, generator=generator,
                 val_fraction=VAL_FRACTION, progress=progress)
    losses = result.val_losses or result.train_losses
    return float(losses[result.best_epoch]) if losses else float("nan")


def open_run(preset: ControllerPreset, settings: RunSettings, run_dir: Path, resume: bool,
             overwrite: bool = False) -> tuple[dict | None, VectorCollector]:
    """Start or resume a run in ``run_dir`` (:func:`~adaptive_mbrl.storage.runs.open_run_folder`: checks and
    writes ``config.yaml``, refuses to overwrite an earlier run unless ``overwrite``), seed torch, and build
    the collector (its reset seeds continue after the episodes a resumed run already used).

    Returns:
        (the resumed state ``{"progress", "buffer"}`` or None for a fresh run, the collector).
    """
    progress = open_run_folder(run_dir, run_config(to_dict(preset), settings), resume=resume, overwrite=overwrite,
                               normalize_preset=_normal_preset)
    state = None if progress is None else {"progress": progress, "buffer": _resumed_buffer(run_dir, progress)}
    torch.manual_seed(settings.seed)
    cfg = preset.training
    seeded = progress["episodes_seeded"] if progress else 0
    collector = VectorCollector(settings.robot, settings.scenario, cfg.parallel_envs, settings.backend,
                                seed=settings.seed * 100_000 + seeded, episode_steps=cfg.episode_steps or None)
    return state, collector


def train_model(preset: ControllerPreset, settings: RunSettings, run_dir: str | Path, resume: bool = False,
                progress: bool | None = None, overwrite: bool = False) -> Path:
    """Train ``preset``'s model on ``settings.robot`` / ``settings.scenario``; returns the checkpoint path.

    Args:
        preset: the controller preset (its ``model``, ``planner`` and ``training`` sections are used).
        settings: robot, scenario, backend, seed, device.
        run_dir: folder for the run's files (created).
        resume: continue the run in ``run_dir`` from its last finished round.
        progress: show progress bars (default: when attached to a terminal).
        overwrite: replace an earlier run in ``run_dir`` (without it, or ``resume``, one is refused).
    """
    run_dir = Path(run_dir)
    cfg, device = preset.training, torch.device(settings.device)
    actuation = load_robot(settings.robot).actuation.mode  # read once per run, recorded in every checkpoint
    state, collector = open_run(preset, settings, run_dir, resume, overwrite)
    ckpt_path = run_dir / "model.pt"
    rng = np.random.default_rng(settings.seed)
    generator = torch.Generator().manual_seed(settings.seed)
    obs_dim, act_dim = collector.obs.shape[1], collector.envs[0].action_space.shape[0]
    model = DynamicsModel(obs_dim, act_dim, preset.model, device=device)
    start = time.perf_counter()
    if state is None:
        buffer = TransitionBuffer(obs_dim, act_dim)
        stats = collector.run(random_policy(act_dim, rng), cfg.random_steps, buffer, progress, "random data")
        collected = time.perf_counter()
        val = _fit(model, buffer, cfg.first_epochs, generator, progress)
        done = time.perf_counter()
        progress_doc = {"iteration": 0, "env_steps": len(buffer), "wall_clock_s": 0.0, "history": [],
                        "episodes_seeded": 0}
        _record(progress_doc, 0, len(buffer), stats.returns, val, done - start, phase_seconds(start, collected, done))
        _save(run_dir, ckpt_path, buffer, model, preset, settings, actuation, progress_doc)
        report_round(progress_doc, progress, cfg.iterations)
    else:
        buffer, progress_doc = state["buffer"], state["progress"]
        payload = load_checkpoint(ckpt_path, device)
        check_actuation(payload, ckpt_path, actuation)
        load_model_state(model, payload["model_state"])
        start -= progress_doc["wall_clock_s"]
    planner = make_planner(preset.planner, act_dim, device=device, seed=settings.seed)
    scorer = collection_scorer(model, preset.planner, collector, seed=settings.seed)
    for iteration in range(progress_doc["iteration"] + 1, cfg.iterations + 1):
        planner.reset()
        round_start = time.perf_counter()
        stats = collector.run(planner_policy(planner, scorer, device), cfg.steps_per_iteration, buffer, progress,
                              f"round {iteration}/{cfg.iterations}", on_reset=lambda i: _reset_row(planner, i))
        collected = time.perf_counter()
        val = _fit(model, buffer, cfg.epochs, generator, progress)
        done = time.perf_counter()
        _record(progress_doc, iteration, len(buffer), stats.returns, val, done - start,
                phase_seconds(round_start, collected, done))
        progress_doc["iteration"] = iteration
        progress_doc["episodes_seeded"] += len(stats.returns)
        _save(run_dir, ckpt_path, buffer, model, preset, settings, actuation, progress_doc)
        report_round(progress_doc, progress, cfg.iterations)
    collector.close()
    return ckpt_path


def collection_scorer(model: DynamicsModel, planner: PlannerConfig, collector: VectorCollector,
                      seed: int | None = None) -> TrajectoryScorer:
    """The score the MPC collection plans with: ``model.predict`` rollouts for a deterministic single network
    with one particle, else trajectory sampling through the model's members
    (:class:`~adaptive_mbrl.models.EnsembleParticleStep`, the planner's ``particles`` / ``propagation``).
    It holds the model itself, so each refit is planned with from the next round on."""
    reward = collector.planning_reward(planner.upright_cost)
    if not uses_particles(model, planner):
        return TrajectoryScorer(model.predict, reward, collector.termination_fn)
    return TrajectoryScorer.for_planner(EnsembleParticleStep(model), reward, collector.termination_fn,
                                        planner, seed=seed)


def _reset_row(planner, row: int) -> None:
    """Clear one environment's warm start (the planner's state lives in inference mode)."""
    with torch.inference_mode():
        planner.reset([row])


def _record(doc: dict, iteration: int, env_steps: int, returns: list[float], val_loss: float, wall: float,
            phases: dict[str, float]) -> None:
    doc["history"].append({"iteration": iteration, "env_steps": env_steps,
                           "mean_return": float(np.mean(returns)) if returns else float("nan"),
                           "episodes": len(returns), "val_loss": val_loss, "wall_clock_s": round(wall, 1),
                           **phases})
    doc["env_steps"], doc["wall_clock_s"] = env_steps, wall


def _save(run_dir: Path, ckpt_path: Path, buffer: TransitionBuffer, model: DynamicsModel,
          preset: ControllerPreset, settings: RunSettings, actuation: str, progress_doc: dict) -> None:
    """Buffer, then checkpoint, then progress: progress only ever points at files already on disk."""
    buffer.save(run_dir / "buffer.npz")
    save_checkpoint(ckpt_path, robot=settings.robot, obs_dim=model.obs_dim, action_dim=model.act_dim,
                    preset=to_dict(preset), model_state=model.state_dict(),
                    actuation=actuation,
                    meta=_checkpoint_meta(model, settings, progress_doc))
    write_progress(run_dir, progress_doc)


def _checkpoint_meta(model: DynamicsModel, settings: RunSettings, progress_doc: dict) -> dict:
    """The checkpoint's ``meta``: round, data, scenario, seed, and the elite members when the model keeps some
    (for reading only: the model state's ``elite_members`` is what loading restores)."""
    meta = {"iteration": progress_doc["iteration"], "env_steps": progress_doc["env_steps"],
            "scenario": settings.scenario, "seed": settings.seed}
    if model.config.elites:
        meta["elites"] = model.elite_members.tolist()
    return meta


def _normal_preset(data: dict) -> dict:
    """A saved preset through the preset dataclass, so fields added since the run started compare at their
    defaults."""
    return to_dict(from_dict(ControllerPreset, data, source="config.yaml", path="preset"))


def _resumed_buffer(run_dir: Path, progress: dict) -> TransitionBuffer:
    """The buffer a previous run left, cut to the transitions its progress records."""
    buffer = TransitionBuffer.load(run_dir / "buffer.npz")
    if len(buffer) < progress["env_steps"]:
        raise ValueError(f"{run_dir / 'buffer.npz'} holds {len(buffer)} transitions but {run_dir / 'progress.json'} "
                         f"records {progress['env_steps']}; the run folder is inconsistent")
    # A crash between writing the buffer and writing progress leaves the unfinished round's data in the
    # buffer: drop it, so the round that is run again does not store its transitions twice.
    buffer.size = progress["env_steps"]
    return buffer
