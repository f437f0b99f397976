"""Environment speed: control steps per second per robot and backend, and the overhead of the
gymnasium environment against a bare physics loop with the same frame skip.

    python benchmarks/env_speed.py [--steps 20000] [--backends mujoco pybullet] [--robots cartpole ant]

MuJoCo baselines on the same compiled model: ``data.ctrl[:] = a; mujoco.mj_step(model, data, nstep=frame_skip)``
(one call, the fastest bare loop) and ``frame_skip`` Python calls of ``mujoco.mj_step(model, data)`` (the
plain loop a user writes). PyBullet baseline: the simulator's own step (torques or PD targets + frame_skip
``stepSimulation`` calls), without the gymnasium layer. Overhead = bare steps/s / env steps/s
(target <= 1.3x on MuJoCo).
"""
from __future__ import annotations

import argparse
import time

import mujoco
import numpy as np

import adaptive_mbrl as am
from adaptive_mbrl.provenance import provenance_line


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20000, help="control steps per timing run")
    parser.add_argument("--backends", nargs="+", default=["mujoco", "pybullet"], choices=["mujoco", "pybullet"])
    parser.add_argument("--robots", nargs="+", default=am.list_robots(), choices=am.list_robots())
    parser.add_argument("--repeats", type=int, default=3, help="timing runs per rate (the best is kept)")
    args = parser.parse_args()
    if args.steps < 1 or args.repeats < 1:
        parser.error("--steps and --repeats must be at least 1")
    print(provenance_line(), flush=True)
    rows = []
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
    print("| robot | backend | frame skip | env steps/s | bare mj_step(nstep) steps/s | overhead | "
          "bare loop of mj_step steps/s | overhead |")
    print("|---|---|---|---|---|---|---|---|")
    for robot, backend, skip, env_sps, bare_sps, loop_sps in rows:
        print(f"| {robot} | {backend} | {skip} | {env_sps:,.0f} | {bare_sps:,.0f} | {bare_sps / env_sps:.2f}x | "
              f"{loop_sps:,.0f} | {loop_sps / env_sps:.2f}x |")


if __name__ == "__main__":
    main()
