"""Training speed of a model-based preset: how fast its MPC collection steps E environments in lockstep
(one batched planning call for all of them) and how long its model fit or meta-update takes, per torch
thread count; and what that makes a whole training run, alone on the machine.

    python benchmarks/collection_speed.py [--preset pets] [--robot half_cheetah] [--envs 1 5 10 20]
                                          [--threads 1 2] [--steps 200] [--budget 200000]
    python benchmarks/collection_speed.py --preset pets --envs 2 --threads 1 --steps 10   # a smoke run

For each (E, threads): collection env steps/s (planning + the environments' steps, as
``VectorCollector.run`` does in training; the first planning calls are not timed), the fit's cost
(seconds per 10k training rows x epochs of the model's minibatch training; for a meta-trained preset,
seconds per meta-update) and the projected wall-clock of a run of ``--budget`` environment steps with the preset's
``training`` schedule: random steps, then rounds of ``steps_per_iteration`` collected steps, each followed
by ``epochs`` passes over 90 % of the buffer (``first_epochs`` after the random data) or
``updates_per_iteration`` meta-updates. The fit is projected at its full epoch count (its early stopping
can only shorten it), the random steps at no cost. Models are untrained: cost does not depend on the
weights. The training runs' own ``progress.json`` (``collect_s``, ``fit_s`` / ``update_s`` per round)
is the measured counterpart.
"""
from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch

from adaptive_mbrl.models.dynamics import DynamicsModel
from adaptive_mbrl.models.fitting import fit
from adaptive_mbrl.planning import make_planner
from adaptive_mbrl.presets import ControllerPreset, load_preset
from adaptive_mbrl.provenance import provenance_line
from adaptive_mbrl.training.buffer import TransitionBuffer
from adaptive_mbrl.training.collect import VectorCollector, planner_policy, random_policy
from adaptive_mbrl.training.meta_train import (META_ADAPTERS, build_meta_adapter, collection_policy,
                                               make_meta_optimizer, meta_updates)
from adaptive_mbrl.training.train_model import VAL_FRACTION, collection_scorer

WARMUP_CALLS = 3
"""Planning calls before the timed collection (first-call allocations, the planner's warm start)."""


def _random_buffer(robot: str, scenario: str, steps: int, seed: int) -> TransitionBuffer:
    """``steps`` transitions of uniform random actions (data for the normalisers and the fit timing)."""
    collector = VectorCollector(robot, scenario, 4, seed=seed)
    buffer = TransitionBuffer(collector.obs.shape[1], collector.envs[0].action_space.shape[0])
    collector.run(random_policy(buffer.action_dim, np.random.default_rng(seed)), steps, buffer, progress=False)
    collector.close()
    return buffer


def collection_rate(preset: ControllerPreset, robot: str, scenario: str, envs: int, steps: int,
                    model: DynamicsModel, seed: int = 0) -> float:
    """Env steps/s of ``preset``'s MPC collection on ``envs`` environments in lockstep (``steps`` timed env
    steps in all, after :data:`WARMUP_CALLS` untimed planning calls)."""
    collector = VectorCollector(robot, scenario, envs, seed=seed)
    buffer = TransitionBuffer(model.obs_dim, model.act_dim)
    if preset.adapter.kind in META_ADAPTERS:
        adapter = build_meta_adapter(model, preset)
        policy = collection_policy(model, adapter.state_dict(), preset, collector, seed, model.device)
        on_reset = policy.on_reset
    else:
        planner = make_planner(preset.planner, model.act_dim, seed=seed)
        policy = planner_policy(planner, collection_scorer(model, preset.planner, collector, seed=seed))
        on_reset = None
    collector.run(policy, WARMUP_CALLS * envs, buffer, progress=False, on_reset=on_reset)
    start = time.perf_counter()
    collector.run(policy, max(steps, envs), buffer, progress=False, on_reset=on_reset)
    rate = max(steps, envs) / (time.perf_counter() - start)
    collector.close()
    return rate


def fit_cost(preset: ControllerPreset, model: DynamicsModel, buffer: TransitionBuffer, seed: int = 0) -> float:
    """Seconds per 10k training rows x epochs of the preset's model fit (one epoch over the
    ``1 - VAL_FRACTION`` training share of ``buffer``, the epoch's validation on the rest included, as
    training splits it), or, for a meta-trained preset, seconds per meta-update (20 timed)."""
    generator = torch.Generator().manual_seed(seed)
    if preset.adapter.kind in META_ADAPTERS:
        adapter = build_meta_adapter(model, preset)
        optimizer = make_meta_optimizer(model, adapter, preset.meta.learning_rate)
        rng = np.random.default_rng(seed)
        meta_updates(adapter, optimizer, buffer, preset, 2, rng, generator)  # untimed: first-call costs
        start = time.perf_counter()
        meta_updates(adapter, optimizer, buffer, preset, 20, rng, generator)
        return (time.perf_counter() - start) / 20
    data = buffer.tensors(model.device)
    def one_epoch() -> None:
        fit(model, data["obs"], data["action"], data["next_obs"], epochs=1, generator=generator,
            val_fraction=VAL_FRACTION, progress=False)
    one_epoch()  # untimed: first-call costs
    start = time.perf_counter()
    one_epoch()
    return (time.perf_counter() - start) / (len(buffer) * (1 - VAL_FRACTION)) * 10_000


def projected_minutes(preset: ControllerPreset, collect_steps_per_s: float, fit_cost_s: float,
                      budget: int) -> tuple[float, float]:
    """(collection, fit) minutes of a run of ``budget`` env steps on ``preset``'s training schedule, from
    :func:`collection_rate` and :func:`fit_cost`."""
    cfg = preset.training
    rounds = max(0, math.ceil((budget - cfg.random_steps) / cfg.steps_per_iteration))
    collect_s = rounds * cfg.steps_per_iteration / collect_steps_per_s
    if preset.adapter.kind in META_ADAPTERS:
        fit_s = (preset.meta.first_updates + rounds * preset.meta.updates_per_iteration) * fit_cost_s
    else:
        sizes = [cfg.random_steps + k * cfg.steps_per_iteration for k in range(rounds + 1)]
        row_epochs = sum(size * (1 - VAL_FRACTION) * (cfg.first_epochs if k == 0 else cfg.epochs)
                         for k, size in enumerate(sizes))
        fit_s = row_epochs / 10_000 * fit_cost_s
    return collect_s / 60, fit_s / 60


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="pets", help="a model-based controller preset (default: pets)")
    parser.add_argument("--robot", default="half_cheetah")
    parser.add_argument("--scenario", default="crippled_joint_train")
    parser.add_argument("--envs", type=int, nargs="+", default=[1, 5, 10, 20],
                        help="environments stepped in lockstep (the preset trains with training.parallel_envs)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=200, help="timed env steps per collection measurement")
    parser.add_argument("--fit-rows", type=int, default=5000, help="random transitions the fit is timed on")
    parser.add_argument("--budget", type=int, default=200_000, help="env steps of the projected run")
    args = parser.parse_args()
    for name, values in (("--envs", args.envs), ("--threads", args.threads)):
        if min(values) < 1:
            parser.error(f"{name}: every value must be >= 1, got {values}")
    if args.steps < 1 or args.fit_rows < 64 or args.budget < 1:
        parser.error("--steps and --budget must be >= 1 and --fit-rows >= 64")
    preset = load_preset(args.preset)
    if not isinstance(preset, ControllerPreset):
        parser.error(f"--preset {args.preset!r} is not a model-based preset")
    buffer = _random_buffer(args.robot, args.scenario, args.fit_rows, seed=0)
    unit = "s/update" if preset.adapter.kind in META_ADAPTERS else "s per 10k training row-epochs"
    cfg = preset.training
    print(provenance_line())
    print(f"# {preset.name} on {args.robot} / {args.scenario}; schedule: {cfg.random_steps} random steps, "
          f"rounds of {cfg.steps_per_iteration} steps, "
          f"preset trains with {cfg.parallel_envs} envs; projection for {args.budget} env steps\n")
    print(f"| envs | threads | collection env steps/s | fit ({unit}) | projected collect min | projected fit min "
          f"| projected total min |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for threads in args.threads:
        torch.set_num_threads(threads)
        torch.manual_seed(0)
        model = DynamicsModel(buffer.obs_dim, buffer.action_dim, preset.model)
        data = buffer.tensors()
        model.fit_normalizers(data["obs"], data["action"], data["next_obs"])
        cost = fit_cost(preset, model, buffer)
        for envs in args.envs:
            rate = collection_rate(preset, args.robot, args.scenario, envs, args.steps, model)
            collect_min, fit_min = projected_minutes(preset, rate, cost, args.budget)
            print(f"| {envs} | {threads} | {rate:.1f} | {cost:.3g} | {collect_min:.1f} | {fit_min:.1f} "
                  f"| {collect_min + fit_min:.1f} |", flush=True)


if __name__ == "__main__":
    main()
