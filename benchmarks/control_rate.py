"""Control rate of the full ``act`` + ``observe`` loop per planner, model size and adapter, idle and
with another core busy.

    python benchmarks/control_rate.py [--robot half_cheetah] [--steps 60] [--threads 1 2]
    python benchmarks/control_rate.py --preset mb_de --steps 10      # one configuration: a smoke run
    python benchmarks/control_rate.py --preset pets --steps 20 --threads 1 --busy 0   # PE-TS (PETS)
    python benchmarks/control_rate.py --preset pets --threads 1 --busy 0 --profile 20   # ... and where its time goes

For each configuration and torch thread count: control steps/s (act + observe, the environment step
excluded) on an idle machine and while ``--busy`` other processes spin a busy loop each (started for
that measurement, killed after), the ratio busy / idle (target: >= 0.8), the model evaluations per
step (rows through one member's network, counted at the first layer, not estimated: an ensemble's
particle rollouts count each particle once, an ensemble mean counts every member), the achieved GFLOP/s
of those evaluations (2 x one member's weights x evaluations per step x idle rate) and the machine's fp32
matmul peak measured here. The grid (MODELS x PLANNERS x ADAPTERS) is followed by the shipped PETS
presets (PRESETS: a probabilistic ensemble, without and with each adapter). Real time for half_cheetah / ant is
20 Hz (0.05 s control step). Models are untrained: cost does not depend on the weights. On a machine
shared with other work the numbers are indicative only.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import subprocess
import sys
import time
from typing import Iterator

import torch

import adaptive_mbrl as am
from adaptive_mbrl.adaptation.base import AdapterConfig
from adaptive_mbrl.control import AdaptiveController
from adaptive_mbrl.devices import DEFAULT_THREADS
from adaptive_mbrl.models.dynamics import DynamicsModel, ModelConfig
from adaptive_mbrl.planning import PlannerConfig
from adaptive_mbrl.presets import ControllerPreset, load_preset
from adaptive_mbrl.provenance import provenance_line

PLANNERS = {
    "RS 500x10 (paper)": PlannerConfig(kind="random_shooting", horizon=10, samples=500, iterations=1, elites=1),
    "{0.kind} {0.iterations}x{0.samples} H{0.horizon} (default `mb`)".format(load_preset("mb").planner):
        load_preset("mb").planner,
    # the larger run-time budgets of the planner study (benchmarks/adaptation.py --run-set)
    "icem 5x300 H15": dataclasses.replace(load_preset("mb").planner, samples=300, iterations=5, elites=30),
    "icem 5x600 H15": dataclasses.replace(load_preset("mb").planner, samples=600, iterations=5, elites=60),
    "CEM 5x200 H15": PlannerConfig(kind="cem", horizon=15, samples=200, iterations=5, elites=20),
    "MPPI 3x200 H15": PlannerConfig(kind="mppi", horizon=15, samples=200, iterations=3, elites=20),
}
MODELS = {"3x200 silu": ModelConfig(hidden_sizes=[200, 200, 200], activation="silu"),
          "3x512 relu": ModelConfig(hidden_sizes=[512, 512, 512], activation="relu")}
ADAPTERS = {"none (MB)": AdapterConfig(kind="none"),
            "finetune (MB+DE)": AdapterConfig(kind="finetune", steps=1, optimizer="adam")}
PRESETS = ("pets", "pets_de", "pets_grbal", "pets_rebal", "pets_gains", "pets_gains_de")  # measured after the grid, each with its own model, planner and adapter


def matmul_peak_gflops(threads: int, n: int = 1024, repeats: int = 10, trials: int = 5) -> float:
    """fp32 GFLOP/s of a square matmul on ``threads`` torch threads, best of ``trials``: the practical peak
    of this machine for that thread count (one short timing is too easily disturbed to be a peak)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a, b = torch.randn(n, n), torch.randn(n, n)
        a @ b
        best = float("inf")
        for _ in range(trials):
            start = time.perf_counter()
            for _ in range(repeats):
                a @ b
            best = min(best, time.perf_counter() - start)
    finally:
        torch.set_num_threads(previous)
    return 2 * n ** 3 * repeats / best / 1e9


@contextlib.contextmanager
def busy_cores(processes: int) -> Iterator[None]:
    """``processes`` other processes spinning a busy loop (each keeps one core busy) while inside."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(processes)]
    try:
        time.sleep(0.2 if processes else 0.0)  # let them get scheduled
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def measure(robot: str, model_cfg: ModelConfig, planner: PlannerConfig, adapter: AdapterConfig,
            steps: int, threads: int) -> tuple[float, float, float]:
    """(control steps/s, model evaluations per step, weights) for one configuration."""
    env = am.make(robot, seed=0)
    obs, _ = env.reset()
    model = DynamicsModel(obs.shape[0], env.action_space.shape[0], model_cfg)
    preset = ControllerPreset(name="bench", planner=planner, model=model_cfg, adapter=adapter)
    controller = AdaptiveController(model, preset, env.reward_fn, env.termination_fn, seed=0, threads=threads,
                                    upright_fn=getattr(env.unwrapped.objective, "uprightness", None))
    evaluations = [0]

    def count_rows(layer, inputs, output) -> None:  # rows through the first layer, per member
        evaluations[0] += output[..., 0].numel()
    for network in _networks(controller):  # the trained model and an adapter's fine-tuned copy
        network.layers[0].register_forward_hook(count_rows)
    controller.reset()
    elapsed = 0.0
    for t in range(steps + 5):
        start = time.perf_counter()
        action = controller.act(obs)
        next_obs, *_ = env.step(action)
        if t == 4:
            evaluations[0] = 0
        controller.observe(obs, action, next_obs)
        if t >= 5:
            elapsed += time.perf_counter() - start
        obs = next_obs
    weights = sum(p.numel() for n, p in model.named_parameters() if "weight" in n) / model.ensemble_size
    return steps / elapsed, evaluations[0] / steps, weights


def _networks(controller: AdaptiveController) -> list[DynamicsModel]:
    """The dynamics models a controller evaluates: its model and any copy its adapter holds."""
    found = {id(controller.model): controller.model}
    found.update({id(v): v for v in vars(controller.adapter).values() if isinstance(v, DynamicsModel)})
    return list(found.values())


Labels = tuple[str, str, str]
"""(model, planner, adapter): the first three cells of a table row."""


def configurations(preset: str | None) -> Iterator[tuple[Labels, ModelConfig, PlannerConfig, AdapterConfig]]:
    """(labels, model, planner, adapter): one preset's, or the grid of MODELS x PLANNERS x ADAPTERS, then
    the PRESETS."""
    if preset is not None:
        chosen = load_preset(preset)
        labels = (f"{chosen.name}: {_model_label(chosen.model)}", _planner_label(chosen.planner), chosen.adapter.kind)
        yield labels, chosen.model, chosen.planner, chosen.adapter
        return
    for model_name, model_cfg in MODELS.items():
        for planner_name, planner in PLANNERS.items():
            for adapter_name, adapter in ADAPTERS.items():
                yield (model_name, planner_name, adapter_name), model_cfg, planner, adapter
    for name in PRESETS:
        yield from configurations(name)


def _model_label(config: ModelConfig) -> str:
    """E.g. ``4x200 silu, PE x5`` (a probabilistic ensemble of 5)."""
    label = f"{len(config.hidden_sizes)}x{config.hidden_sizes[0]} {config.activation}"
    kind = "PE" if config.probabilistic else "ensemble"
    return label + (f", {kind} x{config.ensemble_size}" if config.probabilistic or config.ensemble_size > 1 else "")


def _planner_label(config: PlannerConfig) -> str:
    """E.g. ``icem 2x40 H15, 5 particles ts_inf`` or ``icem 3x40 H15, mean`` (an ensemble's mean prediction)."""
    label = f"{config.kind} {config.iterations}x{config.samples} H{config.horizon}"
    if config.particles > 1:
        return label + f", {config.particles} particles {config.propagation}"
    return label + (", mean" if config.propagation == "mean" else "")


def profile_steps(robot: str, model_cfg: ModelConfig, planner: PlannerConfig, adapter: AdapterConfig, steps: int,
                  top: int = 12) -> None:
    """Print where ``steps`` control steps (act + observe, 1 thread) spend their time, by torch operator:
    the ``top`` operators by self CPU time, their share of the profiled time and calls per step."""
    from torch.profiler import ProfilerActivity, profile

    env = am.make(robot, seed=0)
    obs, _ = env.reset()
    model = DynamicsModel(obs.shape[0], env.action_space.shape[0], model_cfg)
    preset = ControllerPreset(name="bench", planner=planner, model=model_cfg, adapter=adapter)
    controller = AdaptiveController(model, preset, env.reward_fn, env.termination_fn, seed=0, threads=1,
                                    upright_fn=getattr(env.unwrapped.objective, "uprightness", None))
    controller.reset()

    def step(obs):
        action = controller.act(obs)
        next_obs, *_ = env.step(action)
        controller.observe(obs, action, next_obs)
        return next_obs
    for _ in range(3):
        obs = step(obs)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            obs = step(obs)
    events = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
    total = sum(e.self_cpu_time_total for e in events)
    print(f"\nprofile of {steps} control steps (torch operators by self CPU time):\n")
    print("| operator | % of time | calls per step |\n|---|---:|---:|")
    for event in events[:top]:
        print(f"| {event.key} | {100 * event.self_cpu_time_total / total:.1f}% | {event.count / steps:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--robot", default="half_cheetah")
    parser.add_argument("--steps", type=int, default=60, help="timed control steps per measurement (small: smoke run)")
    parser.add_argument("--threads", type=int, nargs="+", default=sorted({DEFAULT_THREADS, torch.get_num_threads()}),
                        help="torch intra-op thread counts to compare (default: the controllers' default "
                        f"{DEFAULT_THREADS} and torch's {torch.get_num_threads()})")
    parser.add_argument("--busy", type=int, default=1,
                        help="busy-loop processes running during the 'busy' measurement (0: idle only)")
    parser.add_argument("--preset", help="measure only this controller preset's configuration (e.g. mb_de)")
    parser.add_argument("--profile", type=int, default=0, metavar="STEPS",
                        help="with --preset: then profile this many control steps by torch operator (0: off)")
    args = parser.parse_args()
    if args.profile and not args.preset:
        parser.error("--profile needs --preset (one configuration to profile)")
    if args.profile < 0:
        parser.error("--profile must be >= 0")
    print(provenance_line(), flush=True)
    peaks = {threads: matmul_peak_gflops(threads) for threads in args.threads}
    print(f"robot {args.robot}, torch {torch.__version__}, threads {args.threads}, {args.busy} busy process(es), "
          "fp32 matmul peak " + ", ".join(f"{peaks[t]:.0f} GFLOP/s on {t} thread(s)" for t in args.threads)
          + " (% of peak: against the row's thread count)\n")
    print("| model | planner | adapter | threads | idle Hz | busy Hz | busy / idle | model evals/step | GFLOP/s "
          "| % of peak |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for labels, model_cfg, planner, adapter in configurations(args.preset):
        for threads in args.threads:
            rate, evals, weights = measure(args.robot, model_cfg, planner, adapter, args.steps, threads)
            busy = float("nan")
            if args.busy:
                with busy_cores(args.busy):
                    busy = measure(args.robot, model_cfg, planner, adapter, args.steps, threads)[0]
            gflops = 2 * weights * evals * rate / 1e9
            print(f"| {' | '.join(labels)} | {threads} | {rate:.1f} | {busy:.1f} | {busy / rate:.2f} | {evals:,.0f} | "
                  f"{gflops:.1f} | {100 * gflops / peaks[threads]:.0f}% |", flush=True)
    if args.profile:
        _, model_cfg, planner, adapter = next(iter(configurations(args.preset)))
        profile_steps(args.robot, model_cfg, planner, adapter, args.profile)


if __name__ == "__main__":
    main()
