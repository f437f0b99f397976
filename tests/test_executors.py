"""Executors: the same suite gives the same numbers in-process, in worker processes and on Ray; no worker
outlives its parent."""
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from adaptive_mbrl.evaluation import LocalExecutor, expand_jobs, load_suite, make_executor

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def jobs(tmp_path_factory, tiny_cartpole_checkpoint):
    path = tmp_path_factory.mktemp("suite") / "suite.yaml"
    path.write_text(yaml.safe_dump({"name": "t", "seeds": [0, 1], "episodes": 2, "episode_steps": 25, "robots": [
        {"robot": "cartpole", "scenarios": ["weak_motor_test"],
         "controllers": [{"label": "MB", "checkpoint": str(tiny_cartpole_checkpoint)}]}]}))
    return expand_jobs(load_suite(path))[0]


def _by_key(results) -> dict:
    return {r["key"]: (r["return"], r["rewards"]) for r in results}


@pytest.fixture(scope="module")
def in_process(jobs) -> dict:
    return _by_key(LocalExecutor(1).run(jobs))


def test_in_process_results_are_finite_and_differ_between_tasks(in_process: dict, jobs) -> None:
    assert set(in_process) == {j.key for j in jobs}
    returns = [r for r, _ in in_process.values()]
    assert all(len(rw) == 25 for _, rw in in_process.values())
    assert len(set(returns)) > 1  # different seeds / tasks give different episodes


def test_worker_processes_give_identical_results(in_process: dict, jobs) -> None:
    assert _by_key(LocalExecutor(2).run(jobs)) == in_process


def test_ray_gives_identical_results(in_process: dict, jobs) -> None:
    ray = pytest.importorskip("ray")
    try:
        executor = make_executor("ray", workers=2)
        assert _by_key(executor.run(jobs)) == in_process
    finally:
        ray.shutdown()


def test_bad_executor_settings_name_the_allowed_values() -> None:
    with pytest.raises(ValueError, match="allowed: local, ray"):
        make_executor("slurm")
    with pytest.raises(ValueError, match="workers must be >= 1"):
        LocalExecutor(0)


RUN_SUITE = """
import sys
from adaptive_mbrl.evaluation import LocalExecutor, load_suite, run_suite
run_suite(load_suite(sys.argv[1]), sys.argv[2], LocalExecutor(2), progress=False)
"""


def _descendants(pid: int) -> list[int]:
    """Pids of the processes below ``pid`` (from /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited (its parent has not reaped it yet)


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds worker processes through /proc")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL], ids=["SIGTERM", "SIGINT", "SIGKILL"])
def test_no_worker_outlives_a_stopped_or_killed_parent(tmp_path: Path, tiny_cartpole_checkpoint,
                                                      sig: signal.Signals) -> None:
    """Workers (and multiprocessing's resource tracker) used to finish their episode and then sit idle
    after ``kill -9`` or SIGTERM of ``eval --workers 2``."""
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump({"name": "t", "seeds": [0, 1, 2, 3], "episodes": 25, "episode_steps": 200,
                                     "robots": [{"robot": "cartpole", "scenarios": ["weak_motor_test"], "controllers": [
                                         {"label": "MB", "checkpoint": str(tiny_cartpole_checkpoint)}]}]}))
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    # SIGINT at its default in the parent, as in a terminal: a test run started in the background (`cmd &`
    # without job control) inherits SIGINT ignored, and Python then installs no KeyboardInterrupt handler
    parent = subprocess.Popen([sys.executable, "-c", RUN_SUITE, str(suite), str(out)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 120
        while not (out / "episodes.jsonl").exists():  # the workers are running episodes
            assert parent.poll() is None, parent.stderr.read().decode()
            assert time.monotonic() < deadline, "no episode finished in 120 s"
            time.sleep(0.2)
        workers = _descendants(parent.pid)
        assert len(workers) >= 2, workers  # two workers (and the resource tracker)
        parent.send_signal(sig)
        try:  # stopping includes up to 5 s of joining the workers, then the interpreter's exit
            parent.wait(timeout=60)
        except subprocess.TimeoutExpired:
            parent.kill()
            raise AssertionError(f"the parent did not exit within 60 s of {sig.name}; its stderr:\n"
                                 + parent.communicate()[1].decode()[-3000:]) from None
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [pid for pid in workers if _alive(pid)], "worker processes outlived their parent"
        if sig != signal.SIGKILL:
            assert parent.returncode != 0
    finally:
        if parent.poll() is None:
            parent.kill()
        for pid in _descendants(parent.pid) + [pid for pid in locals().get("workers", []) if _alive(pid)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("sig, raised", [(signal.SIGINT, KeyboardInterrupt), (signal.SIGTERM, SystemExit)])
def test_stop_signals_are_recorded_then_raised_by_the_collection_loop(sig, raised) -> None:
    """A raising handler can lose the signal in a finaliser (Python prints and ignores exceptions there):
    the signal is recorded, and the collection loop raises it from its own code."""
    from adaptive_mbrl.evaluation.executors import _StopSignals

    # the defaults of a foreground process (a test run started in the background inherits SIGINT ignored,
    # which _StopSignals rightly leaves alone)
    default = signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL
    outside = signal.signal(sig, default)
    try:
        with _StopSignals() as stop:
            os.kill(os.getpid(), sig)
            time.sleep(0.05)  # the handler has run: nothing was raised here
            assert stop.signum == sig
            with pytest.raises(raised) as info:
                stop.raise_if_stopped()
        assert signal.getsignal(sig) is default
    finally:
        signal.signal(sig, outside)
    if raised is SystemExit:
        assert info.value.code == 128 + signal.SIGTERM


def test_stop_signals_leave_an_ignored_sigint_ignored() -> None:
    from adaptive_mbrl.evaluation.executors import _StopSignals

    outside = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with _StopSignals() as stop:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            assert stop.signum is None
            stop.raise_if_stopped()  # nothing to raise
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, outside)
