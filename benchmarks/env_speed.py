"""Environment speed: control steps per second per robot and backend, and the overhead of the
gymnasium environment against a bare physics loop with the same frame skip.

    python benchmarks/env_speed.py [--steps 20000] [--backends mujoco pybullet]

MuJoCo baseline: ``data.ctrl[:] = a; mujoco.mj_step(model, data, nstep=frame_skip)`` on the same
compiled model (the fastest bare loop). PyBullet baseline: ``setJointMotorControlArray`` + frame_skip
``stepSimulation`` calls on the same simulator. Overhead = bare steps/s / env steps/s (target <= 1.3x on MuJoCo).
"""
from __future__ import annotations

import argparse
import time

import mujoco
import numpy as np

import adaptive_mbrl as am


def _time(fn, steps: int, repeats: int = 3) -> float:
    """Best steps/s of ``fn(i)`` over ``repeats`` runs of ``steps`` calls."""
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(steps):
            fn(i)
        best = max(best, steps / (time.perf_counter() - start))
    return best


def env_rate(robot: str, backend: str, steps: int, actions: np.ndarray) -> float:
    env = am.make(robot, backend=backend, seed=0)
    env.reset()

    def step(i: int) -> None:
        _, _, terminated, truncated, _ = env.step(actions[i])
        if terminated or truncated:
            env.reset()

    rate = _time(step, steps)
    env.close()
    return rate


def bare_rate(robot: str, backend: str, steps: int, actions: np.ndarray) -> float:
    env = am.make(robot, backend=backend, seed=0)
    env.reset()
    sim = env.unwrapped.sim
    if backend == "mujoco":
        model, data, skip = sim.model, sim.data, sim.frame_skip
        initial = (data.qpos.copy(), data.qvel.copy())

        def step(i: int) -> None:
            data.ctrl[:] = actions[i]
            mujoco.mj_step(model, data, nstep=skip)
            if i % env.unwrapped.episode_steps == 0:  # keep the state in a comparable regime
                data.qpos[:], data.qvel[:] = initial
    else:
        def step(i: int) -> None:
            sim.step(actions[i])
    rate = _time(step, steps)
    env.close()
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20000, help="control steps per timing run")
    parser.add_argument("--backends", nargs="+", default=["mujoco", "pybullet"], choices=["mujoco", "pybullet"])
    args = parser.parse_args()
    rows = []
    for robot in am.list_robots():
        spec = am.load_robot(robot)
        for backend in args.backends:
            if backend not in spec.models:
                continue
            rng = np.random.default_rng(0)
            actions = rng.uniform(-1, 1, (args.steps, spec.action_dim)).astype(np.float32)
            env_sps = env_rate(robot, backend, args.steps, actions)
            bare_sps = bare_rate(robot, backend, args.steps, actions)
            rows.append((robot, backend, spec.frame_skip, env_sps, bare_sps, bare_sps / env_sps))
    print(f"| robot | backend | frame skip | env steps/s | bare loop steps/s | overhead |")
    print(f"|---|---|---|---|---|---|")
    for robot, backend, skip, env_sps, bare_sps, overhead in rows:
        print(f"| {robot} | {backend} | {skip} | {env_sps:,.0f} | {bare_sps:,.0f} | {overhead:.2f}x |")


if __name__ == "__main__":
    main()
