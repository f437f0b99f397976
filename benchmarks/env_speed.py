"""Environment speed: control steps per second per robot and backend, and the overhead of the
gymnasium environment against a bare physics loop with the same frame skip; and the speed of RL² trial
collection (E envs stepped together, one GRU forward per step for all of them) against the env alone.

    python benchmarks/env_speed.py [--steps 20000] [--backends mujoco pybullet] [--robots cartpole ant]
                                   [--rl2-envs 1 16 64] [--rl2-preset rl2]

MuJoCo baselines on the same compiled model: ``data.ctrl[:] = a; mujoco.mj_step(model, data, nstep=frame_skip)``
(one call, the fastest bare loop) and ``frame_skip`` Python calls of ``mujoco.mj_step(model, data)`` (the
plain loop a user writes). PyBullet baseline: the simulator's own step (torques or PD targets + frame_skip
``stepSimulation`` calls), without the gymnasium layer. Overhead = bare steps/s / env steps/s
(target <= 1.3x on MuJoCo).

RL² collection: :func:`~adaptive_mbrl.baselines.rl2_trials.collect_trials` with the preset's (untrained)
policy on the CPU, trials of 2 episodes on the nominal scenario, enough trials for ``--steps`` steps (at
least one per env); share = RL² steps/s / env steps/s (1.0 would be a free policy). ``--rl2-envs`` with
no value skips it. Torch uses ``torch.get_num_threads()`` threads (set OMP_NUM_THREADS to pin it).
"""
from __future__ import annotations

import argparse
import math
import time

import mujoco
import numpy as np
import torch

import adaptive_mbrl as am
from adaptive_mbrl.baselines.presets import RL2Preset, load_baseline_preset
from adaptive_mbrl.baselines.rl2 import RL2Policy
from adaptive_mbrl.baselines.rl2_trials import collect_trials
from adaptive_mbrl.provenance import provenance_line

RL2_EPISODES = 2
"""Episodes per trial in the RL² collection rows (the shipped preset's)."""


def _time(fn, steps: int, repeats: int = 3) -> float:
    """Best steps/s of ``fn(i)`` over ``repeats`` runs of ``steps`` calls."""
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(steps):
            fn(i)
        best = max(best, steps / (time.perf_counter() - start))
    return best


def env_rate(robot: str, backend: str, steps: int, actions: np.ndarray, repeats: int = 3) -> float:
    env = am.make(robot, backend=backend, seed=0)
    env.reset()

    def step(i: int) -> None:
        _, _, terminated, truncated, _ = env.step(actions[i])
        if terminated or truncated:
            env.reset()

    rate = _time(step, steps, repeats)
    env.close()
    return rate


def bare_rate(robot: str, backend: str, steps: int, actions: np.ndarray, python_loop: bool = False,
              repeats: int = 3) -> float:
    env = am.make(robot, backend=backend, seed=0)
    env.reset()
    sim = env.unwrapped.sim
    if backend == "mujoco":
        model, data, skip = sim.model, sim.data, sim.frame_skip
        initial = (data.qpos.copy(), data.qvel.copy())

        def step(i: int) -> None:
            data.ctrl[:] = actions[i]
            if python_loop:
                for _ in range(skip):
                    mujoco.mj_step(model, data)
            else:
                mujoco.mj_step(model, data, nstep=skip)
            if i % env.unwrapped.episode_steps == 0:  # keep the state in a comparable regime
                data.qpos[:], data.qvel[:] = initial
    else:
        def step(i: int) -> None:
            sim.step(actions[i])
    rate = _time(step, steps, repeats)
    env.close()
    return rate


def rl2_rate(robot: str, backend: str, steps: int, n_envs: int, preset: RL2Preset, repeats: int = 3) -> float:
    """Best env steps/s of RL² collection on ``n_envs`` envs (at least ``steps`` steps per timing run)."""
    envs = [am.make(robot, backend=backend) for _ in range(n_envs)]
    policy = RL2Policy(envs[0].observation_space.shape[0], envs[0].action_space.shape[0], preset)
    trials = max(n_envs, math.ceil(steps / (RL2_EPISODES * envs[0].unwrapped.episode_steps)))
    generator = torch.Generator().manual_seed(0)
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        data = collect_trials(policy, envs, list(range(trials)), RL2_EPISODES, generator)
        best = max(best, float(data["mask"].sum()) / (time.perf_counter() - start))
    for env in envs:
        env.close()
    return best


def print_rl2_table(rows: list[tuple], rl2_envs: list[int], rl2_rates: dict[tuple, float], preset: str) -> None:
    print(f"\nRL² collection ({preset} preset, {torch.get_num_threads()} torch threads, trials of "
          f"{RL2_EPISODES} episodes):")
    print("| robot | backend | RL² envs | RL² collection steps/s | env steps/s | share of env speed |")
    print("|---|---|---|---|---|---|")
    for robot, backend, _, env_sps, *_ in rows:
        for n in rl2_envs:
            rate = rl2_rates[robot, backend, n]
            print(f"| {robot} | {backend} | {n} | {rate:,.0f} | {env_sps:,.0f} | {rate / env_sps:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20000, help="control steps per timing run")
    parser.add_argument("--backends", nargs="+", default=["mujoco", "pybullet"], choices=["mujoco", "pybullet"])
    parser.add_argument("--robots", nargs="+", default=am.list_robots(), choices=am.list_robots())
    parser.add_argument("--repeats", type=int, default=3, help="timing runs per rate (the best is kept)")
    parser.add_argument("--rl2-envs", type=int, nargs="*", default=[1, 16, 64],
                        help="numbers of envs for the RL² collection rows (none: skip them)")
    parser.add_argument("--rl2-preset", default="rl2", help="RL² preset (name or .yaml) whose policy collects")
    args = parser.parse_args()
    if args.steps < 1 or args.repeats < 1:
        parser.error("--steps and --repeats must be at least 1")
    if any(n < 1 for n in args.rl2_envs):
        parser.error(f"--rl2-envs: {args.rl2_envs} has a value below 1; allowed: integers >= 1")
    preset = load_baseline_preset(args.rl2_preset) if args.rl2_envs else None
    if preset is not None and not isinstance(preset, RL2Preset):
        parser.error(f"--rl2-preset: {args.rl2_preset!r} is a {preset.kind} preset; allowed: an RL² (kind rl2) preset")
    print(provenance_line(), flush=True)
    rows, rl2_rates = [], {}
    for robot in args.robots:
        spec = am.load_robot(robot)
        for backend in args.backends:
            if backend not in spec.models:
                continue
            rng = np.random.default_rng(0)
            actions = rng.uniform(-1, 1, (args.steps, spec.action_dim)).astype(np.float32)
            env_sps = env_rate(robot, backend, args.steps, actions, args.repeats)
            bare_sps = bare_rate(robot, backend, args.steps, actions, repeats=args.repeats)
            loop_sps = (bare_rate(robot, backend, args.steps, actions, python_loop=True, repeats=args.repeats)
                        if backend == "mujoco" else bare_sps)
            rows.append((robot, backend, spec.frame_skip, env_sps, bare_sps, loop_sps))
            for n in args.rl2_envs:
                rl2_rates[robot, backend, n] = rl2_rate(robot, backend, args.steps, n, preset, args.repeats)
    print("| robot | backend | frame skip | env steps/s | bare mj_step(nstep) steps/s | overhead | "
          "bare loop of mj_step steps/s | overhead |")
    print("|---|---|---|---|---|---|---|---|")
    for robot, backend, skip, env_sps, bare_sps, loop_sps in rows:
        print(f"| {robot} | {backend} | {skip} | {env_sps:,.0f} | {bare_sps:,.0f} | {bare_sps / env_sps:.2f}x | "
              f"{loop_sps:,.0f} | {loop_sps / env_sps:.2f}x |")
    if args.rl2_envs:
        print_rl2_table(rows, args.rl2_envs, rl2_rates, args.rl2_preset)


if __name__ == "__main__":
    main()
