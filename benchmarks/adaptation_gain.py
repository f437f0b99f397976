"""How much does adapting from the last M transitions improve the prediction of the next K, on held-out tasks?

    python benchmarks/adaptation_gain.py --robot ant --train-scenario crippled_leg_train \
        --test-scenarios crippled_leg_test --seeds 0 1 2 --tag small

This isolates the adaptation from the planning. Returns under shift depend on the model, the adaptation
and the planner together, and on locomotion robots mostly on whether an episode ends in a fall; here
every method's model is scored on the **same** held-out transitions, offline:

1. For each training seed, the driver's model (``--driver``: MB, ``<runs-dir>/adapt_..._mb..._s<seed>`` of
   ``benchmarks/adaptation.py``, or PE-TS for the probabilistic ensembles) drives ``--episodes`` episodes
   of each test scenario (``--episode-steps`` control steps at most, environment seeds 20_000 + i) through
   its MPC; the transitions are kept.
2. Every run of M + K consecutive transitions of an episode (M = the adapter's window, K = 16) is one
   window. GrBAL: the prior's loss on the K future transitions, and the loss after the inner gradient
   step on the M past ones (with its meta-learned step sizes; GrBAL-guarded: with backtracking,
   ``--set adapter.backtracking=6``). ReBAL: the loss with the empty-window context (its prior), and with the
   context encoded from the M past transitions (ReBAL-gated: the context it plans with under
   ``--set adapter.context_gate=true``). MB+DE: the MB model,
   and the same model fine-tuned (the ``mb_de`` preset's Adam steps, accumulating) on the episode's
   transitions up to the window's last past one, as it would be at that control step. PE-TS (no adapter)
   gives its model's scores, before = after: the reference the adaptive PE methods have to beat.

The loss is the models' training loss: mean squared error of the normalised state change, or the Gaussian
NLL for a probabilistic model (each model uses its own normalisers, so compare a method's two columns;
the change is relative to the loss's magnitude, so a negative change is an improvement for either loss).
The *state-change error* compares methods: the mean squared error of the one-step prediction that the
planner uses (an ensemble's members' mean; ``Adapter.predict``) on the same K future transitions, per
dimension over the variance of the true state change in the driver's data (so 1.0 is as good as always
predicting the average change). The table gives seed means, the relative change from adapting and the
share of windows where adapting lowered the loss.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

import adaptive_mbrl as am
from adaptive_mbrl.control import AdaptiveController
from adaptive_mbrl.evaluation import load_controller
from adaptive_mbrl.provenance import provenance_line

# benchmarks/adaptation.py and _common.py, importable because `python benchmarks/adaptation_gain.py` puts
# this script's folder first on sys.path: adaptation.py's run folders and the presets its methods run with
from _common import default_runs_dir
from adaptation import METHODS as ADAPTATION_METHODS, run_dir, run_settings

FUTURE = 16
"""K: future transitions scored per window (the presets' ``meta.future``)."""

METHODS = ("MB+DE", "GrBAL", "GrBAL-guarded", "ReBAL", "ReBAL-gated", "PE-TS", "PE-TS+DE", "PE-GrBAL", "PE-ReBAL",
           "PE-ReBAL-gated", "PE-TS+gains")
"""The methods scored: each runs its trained model with its preset of benchmarks/adaptation.py."""
DEFAULT_METHODS = ("MB+DE", "GrBAL", "GrBAL-guarded", "ReBAL", "ReBAL-gated")
DRIVERS = ("MB", "PE-TS")
"""Methods whose MPC can collect the scored transitions (a non-adaptive model)."""
DEFAULT_DRIVER = "MB"


class Scores(NamedTuple):
    """One method's per-window scores on one seed's data, before and after adapting: ``[W]`` each."""

    loss_before: np.ndarray
    loss_after: np.ndarray
    error_before: np.ndarray
    error_after: np.ndarray


def method_controller(method: str, checkpoint: Path, backend: str, seed: int,
                      run_overrides: list[str] | tuple[str, ...] = ()) -> AdaptiveController:
    """``method``'s trained model run as benchmarks/adaptation.py runs it (its preset and settings, then
    ``run_overrides``: ``adapter.*`` / ``planner.*`` settings)."""
    return load_controller(checkpoint, ADAPTATION_METHODS[method].run, backend=backend, seed=seed,
                           overrides=run_settings(method, run_overrides), threads=None)


def collect(controller: AdaptiveController, robot: str, scenario: str, backend: str, episodes: int,
            steps: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Episodes of the driver's controller: per episode ``(obs [T, o], action [T, a], next_obs [T, o])``."""
    data = []
    for i in range(episodes):
        env = am.make(robot, scenario, backend=backend, seed=20_000 + i, episode_steps=steps)
        obs, _ = env.reset()
        controller.reset()
        rows, done = [], False
        while not done:
            action = controller.act(obs)
            next_obs, _, terminated, truncated, _ = env.step(action)
            controller.observe(obs, action, next_obs)
            rows.append((obs, action, next_obs))
            obs, done = next_obs, terminated or truncated
        env.close()
        data.append(tuple(np.array(column, dtype=np.float32) for column in zip(*rows)))
    return data


def windows(data: list[tuple[np.ndarray, ...]], length: int) -> tuple[torch.Tensor, ...]:
    """Every run of ``length`` consecutive transitions of an episode: ``[W, length, ...]`` x3."""
    parts = [[], [], []]
    for episode in data:
        count = len(episode[0]) - length + 1
        for start in range(max(count, 0)):
            for column, part in zip(episode, parts):
                part.append(column[start:start + length])
    if not parts[0]:
        raise SystemExit(f"no episode lasted {length} steps (M + K); raise --episode-steps or --episodes")
    return tuple(torch.as_tensor(np.stack(p)) for p in parts)


def state_change_scale(data: list[tuple[np.ndarray, ...]]) -> torch.Tensor:
    """Per-dimension variance of the true state change ``next_obs - obs`` over the driver's data: ``[o]``."""
    deltas = np.concatenate([nxt - obs for obs, _, nxt in data])
    return torch.as_tensor(deltas.var(0) + 1e-8)


def state_change_error(predicted: torch.Tensor, obs: torch.Tensor, nxt: torch.Tensor, scale: torch.Tensor) -> float:
    """Mean over steps and dimensions of the squared one-step error over ``scale`` (``[K, o]`` -> unitless)."""
    return ((predicted - nxt).square() / scale).mean().item()


def _adapted_loss(controller: AdaptiveController, obs: torch.Tensor, act: torch.Tensor,
                  nxt: torch.Tensor) -> torch.Tensor:
    """The training loss of the model the controller plans with now (after its adapter's last ``adapt``)."""
    model, adapter = controller.model, controller.adapter
    kind = controller.preset.adapter.kind
    if kind == "grbal":
        return adapter.adapted.loss(obs, act, nxt)
    if kind == "rebal":
        return model.loss(obs, act, nxt, adapter.context.expand(obs.shape[0], -1))
    if kind == "none":
        return model.loss(obs, act, nxt)
    if kind == "actuator_gains":
        return model.loss(obs, act * adapter.gains, nxt)
    raise ValueError(f"per-window adaptation needs a grbal, rebal, actuator_gains or no adapter, got {kind!r}")


def per_window_losses(controller: AdaptiveController, obs: torch.Tensor, act: torch.Tensor, nxt: torch.Tensor,
                      past: int, scale: torch.Tensor) -> Scores:
    """Scores on the K future transitions of each window: before adapting (the prior: the adapter just
    reset) and after adapting from the window's M past ones, by the run-time path (``adapt()``, with
    GrBAL's backtracking or ReBAL's gate if the preset has them)."""
    adapter = controller.adapter
    scores: list[tuple[float, float, float, float]] = []
    for w in range(obs.shape[0]):
        o, a, n = obs[w], act[w], nxt[w]
        future = (o[past:], a[past:], n[past:])
        adapter.reset()
        with torch.no_grad():
            loss_before = _adapted_loss(controller, *future).item()
            error_before = state_change_error(adapter.predict(*future[:2]), future[0], future[2], scale)
        adapter.adapt(o[:past], a[:past], n[:past])
        with torch.no_grad():
            loss_after = _adapted_loss(controller, *future).item()
            error_after = state_change_error(adapter.predict(*future[:2]), future[0], future[2], scale)
        scores.append((loss_before, loss_after, error_before, error_after))
    return Scores(*(np.array(column) for column in zip(*scores)))


def dynamic_evaluation_losses(controller: AdaptiveController, data: list[tuple[np.ndarray, ...]],
                              past: int, scale: torch.Tensor) -> Scores:
    """MB+DE / PE-TS+DE: scores of the trained model (before) and of the fine-tuned one (after) on the K
    transitions after each window; the fine-tuned model has observed the episode up to the window's last
    past transition."""
    scores: list[tuple[float, float, float, float]] = []
    for episode in data:
        obs, act, nxt = (torch.as_tensor(column) for column in episode)
        controller.reset()
        for t in range(len(obs) - FUTURE):
            controller.observe(episode[0][t], episode[1][t], episode[2][t])
            if t + 1 < past:
                continue
            future = slice(t + 1, t + 1 + FUTURE)
            o, a, n = obs[future], act[future], nxt[future]
            with torch.no_grad():
                tuned = controller.adapter.adapted
                scores.append((controller.model.loss(o, a, n).item(), tuned.loss(o, a, n).item(),
                               state_change_error(controller.model.predict(o, a), o, n, scale),
                               state_change_error(tuned.predict(o, a), o, n, scale)))
    return Scores(*(np.array(column) for column in zip(*scores)))


def print_rows(scenario: str, results: dict[str, list[Scores]]) -> None:
    """One table row per method: seed means of the loss and the state-change error, before and after."""
    for method, per_seed in results.items():
        mean = {field: np.mean([getattr(s, field).mean() for s in per_seed]) for field in Scores._fields}
        improved = np.mean(np.concatenate([s.loss_after < s.loss_before for s in per_seed])) * 100
        count = sum(len(s.loss_before) for s in per_seed)
        change = (mean["loss_after"] - mean["loss_before"]) / abs(mean["loss_before"]) * 100  # < 0: better
        print(f"| {scenario} | {method} | {count} | {mean['loss_before']:.4f} | {mean['loss_after']:.4f} "
              f"| {change:+.1f} % | {improved:.0f} % | {mean['error_before']:.4f} | {mean['error_after']:.4f} |",
              flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--robot", default="half_cheetah")
    parser.add_argument("--train-scenario", default="crippled_joint_train")
    parser.add_argument("--test-scenarios", nargs="+", default=["crippled_joint_test"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--tag", default="", help="run-folder suffix of the trained models (adaptation.py --tag)")
    parser.add_argument("--backend", default="mujoco", choices=["mujoco", "pybullet"])
    parser.add_argument("--episodes", type=int, default=2, help="held-out episodes per seed and scenario")
    parser.add_argument("--episode-steps", type=int, default=300, help="control steps per episode at most")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS), choices=list(METHODS),
                        help="methods to score (only their checkpoints, and the driver's, need to exist)")
    parser.add_argument("--driver", default=DEFAULT_DRIVER, choices=list(DRIVERS),
                        help="the method whose MPC collects the scored transitions (default: MB)")
    parser.add_argument("--runs-dir", type=Path, default=default_runs_dir(),
                        help="where adaptation.py's run folders live (default: $ADAPTIVE_MBRL_RUNS or runs/)")
    parser.add_argument("--run-set", dest="run_overrides", nargs="+", default=[], metavar="SECTION.KEY=VALUE",
                        help="adapter.* / planner.* settings for every scored method (not the driver), e.g. "
                        "adapter.learning_rate=3e-4")
    args = parser.parse_args()
    if args.episodes < 1 or args.episode_steps < 1:
        parser.error("--episodes and --episode-steps must be at least 1")
    print(provenance_line(), flush=True)
    torch.set_num_threads(args.threads)
    print(f"\n{args.robot}: prediction loss and state-change error on the {FUTURE} transitions after each "
          f"window, before and after adapting from the window; transitions of {args.driver}'s MPC; seeds "
          f"{args.seeds}, {args.episodes} episodes of <= {args.episode_steps} steps each"
          f"{'; run with ' + ' '.join(args.run_overrides) if args.run_overrides else ''}\n")
    print("| scenario | method | windows | loss before adapting | loss after | change | windows improved "
          "| state-change error before | after |")
    print("|---|---|---|---|---|---|---|---|---|")
    for scenario in args.test_scenarios:
        results: dict[str, list[Scores]] = {method: [] for method in args.methods}
        for seed in args.seeds:
            checkpoints = {method: run_dir(args.robot, args.train_scenario, ADAPTATION_METHODS[method].trained,
                                           seed, args.tag, args.runs_dir) / "model.pt"
                           for method in {args.driver, *args.methods}}
            missing = sorted({str(f) for f in checkpoints.values() if not f.exists()})
            if missing:
                raise SystemExit(f"missing checkpoints (train them with benchmarks/adaptation.py): {missing}")
            data = collect(method_controller(args.driver, checkpoints[args.driver], args.backend, seed),
                           args.robot, scenario, args.backend, args.episodes, args.episode_steps)
            scale = state_change_scale(data)
            for method in args.methods:
                controller = method_controller(method, checkpoints[method], args.backend, seed, args.run_overrides)
                past = controller.preset.adapter.window
                if controller.preset.adapter.kind == "finetune":
                    results[method].append(dynamic_evaluation_losses(controller, data, past, scale))
                else:
                    results[method].append(per_window_losses(controller, *windows(data, past + FUTURE), past,
                                                             scale))
        print_rows(scenario, results)


if __name__ == "__main__":
    main()
