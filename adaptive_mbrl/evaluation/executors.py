"""Where suite episodes run: in this process, in local worker processes, or as Ray tasks.

Every executor maps :func:`~adaptive_mbrl.evaluation.episode.run_job` over jobs and yields results as
they finish (in any order; the runner sorts them). Jobs carry their own seeds and run with one torch
thread, so the numbers are the same for every executor and worker count.

- ``local`` (default): ``workers = 1`` runs in this process; more uses a
  :class:`concurrent.futures.ProcessPoolExecutor` (``spawn``, so no inherited torch/MuJoCo state).
- ``ray``: one Ray task per episode (``num_cpus=1``) on the cluster at ``address`` (``None`` starts or
  joins a local instance; ``"auto"`` joins the running cluster). Needs ``pip install "adaptive_mbrl[ray]"``.
  Ray schedules the tasks; this module only submits them and collects results.
"""
from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any, Iterable, Iterator, Protocol

from adaptive_mbrl.evaluation.episode import run_job
from adaptive_mbrl.evaluation.suite import EpisodeJob

EXECUTORS = ("local", "ray")


class Executor(Protocol):
    """Runs suite episodes; ``run`` yields one result dict per job as each finishes."""

    def run(self, jobs: Iterable[EpisodeJob]) -> Iterator[dict[str, Any]]: ...


def _worker_init() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")


class LocalExecutor:
    """``workers`` local processes (1 = run in this process).

    At most ``2 * workers`` jobs are in flight, so a results file written as they arrive stays close to
    the work actually done when the suite is interrupted.
    """

    def __init__(self, workers: int = 1, device: str | None = None) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.workers, self.device = workers, device

    def run(self, jobs: Iterable[EpisodeJob]) -> Iterator[dict[str, Any]]:
        jobs = list(jobs)
        if self.workers == 1:
            for job in jobs:
                yield run_job(job, self.device)
            return
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(self.workers, mp_context=context, initializer=_worker_init) as pool:
            pending, queue = set(), iter(jobs)
            while True:
                for job in queue:
                    pending.add(pool.submit(run_job, job, self.device))
                    if len(pending) >= 2 * self.workers:
                        break
                if not pending:
                    return
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()


class RayExecutor:
    """One Ray task per episode on the cluster at ``address``.

    Args:
        address: Ray cluster address (``None``: start or join a local instance; ``"auto"``: the running one).
        num_cpus: CPUs for a local instance started here (ignored when joining a cluster).
    """

    def __init__(self, address: str | None = None, num_cpus: int | None = None, device: str | None = None) -> None:
        try:
            import ray
        except ImportError:
            raise ImportError('the ray executor needs Ray: pip install "adaptive_mbrl[ray]"') from None
        self.ray, self.device = ray, device
        if not ray.is_initialized():
            options: dict[str, Any] = {"address": address, "ignore_reinit_error": True, "include_dashboard": False,
                                       "logging_level": "ERROR"}
            if address is None and num_cpus is not None:
                options["num_cpus"] = num_cpus
            ray.init(**options)
        self.remote_job = ray.remote(num_cpus=1)(run_job)

    def run(self, jobs: Iterable[EpisodeJob]) -> Iterator[dict[str, Any]]:
        pending = [self.remote_job.remote(job, self.device) for job in jobs]
        while pending:
            done, pending = self.ray.wait(pending, num_returns=1)
            for ref in done:
                yield self.ray.get(ref)


def make_executor(kind: str = "local", workers: int = 1, address: str | None = None,
                  device: str | None = None) -> Executor:
    """``local`` with ``workers`` processes, or ``ray`` (at ``address``; a local instance started here
    gets ``workers`` CPUs)."""
    if kind == "local":
        return LocalExecutor(workers, device)
    if kind == "ray":
        return RayExecutor(address, num_cpus=workers, device=device)
    raise ValueError(f"unknown executor {kind!r}; allowed: {', '.join(EXECUTORS)}")
