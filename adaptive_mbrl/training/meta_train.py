"""Meta-train a GrBAL / ReBAL preset: random data, then rounds of (adaptive MPC collection -> meta-updates).

1. ``training.random_steps`` steps of uniformly random actions on the training scenario (its task
   distribution resamples a task at every reset). The model's normalisers are fitted on these
   transitions **once** and then kept: the meta-learned prior (and the inner step size, which acts in
   normalised units) is tied to the statistics it was trained under, so they never change afterwards.
2. ``meta.first_updates`` meta-updates (Adam) on segments of M + K consecutive transitions
   (``buffer.sample_segments``, never across an episode or task boundary).
3. ``training.iterations`` rounds: collect ``training.steps_per_iteration`` steps with the adaptive MPC
   (E envs in lockstep; each env has its own adapter, adapted from its own latest M transitions every
   step; one batched planner call for all E), add them to the buffer, run ``meta.updates_per_iteration``
   meta-updates.

The run folder is the one of :mod:`adaptive_mbrl.training.train_model` (``config.yaml``, ``buffer.npz``,
``model.pt`` with the adapter's learned parts as ``adapter_state``, ``progress.json``, ``metrics.csv``)
plus ``optimizer.pt`` (the meta-optimiser's state). Every file is written atomically after every round,
progress last, so ``resume=True`` continues a killed run from its last finished round with nothing lost.
Round ``i``'s segment sampling and planner are seeded from ``(seed, i)``.

Ensembles (e.g. PETS-style probabilistic ensembles, ``model.ensemble_size = E > 1``): every member gets its
own segments in every meta-update (``[E, B, M+K, ...]``, drawn independently per member; with
``model.bootstrap`` each member draws from its own bootstrap resample of the round's segments), at the cost
of the same model rows as shared segments. A probabilistic model's meta-loss is its Gaussian NLL. With
``model.elites = k > 0`` the ``k`` members with the lowest adapted error (:meth:`MetaAdapter.member_errors`
on ``4 * meta_batch`` segments of the buffer, after the round's meta-updates) become the elites that
prediction and trajectory sampling use; they are saved with the model and listed in the round's history.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from adaptive_mbrl.adaptation.meta_adapter import MetaAdapter
from adaptive_mbrl.adaptation.registry import make_adapter
from adaptive_mbrl.adaptive_policy import AdaptivePolicy
from adaptive_mbrl.config import to_dict
from adaptive_mbrl.envs.robot_spec import load_robot
from adaptive_mbrl.models.dynamics import DynamicsModel
from adaptive_mbrl.models.state import load_model_state
from adaptive_mbrl.planning import make_planner
from adaptive_mbrl.presets import ControllerPreset
from adaptive_mbrl.storage.atomic import atomic_write
from adaptive_mbrl.storage.checkpoint import check_actuation, load_checkpoint, save_checkpoint
from adaptive_mbrl.storage.runs import RunSettings, phase_seconds, report_round, write_progress
from adaptive_mbrl.training.buffer import TransitionBuffer
from adaptive_mbrl.training.collect import AdaptiveCollectionPolicy, VectorCollector, random_policy
from adaptive_mbrl.training.train_model import open_run

META_ADAPTERS = ("grbal", "rebal")


def build_meta_adapter(model: DynamicsModel, preset: ControllerPreset) -> MetaAdapter:
    """The preset's adapter around ``model``; refuses adapters that cannot be meta-trained."""
    if preset.adapter.kind not in META_ADAPTERS:
        raise ValueError(f"preset {preset.name!r}: meta-training needs adapter.kind in {', '.join(META_ADAPTERS)}, "
                         f"got {preset.adapter.kind!r}")
    if preset.meta.prior_weight > 0 and preset.adapter.kind != "grbal":
        raise ValueError(f"preset {preset.name!r}: meta.prior_weight applies to adapter.kind 'grbal' only "
                         f"(a ReBAL model is always conditioned on a context), got {preset.adapter.kind!r}")
    adapter = make_adapter(model, preset.adapter)
    assert isinstance(adapter, MetaAdapter)
    return adapter


def make_meta_optimizer(model: DynamicsModel, adapter: MetaAdapter, learning_rate: float) -> torch.optim.Adam:
    """Adam over the prior's parameters and the adapter's learned parts."""
    return torch.optim.Adam([*model.parameters(), *adapter.learned.parameters()], lr=learning_rate)


def meta_updates(adapter: MetaAdapter, optimizer: torch.optim.Optimizer, buffer: TransitionBuffer,
                 preset: ControllerPreset, updates: int, rng: np.random.Generator, generator: torch.Generator,
                 progress: bool | None = None, description: str = "meta-update") -> dict[str, float]:
    """``updates`` meta-gradient steps on segments of M + K transitions sampled from ``buffer``.

    With ``meta.prior_weight = w > 0`` (GrBAL) the minimised loss is the meta-loss plus ``w`` times the
    prior's loss on all M + K transitions of the segments (the reported losses stay the two below).

    Returns:
        ``{"meta_loss": mean adapted loss on the K future transitions, "prior_loss": mean loss of the
        unadapted prior on the same transitions}`` over the steps (NaN when ``updates`` is 0).
    """
    past, meta = preset.adapter.window, preset.meta
    length = past + meta.future
    windows = buffer.segment_rows(length)
    if len(windows) == 0 and updates:
        raise ValueError(f"no episode in the buffer holds {length} = M + K consecutive transitions of one task "
                         f"({len(buffer)} stored); collect longer episodes or lower adapter.window / meta.future")
    arrays = {k: buffer.array(k) for k in ("obs", "action", "next_obs")}
    model = adapter.model
    device, members = model.device, model.ensemble_size
    pools = None
    if members > 1 and model.config.bootstrap and updates:  # each member's bootstrap resample of the windows
        pools = rng.integers(0, len(windows), (members, len(windows)))
    params = [p for group in optimizer.param_groups for p in group["params"]]
    totals, bar = np.zeros(2), tqdm(range(updates), desc=description, leave=False,
                                    disable=None if progress is None else not progress)
    for _ in bar:
        if members == 1:
            rows = windows[rng.integers(0, len(windows), meta.meta_batch)]  # [B, M+K]
        else:  # per-member segments [E, B, M+K]
            pick = rng.integers(0, len(windows), (members, meta.meta_batch))
            rows = windows[pick if pools is None else np.take_along_axis(pools, pick, 1)]
        obs, act, nxt = (torch.as_tensor(arrays[k][rows], device=device) for k in ("obs", "action", "next_obs"))
        loss, prior = adapter.meta_loss(obs, act, nxt, past, meta.first_order, generator)
        if meta.prior_weight > 0:
            objective = loss + meta.prior_weight * model.loss(obs, act, nxt, stacked=members > 1)
        else:
            objective = loss
        optimizer.zero_grad(set_to_none=True)
        objective.backward()
        if meta.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, meta.grad_clip)
        optimizer.step()
        totals += (loss.item(), prior.item())
        bar.set_postfix(adapted=f"{loss.item():.4f}", prior=f"{prior.item():.4f}")
    bar.close()
    mean = totals / updates if updates else np.full(2, np.nan)
    return {"meta_loss": float(mean[0]), "prior_loss": float(mean[1])}


def rank_elites(adapter: MetaAdapter, buffer: TransitionBuffer, preset: ControllerPreset,
                rng: np.random.Generator) -> list[int]:
    """Make the ``model.elites`` members with the lowest adapted error on ``4 * meta.meta_batch`` segments
    of ``buffer`` (the same segments for every member) the model's elites; returns them (ascending)."""
    model, past = adapter.model, preset.adapter.window
    windows = buffer.segment_rows(past + preset.meta.future)
    if len(windows) == 0:  # nothing to rank on yet: keep the elites as they are
        return model.elite_members.tolist()
    rows = windows[rng.integers(0, len(windows), 4 * preset.meta.meta_batch)]
    obs, act, nxt = (torch.as_tensor(buffer.array(k)[rows], device=model.device)
                     for k in ("obs", "action", "next_obs"))
    errors = adapter.member_errors(obs, act, nxt, past)
    model.set_elites(torch.argsort(errors, stable=True)[:model.config.elites])
    adapter.reset()
    return model.elite_members.tolist()


def meta_train(preset: ControllerPreset, settings: RunSettings, run_dir: str | Path, resume: bool = False,
               progress: bool | None = None, overwrite: bool = False) -> Path:
    """Meta-train ``preset`` (adapter ``grbal`` or ``rebal``) on ``settings.robot`` / ``settings.scenario``.

    Args:
        preset: its ``model``, ``adapter``, ``planner``, ``training`` and ``meta`` sections are used.
        settings: robot, training scenario (a task distribution), backend, seed, device.
        run_dir: folder for the run's files (created).
        resume: continue the run in ``run_dir`` from its last finished round.
        progress: show progress bars (default: when attached to a terminal).
        overwrite: replace an earlier run in ``run_dir`` (without it, or ``resume``, one is refused).

    Returns:
        the checkpoint path (``run_dir / "model.pt"``).
    """
    run_dir = Path(run_dir)
    cfg, device = preset.training, torch.device(settings.device)
    actuation = load_robot(settings.robot).actuation.mode  # read once per run, recorded in every checkpoint
    state, collector = open_run(preset, settings, run_dir, resume, overwrite)
    ckpt_path = run_dir / "model.pt"
    obs_dim, act_dim = collector.obs.shape[1], collector.envs[0].action_space.shape[0]
    model = DynamicsModel(obs_dim, act_dim, preset.model, device=device, seed=settings.seed)
    adapter = build_meta_adapter(model, preset)
    optimizer = make_meta_optimizer(model, adapter, preset.meta.learning_rate)
    start = time.perf_counter()
    if state is None:
        buffer = TransitionBuffer(obs_dim, act_dim)
        stats = collector.run(random_policy(act_dim, np.random.default_rng(settings.seed)), cfg.random_steps,
                              buffer, progress, "random data")
        collected = time.perf_counter()
        data = buffer.tensors(device)
        model.fit_normalizers(data["obs"], data["action"], data["next_obs"])  # once: see the module docstring
        adapter.reset()
        losses = _updates(adapter, optimizer, buffer, preset, settings.seed, 0, preset.meta.first_updates, progress)
        done = time.perf_counter()
        doc = {"iteration": 0, "env_steps": len(buffer), "wall_clock_s": 0.0, "history": [], "episodes_seeded": 0}
        _record(doc, 0, len(buffer), stats.returns, losses, done - start,
                phase_seconds(start, collected, done, "update_s"))
        _save(run_dir, buffer, model, adapter, optimizer, preset, settings, actuation, doc)
        report_round(doc, progress, cfg.iterations)
    else:
        buffer, doc = state["buffer"], state["progress"]
        payload = load_checkpoint(ckpt_path, device)
        check_actuation(payload, ckpt_path, actuation)
        load_model_state(model, payload["model_state"])
        adapter.load_state_dict(payload.get("adapter_state", {}))
        optimizer.load_state_dict(torch.load(run_dir / "optimizer.pt", map_location=device, weights_only=True))
        start -= doc["wall_clock_s"]
    for iteration in range(doc["iteration"] + 1, cfg.iterations + 1):
        policy = collection_policy(model, adapter.state_dict(), preset, collector, settings.seed * 1000 + iteration,
                                   device)
        round_start = time.perf_counter()
        stats = collector.run(policy, cfg.steps_per_iteration, buffer, progress,
                              f"round {iteration}/{cfg.iterations}", on_reset=policy.on_reset)
        collected = time.perf_counter()
        losses = _updates(adapter, optimizer, buffer, preset, settings.seed, iteration,
                          preset.meta.updates_per_iteration, progress)
        done = time.perf_counter()
        _record(doc, iteration, len(buffer), stats.returns, losses, done - start,
                phase_seconds(round_start, collected, done, "update_s"))
        doc["iteration"] = iteration
        doc["episodes_seeded"] += len(stats.returns)
        _save(run_dir, buffer, model, adapter, optimizer, preset, settings, actuation, doc)
        report_round(doc, progress, cfg.iterations)
    collector.close()
    return ckpt_path


def collection_policy(model: DynamicsModel, adapter_state: dict[str, torch.Tensor], preset: ControllerPreset,
                      collector: VectorCollector, seed: int, device: torch.device) -> AdaptiveCollectionPolicy:
    """One adapter per env (sharing ``model`` and the learned parts ``adapter_state``) + a seeded planner."""
    adapters = []
    for _ in collector.envs:
        env_adapter = build_meta_adapter(model, preset)
        env_adapter.load_state_dict(adapter_state)
        adapters.append(env_adapter)
    planner = make_planner(preset.planner, model.act_dim, device=device, seed=seed)
    reward = collector.planning_reward(preset.planner.upright_cost)
    return AdaptiveCollectionPolicy(AdaptivePolicy(adapters, planner, reward, collector.termination_fn), device)


def _updates(adapter: MetaAdapter, optimizer: torch.optim.Optimizer, buffer: TransitionBuffer,
             preset: ControllerPreset, seed: int, iteration: int, updates: int,
             progress: bool | None) -> dict:
    """Meta-updates of one round, with segment sampling seeded from ``(seed, iteration)``; then the elites
    (``model.elites > 0``), listed under ``"elites"``."""
    rng = np.random.default_rng([seed, iteration])
    generator = torch.Generator().manual_seed(seed * 1000 + iteration)
    losses: dict = meta_updates(adapter, optimizer, buffer, preset, updates, rng, generator, progress,
                                f"meta-update {iteration}/{preset.training.iterations}")
    if adapter.model.config.elites:
        losses["elites"] = rank_elites(adapter, buffer, preset, rng)
    return losses


def _record(doc: dict, iteration: int, env_steps: int, returns: list[float], losses: dict, wall: float,
            phases: dict[str, float]) -> None:
    row = {"iteration": iteration, "env_steps": env_steps,
           "mean_return": float(np.mean(returns)) if returns else float("nan"),
           "episodes": len(returns), "meta_loss": losses["meta_loss"],
           "prior_loss": losses["prior_loss"], "wall_clock_s": round(wall, 1), **phases}
    if "elites" in losses:
        row["elites"] = losses["elites"]
    doc["history"].append(row)
    doc["env_steps"], doc["wall_clock_s"] = env_steps, wall


def _save(run_dir: Path, buffer: TransitionBuffer, model: DynamicsModel, adapter: MetaAdapter,
          optimizer: torch.optim.Optimizer, preset: ControllerPreset, settings: RunSettings, actuation: str,
          doc: dict) -> None:
    """Buffer, optimiser, checkpoint, then progress: progress only ever points at files already on disk."""
    buffer.save(run_dir / "buffer.npz")
    atomic_write(run_dir / "optimizer.pt", lambda tmp: torch.save(optimizer.state_dict(), tmp))
    save_checkpoint(run_dir / "model.pt", robot=settings.robot, obs_dim=model.obs_dim, action_dim=model.act_dim,
                    preset=to_dict(preset), model_state=model.state_dict(), adapter_state=adapter.state_dict(),
                    actuation=actuation, meta={"iteration": doc["iteration"], "env_steps": doc["env_steps"],
                                               "scenario": settings.scenario, "seed": settings.seed})
    write_progress(run_dir, doc)
