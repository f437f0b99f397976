"""``adaptive-mbrl``: train adaptive controllers, run them, and evaluate them under dynamics shifts.

    adaptive-mbrl list                                   # robots, scenarios, controllers, suites, benchmarks
    adaptive-mbrl eval --suite quickstart                # the shipped controllers on held-out damage (minutes)
    adaptive-mbrl train --controller grbal --robot half_cheetah --scenario crippled_joint_train
    adaptive-mbrl run --checkpoint shipped:half_cheetah/grbal --scenario joint_break_midepisode --video out.mp4
    adaptive-mbrl bench control_rate -- --steps 40       # a script of benchmarks/ (prints a table)
    adaptive-mbrl demo                                   # train on the cart-pole (1 min), MB vs MB+DE on a fault

Shipped checkpoints are addressed as ``shipped:<robot>/<name>`` wherever a checkpoint path is accepted.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from adaptive_mbrl.envs.scenarios import scenario_slug


# how a robot's actions act on its joints, by the robot file's actuation.mode
ACTUATION_TEXT = {"torque": "torques / forces", "pd_target": "PD joint targets"}


def _cmd_list(args: argparse.Namespace) -> int:
    import adaptive_mbrl as am
    from adaptive_mbrl.envs.scenarios import load_scenarios

    if args.what in ("robots", "all"):
        print("robots:")
        for name in am.list_robots():
            print(f"  {name:14s} {robot_line(am.load_robot(name))}")
    if args.what in ("scenarios", "all"):
        for name in am.list_robots():
            print(f"scenarios of {name}:")
            for scenario in load_scenarios(name).values():
                tag = f"[{scenario.split}]" if scenario.split != "any" else ""
                print(f"  {scenario.name:32s} {tag:8s} {scenario.description}")
    if args.what in ("controllers", "all"):
        _list_controllers()
    if args.what in ("suites", "all"):
        from adaptive_mbrl.evaluation import list_suites, load_suite
        print("suites (adaptive-mbrl eval --suite NAME):")
        for name in list_suites():
            print(f"  {name:14s} {load_suite(name).description}")
    if args.what in ("benchmarks", "all"):
        print("benchmarks (adaptive-mbrl bench NAME -- ARGS):")
        for name in list_benchmarks():
            print(f"  {name}")
    return 0


def robot_line(spec) -> str:
    """One robot's listing: backends, description and (from ``actuation.mode``) what its actions are."""
    actuation = ACTUATION_TEXT[spec.actuation.mode]
    return f"backends: {', '.join(spec.models):17s} actions: {actuation:17s} {spec.description}"


def _list_controllers() -> None:
    """The shipped presets by group, then the shipped checkpoints."""
    from adaptive_mbrl.presets import list_presets, load_preset

    groups = [("", "controllers (model-based; adaptive-mbrl train --controller NAME):"),
              ("baselines", "baselines (model-free meta-RL; adaptive-mbrl train --controller NAME):"),
              ("reference", "reference (reference-size settings no code path uses; --controller reference/NAME):")]
    for group, heading in groups:
        names = list_presets(group)
        if names:
            print(heading)
            width = max(14, *map(len, names))
            for name in names:
                print(f"  {name:{width}s} {load_preset(name).description}")
    shipped = shipped_checkpoints()
    if shipped:
        print("shipped checkpoints (use as --checkpoint shipped:<robot>/<name>):")
        for name in shipped:
            print(f"  shipped:{name}")


def shipped_checkpoints() -> list[str]:
    """``<robot>/<name>`` of every checkpoint under ``controllers/checkpoints/``."""
    from adaptive_mbrl.paths import shipped_checkpoints as shipped
    return shipped()


def _checkpoint_path(spec: str) -> str:
    """A ``--checkpoint`` value: ``shipped:<robot>/<name>`` or a path."""
    from adaptive_mbrl.paths import existing_checkpoint
    return str(existing_checkpoint(spec))


# training.<key> settings that `train` also takes as flags of their own (--iterations, ...)
TRAINING_FLAGS = ("iterations", "random_steps", "steps_per_iteration", "parallel_envs")


def _cmd_train(args: argparse.Namespace) -> int:
    from adaptive_mbrl.devices import set_threads
    from adaptive_mbrl.storage.runs import RunSettings
    from adaptive_mbrl.trainer import load_training_preset, train

    flags = [f"training.{key}={getattr(args, key)}" for key in TRAINING_FLAGS[1:] if getattr(args, key) is not None]
    preset = load_training_preset(args.controller, args.iterations, flags + args.overrides)
    settings = RunSettings(args.robot, args.scenario, args.backend, args.seed, args.device)  # checks the seed
    set_threads(args.threads)
    out = Path(args.out or f"runs/{preset.name}_{args.robot}_{scenario_slug(args.scenario)}_s{args.seed}")
    start = time.perf_counter()
    checkpoint = train(preset, settings, out, resume=args.resume, overwrite=args.overwrite,
                       progress=None if not args.quiet else False)
    print(f"trained {preset.name} on {args.robot}/{args.scenario} in {time.perf_counter() - start:.0f} s: {checkpoint}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from adaptive_mbrl.evaluation import load_controller, run_episode
    from adaptive_mbrl.storage.checkpoint import load_checkpoint

    if args.video:  # before anything imports mujoco: it picks an offscreen GL backend on headless machines
        from adaptive_mbrl.rendering import record_episode
    checkpoint = _checkpoint_path(args.checkpoint)
    controller = TimedController(load_controller(checkpoint, args.controller, device=args.device, seed=args.seed,
                                                 backend=args.backend, overrides=args.overrides))
    robot = load_checkpoint(checkpoint)["robot"]
    returns = []
    for episode in range(args.episodes):
        if args.video:
            video = _episode_video_path(Path(args.video), episode, args.episodes)
            total, _ = record_episode(controller, robot, args.scenario, video, seed=args.seed + episode,
                                      max_steps=args.steps, backend=args.backend, print_every=args.print_every)
            print(f"wrote {video}")
        else:
            total = run_episode(controller, robot, args.scenario, args.seed + episode, args.backend,
                                args.print_every, episode_steps=args.steps).total
        returns.append(total)
        print(f"episode {episode}: return {total:.2f}")
    name = getattr(getattr(controller.inner, "preset", None), "name", type(controller.inner).__name__)
    print(f"{name} on {robot}/{args.scenario}: mean return {np.mean(returns):.2f} over {len(returns)} episode(s); "
          f"control rate {controller.rate_hz():.1f} Hz (act + observe, measured over {controller.steps} steps)")
    return 0


class TimedController:
    """Wraps a controller (``reset / act / observe``) and measures the wall-clock of ``act`` + ``observe``.

    Attributes:
        inner: the wrapped controller.
        steps: control steps timed (calls of ``act``).
        seconds: wall-clock spent in ``act`` and ``observe``, s.
    """

    def __init__(self, inner) -> None:
        self.inner, self.steps, self.seconds = inner, 0, 0.0

    def reset(self) -> None:
        self.inner.reset()

    def act(self, obs: np.ndarray) -> np.ndarray:
        """The inner controller's action ``[action_dim]`` for ``obs`` ``[obs_dim]``, timed."""
        start = time.perf_counter()
        action = self.inner.act(obs)
        self.seconds += time.perf_counter() - start
        self.steps += 1
        return action

    def observe(self, obs: np.ndarray, action: np.ndarray, next_obs: np.ndarray) -> None:
        start = time.perf_counter()
        self.inner.observe(obs, action, next_obs)
        self.seconds += time.perf_counter() - start

    def rate_hz(self) -> float:
        """Control steps per second of controller time (nan before the first step)."""
        return self.steps / self.seconds if self.seconds > 0 else float("nan")


def _episode_video_path(path: Path, episode: int, episodes: int) -> Path:
    """``out.mp4`` for one episode, ``out_ep<i>.mp4`` for several."""
    return path if episodes == 1 else path.with_name(f"{path.stem}_ep{episode}{path.suffix}")


def _cmd_eval(args: argparse.Namespace) -> int:
    from adaptive_mbrl.evaluation import expand_jobs, load_suite, make_executor, run_suite

    suite = load_suite(args.suite, overrides=args.overrides)
    for skipped in expand_jobs(suite)[1]:  # optional controllers without a checkpoint: a note, not an error
        print(f"note: {skipped}")
    out = Path(args.out or f"runs/suite_{suite.name}")
    executor = make_executor(args.executor, args.workers, args.ray_address, args.device)
    start = time.perf_counter()
    run_suite(suite, out, executor, resume=not args.fresh_error, progress=None if not args.quiet else False)
    print((out / "summary.md").read_text())
    print(f"suite {suite.name} in {time.perf_counter() - start:.0f} s; results, tables and plots in {out}/ "
          "(summary.md, summary.csv, episodes.csv, returns.png, damage_*.png)")
    return 0


def list_benchmarks() -> list[str]:
    """Names of the scripts in ``benchmarks/`` (a source checkout's; empty where it is absent, e.g. an
    installed wheel). ``_``-prefixed files are shared helpers, not benchmarks."""
    from adaptive_mbrl.paths import benchmarks_dir
    try:
        return sorted(p.stem for p in benchmarks_dir().glob("*.py") if not p.stem.startswith("_"))
    except FileNotFoundError:
        return []


def _cmd_bench(args: argparse.Namespace) -> int:
    """Run ``benchmarks/<name>.py`` as ``python benchmarks/<name>.py ARGS`` would (its own process, its
    folder first on ``sys.path``); returns the script's exit status."""
    import subprocess
    from adaptive_mbrl.paths import benchmarks_dir

    try:
        folder = benchmarks_dir()
    except FileNotFoundError as err:
        raise FileNotFoundError(f"the benchmark scripts ship with the source checkout only, not inside the "
                                f"installed package: {err}; clone the repository and run adaptive-mbrl bench "
                                "from an editable install (pip install -e .), or python benchmarks/<name>.py "
                                "there") from None
    names = list_benchmarks()
    if args.name not in names:
        raise ValueError(f"unknown benchmark {args.name!r}; allowed: {', '.join(names) or '(none found)'} "
                         f"(scripts in {folder})")
    argv = args.args[1:] if args.args[:1] == ["--"] else args.args
    source_root = str(Path(__file__).resolve().parent.parent)  # the script imports this very package
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [source_root, os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, str(folder / f"{args.name}.py"), *argv], env=env).returncode


def _cmd_demo(args: argparse.Namespace) -> int:
    """Train the quickstart preset on the cart-pole, then run MB and MB+DE under a mid-episode motor fault."""
    from adaptive_mbrl.control import AdaptiveController
    from adaptive_mbrl.evaluation import run_episode
    from adaptive_mbrl.presets import load_preset, with_overrides
    from adaptive_mbrl.storage.runs import RunSettings
    from adaptive_mbrl.training.train_model import train_model

    out = Path(args.out)
    trained = with_overrides(load_preset("quickstart"), args.overrides)
    print(f"training the quickstart model on cartpole (nominal) in {out} ...")
    start = time.perf_counter()
    checkpoint = train_model(trained, RunSettings("cartpole", "nominal", seed=args.seed), out,
                             resume=True)  # a fresh folder starts; a killed demo continues
    print(f"trained in {time.perf_counter() - start:.0f} s")
    print("scenario motor_fault_midepisode: the cart motor drops to 50% force at step 100")
    for adapter in ("none", "finetune"):
        preset = with_overrides(trained, [f"adapter.kind={adapter}"])
        preset.name = {"none": "MB", "finetune": "MB+DE"}[adapter]
        controller = AdaptiveController.from_checkpoint(checkpoint, preset=preset, seed=args.seed)
        totals = []
        for i in range(args.episodes):  # a line per episode: progress also when stdout is not a terminal
            t0 = time.perf_counter()
            totals.append(run_episode(controller, "cartpole", "motor_fault_midepisode", args.seed + i).total)
            print(f"  {preset.name} episode {i + 1}/{args.episodes}: return {totals[-1]:.2f} "
                  f"({time.perf_counter() - t0:.1f} s)", flush=True)
        print(f"{preset.name:6s} return {np.mean(totals):8.2f} +- {np.std(totals):.2f} over {len(totals)} episodes")
    return 0


def at_least(lo: int, note: str = ""):
    """An argparse ``type``: an integer >= ``lo``; anything else exits 2 naming the option and the range."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < lo:
            raise argparse.ArgumentTypeError(f"must be an integer >= {lo}{note}, got {text!r}")
        return value
    parse.__name__ = f"integer >= {lo}"
    return parse


RUN_SET_HELP = ("change the controller's adapter or planner settings, e.g. adapter.context_gate=true "
                "planner.samples=60 (values parsed as YAML; the network is the checkpoint's)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="adaptive-mbrl", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="robots, scenarios, controller presets, suites and benchmarks")
    p.add_argument("what", nargs="?", default="all",
                   choices=["all", "robots", "scenarios", "controllers", "suites", "benchmarks"],
                   help="what to list (default: all)")
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser("train", help="train a dynamics model (MB / MB+DE), meta-train one (GrBAL / ReBAL), or "
                       "train a baseline (PEARL / RL²)")
    p.add_argument("--controller", required=True, help="preset name (adaptive-mbrl list controllers) or .yaml path")
    p.add_argument("--robot", required=True, help="robot name (adaptive-mbrl list robots)")
    p.add_argument("--scenario", default="nominal", help="training scenario, e.g. crippled_joint_train")
    p.add_argument("--backend", default="mujoco", choices=["mujoco", "pybullet"], help="simulator (default: mujoco)")
    p.add_argument("--seed", type=int, default=0, help="seed of the run (data collection, networks)")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    p.add_argument("--threads", type=at_least(1), default=None,
                   help="torch intra-op threads for the whole run (default: torch's, i.e. OMP_NUM_THREADS or "
                   "every core); a run resumed with another count continues correctly but not bit-identically")
    p.add_argument("--out", help="run folder (default runs/<preset>_<robot>_<scenario>_s<seed>)")
    runs = p.add_mutually_exclusive_group()
    runs.add_argument("--resume", action="store_true", help="continue the run in --out from its last finished round")
    runs.add_argument("--overwrite", action="store_true",
                      help="delete the run already in --out and train a new one (without --resume or --overwrite, "
                      "an --out folder that holds a run is refused)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    for key in TRAINING_FLAGS:
        p.add_argument(f"--{key.replace('_', '-')}", type=int, help=f"override the preset's training.{key}")
    p.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="SECTION.KEY=VALUE",
                   help="override any preset setting, e.g. meta.updates_per_iteration=500 model.hidden_sizes=[64,64]")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("eval", help="run an evaluation suite; writes tables (CSV, JSON, Markdown) and plots",
                       description="Run every episode of a suite (robots x scenarios x controllers x seeds x "
                       "episodes) and write a run folder: suite.yaml, episodes.jsonl/.csv/.json, summary.md/.csv/"
                       ".json, returns.png and damage_<robot>_<scenario>.png. Running the same command again "
                       "resumes: finished episodes are not re-run. Results do not depend on --workers or "
                       "--executor.")
    p.add_argument("--suite", required=True, help="suite name (adaptive-mbrl list suites) or a suite .yaml path")
    p.add_argument("--out", help="run folder (default runs/suite_<name>)")
    p.add_argument("--workers", type=at_least(1), default=min(2, os.cpu_count() or 1),
                   help="local worker processes (default: up to 2); with --executor ray, the CPUs of a local "
                   "Ray instance started here")
    p.add_argument("--executor", default="local", choices=["local", "ray"],
                   help="local processes, or Ray tasks (pip install 'adaptive_mbrl[ray]')")
    p.add_argument("--ray-address", default=None, help="Ray cluster address (default: start a local instance; "
                   "'auto': the running cluster)")
    p.add_argument("--device", default=None, help="torch device of the controllers (default: where they were saved)")
    p.add_argument("--no-resume", dest="fresh_error", action="store_true",
                   help="refuse to reuse results already in --out (default: resume them)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="SECTION.KEY=VALUE",
                   help="for every model-based controller of the suite: " + RUN_SET_HELP + "; a run folder "
                   "holding results of other settings is refused (use another --out)")
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("bench", help="run a benchmark script of benchmarks/ (each prints a table; source "
                       "checkout only)")
    p.add_argument("name", help="benchmark name (adaptive-mbrl list benchmarks)")
    p.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the script, after --")
    p.set_defaults(func=_cmd_bench)

    p = sub.add_parser("run", help="run a trained controller on a scenario, with per-step output (or a video)")
    p.add_argument("--checkpoint", required=True,
                   help="model.pt written by adaptive-mbrl train, or shipped:<robot>/<name> (adaptive-mbrl list)")
    p.add_argument("--controller", help="preset whose adapter/planner to use (default: the trained one)")
    p.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="SECTION.KEY=VALUE", help=RUN_SET_HELP)
    p.add_argument("--scenario", default="nominal", help="scenario of the robot (adaptive-mbrl list scenarios)")
    p.add_argument("--backend", default="mujoco", choices=["mujoco", "pybullet"], help="simulator (default: mujoco)")
    p.add_argument("--episodes", type=at_least(1), default=1, help="episodes to run (default: 1)")
    p.add_argument("--seed", type=at_least(0), default=0,
                   help="environment seed of the first episode (episode i: seed + i) and the planner's seed")
    p.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda (default: where it was saved)")
    p.add_argument("--print-every", type=at_least(0), default=50,
                   help="print a progress line every N steps (0 = off)")
    p.add_argument("--steps", type=at_least(1, " (omit it for the robot's episode length)"), default=None,
                   help="episode length in control steps (default: the robot's)")
    p.add_argument("--video", help="render each episode to this .mp4 (or .gif) file (MuJoCo offscreen; headless "
                   "machines: MUJOCO_GL=egl; pip install 'adaptive_mbrl[video]')")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("demo", help="the quick start: train on the cart-pole, compare MB and MB+DE under a fault")
    p.add_argument("--out", default="runs/quickstart_cartpole",
                   help="run folder of the trained model (reused when it is there)")
    p.add_argument("--episodes", type=at_least(1), default=3, help="episodes per method (default: 3)")
    p.add_argument("--seed", type=at_least(0), default=0, help="training and environment seed (default: 0)")
    p.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="SECTION.KEY=VALUE",
                   help="change the quickstart preset, e.g. a smaller budget: training.iterations=1")
    p.set_defaults(func=_cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, FileExistsError, ImportError) as err:
        print(f"adaptive-mbrl: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
