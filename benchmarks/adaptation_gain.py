"""How much does adapting from the last M transitions improve the prediction of the next K, on held-out tasks?

    python benchmarks/adaptation_gain.py --robot ant --train-scenario crippled_leg_train \
        --test-scenarios crippled_leg_test --seeds 0 1 2 --tag small

This isolates the adaptation from the planning. Returns under shift depend on the model, the adaptation
and the planner together, and on locomotion robots mostly on whether an episode ends in a fall; here
every method's model is scored on the **same** held-out transitions, offline:

1. For each training seed, the MB model (``<runs-dir>/adapt_..._mb..._s<seed>`` of ``benchmarks/adaptation.py``)
   drives ``--episodes`` episodes of each test scenario (``--episode-steps`` control steps at most,
   environment seeds 20_000 + i) through its MPC; the transitions are kept.
2. Every run of M + K consecutive transitions of an episode (M = the adapter's window, K = 16) is one
   window. GrBAL: the prior's loss on the K future transitions, and the loss after the inner gradient
   step on the M past ones (with its meta-learned step sizes; GrBAL-guarded: with backtracking,
   ``--set adapter.backtracking=6``). ReBAL: the loss with the empty-window context (its prior), and with the
   context encoded from the M past transitions (ReBAL-gated: the context it plans with under
   ``--set adapter.context_gate=true``). MB+DE: the MB model,
   and the same model fine-tuned (the ``mb_de`` preset's Adam steps, accumulating) on the episode's
   transitions up to the window's last past one, as it would be at that control step.

The loss is the models' training loss: mean squared error of the normalised state change (each model
uses its own normalisers, so compare a method's two columns, and methods only roughly). The table gives
seed means, the relative change from adapting and the share of windows where adapting lowered the loss.
"""
from __future__ import annotations

import argparse
from pathlib import Path

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

METHODS = ("MB+DE", "GrBAL", "GrBAL-guarded", "ReBAL", "ReBAL-gated")
"""The methods scored: each runs its trained model with its preset of benchmarks/adaptation.py."""


def collect(checkpoint: Path, robot: str, scenario: str, backend: str, episodes: int, steps: int,
            seed: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Episodes of the MB controller: per episode ``(obs [T, o], action [T, a], next_obs [T, o])``."""
    controller = AdaptiveController.from_checkpoint(checkpoint, seed=seed, backend=backend, threads=None)
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


def per_window_losses(controller: AdaptiveController, obs: torch.Tensor, act: torch.Tensor, nxt: torch.Tensor,
                      past: int) -> tuple[np.ndarray, np.ndarray]:
    """(prior loss [W], adapted loss [W]) on the K future transitions of each window."""
    kind = controller.preset.adapter.kind
    model, adapter = controller.model, controller.adapter
    prior, adapted = [], []
    for w in range(obs.shape[0]):
        o, a, n = obs[w:w + 1], act[w:w + 1], nxt[w:w + 1]
        if kind == "grbal":  # the run-time path: adapt() (with backtracking, if the preset has it)
            adapter.adapt(o[0, :past], a[0, :past], n[0, :past])
            with torch.no_grad():
                loss = adapter.adapted.loss(o[0, past:], a[0, past:], n[0, past:])
                base = model.loss(o[0, past:], a[0, past:], n[0, past:])
        elif kind == "rebal":  # the run-time path: adapt() (with the gate, if the preset has it), then predict
            adapter.adapt(o[0, :past], a[0, :past], n[0, :past])
            future = o.shape[1] - past
            with torch.no_grad():
                loss = model.loss(o[0, past:], a[0, past:], n[0, past:], adapter.context.expand(future, -1))
                base = model.loss(o[0, past:], a[0, past:], n[0, past:], adapter.empty_context.expand(future, -1))
        else:
            raise ValueError(f"per-window adaptation needs a grbal or rebal adapter, got {kind!r}")
        prior.append(base.item())
        adapted.append(loss.detach().item())
    return np.array(prior), np.array(adapted)


def dynamic_evaluation_losses(controller: AdaptiveController, data: list[tuple[np.ndarray, ...]],
                              past: int) -> tuple[np.ndarray, np.ndarray]:
    """MB+DE: (MB model's loss [W], fine-tuned model's loss [W]) on the K transitions after each window;
    the fine-tuned model has observed the episode up to the window's last past transition."""
    prior, adapted = [], []
    for episode in data:
        obs, act, nxt = (torch.as_tensor(column) for column in episode)
        controller.reset()
        for t in range(len(obs) - FUTURE):
            controller.observe(episode[0][t], episode[1][t], episode[2][t])
            if t + 1 < past:
                continue
            future = slice(t + 1, t + 1 + FUTURE)
            with torch.no_grad():
                prior.append(controller.model.loss(obs[future], act[future], nxt[future]).item())
                adapted.append(controller.adapter.adapted.loss(obs[future], act[future], nxt[future]).item())
    return np.array(prior), np.array(adapted)


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
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS),
                        help="methods to score (only their checkpoints, and MB's, need to exist)")
    parser.add_argument("--runs-dir", type=Path, default=default_runs_dir(),
                        help="where adaptation.py's run folders live (default: $ADAPTIVE_MBRL_RUNS or runs/)")
    args = parser.parse_args()
    if args.episodes < 1 or args.episode_steps < 1:
        parser.error("--episodes and --episode-steps must be at least 1")
    print(provenance_line(), flush=True)
    torch.set_num_threads(args.threads)
    print(f"\n{args.robot}: prediction loss on the {FUTURE} transitions after each window, before and after "
          f"adapting from the window; seeds {args.seeds}, {args.episodes} episodes of <= {args.episode_steps} "
          "steps each\n")
    print("| scenario | method | windows | loss before adapting | loss after | change | windows improved |")
    print("|---|---|---|---|---|---|---|")
    trained = {"mb"} | {ADAPTATION_METHODS[m].trained for m in args.methods}  # MB collects the transitions
    for scenario in args.test_scenarios:
        results: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {method: [] for method in args.methods}
        for seed in args.seeds:
            checkpoints = {preset: run_dir(args.robot, args.train_scenario, preset, seed, args.tag, args.runs_dir)
                           / "model.pt" for preset in trained}
            missing = [str(f) for f in checkpoints.values() if not f.exists()]
            if missing:
                raise SystemExit(f"missing checkpoints (train them with benchmarks/adaptation.py): {missing}")
            data = collect(checkpoints["mb"], args.robot, scenario, args.backend, args.episodes,
                           args.episode_steps, seed)
            for method in args.methods:
                checkpoint = checkpoints[ADAPTATION_METHODS[method].trained]
                controller = load_controller(checkpoint, ADAPTATION_METHODS[method].run, backend=args.backend,
                                             overrides=run_settings(method), threads=None)
                past = controller.preset.adapter.window
                if method == "MB+DE":
                    results[method].append(dynamic_evaluation_losses(controller, data, past))
                else:
                    results[method].append(per_window_losses(controller, *windows(data, past + FUTURE), past))
        for method, per_seed in results.items():
            before = np.mean([p.mean() for p, _ in per_seed])
            after = np.mean([a.mean() for _, a in per_seed])
            improved = np.mean(np.concatenate([a < p for p, a in per_seed])) * 100
            count = sum(len(p) for p, _ in per_seed)
            change = (after / before - 1) * 100
            print(f"| {scenario} | {method} | {count} | {before:.4f} | {after:.4f} | {change:+.1f} % "
                  f"| {improved:.0f} % |", flush=True)


if __name__ == "__main__":
    main()
