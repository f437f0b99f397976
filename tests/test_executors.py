"""Executors: the same suite gives the same numbers in-process, in worker processes and on Ray."""
import pytest
import yaml

from adaptive_mbrl.evaluation import LocalExecutor, expand_jobs, load_suite, make_executor


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
