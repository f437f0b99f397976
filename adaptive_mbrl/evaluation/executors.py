"""Where suite episodes run: in this process, in local worker processes, or as Ray tasks.

Every executor maps :func:`~adaptive_mbrl.evaluation.episode.run_job` over jobs and yields results as
they finish (in any order; the runner sorts them). Jobs carry their own seeds and run with one torch
thread, so the numbers are the same for every executor and worker count.

- ``local`` (default): ``workers = 1`` runs in this process; more uses a
  :class:`concurrent.futures.ProcessPoolExecutor` (``spawn``, so no inherited torch/MuJoCo state).
  No worker outlives the run: on SIGTERM / SIGINT (Ctrl-C) or any error the parent terminates its
  workers before it exits, workers ignore SIGINT (the parent decides), and a worker whose parent is gone
  (``kill -9``) exits by itself within :data:`ORPHAN_POLL_S` seconds (a watcher thread polls its parent
  pid), after which multiprocessing's resource tracker exits too.
- ``ray``: one Ray task per episode (``num_cpus=1``) on the cluster at ``address`` (``None`` starts or
  joins a local instance; ``"auto"`` joins the running cluster). Needs ``pip install "adaptive_mbrl[ray]"``.
  Ray schedules the tasks; this module only submits them and collects results.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any, Iterable, Iterator, Protocol

from adaptive_mbrl.evaluation.episode import run_job
from adaptive_mbrl.evaluation.suite import EpisodeJob

EXECUTORS = ("local", "ray")
ORPHAN_POLL_S = 0.5
"""How often a worker checks that its parent is still alive (s)."""


class Executor(Protocol):
    """Runs suite episodes; ``run`` yields one result dict per job as each finishes."""

    def run(self, jobs: Iterable[EpisodeJob]) -> Iterator[dict[str, Any]]: ...


def _worker_init(parent_pid: int) -> None:
    """Set up a local worker process: one OpenMP thread, SIGINT left to the parent, exit when orphaned."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the parent stops us
    threading.Thread(target=_exit_when_orphaned, args=(parent_pid,), name="orphan-watch", daemon=True).start()


def _exit_when_orphaned(parent_pid: int, poll_s: float = ORPHAN_POLL_S) -> None:
    """Exit this process as soon as its parent is no longer ``parent_pid`` (it died; we were re-parented)."""
    while os.getppid() == parent_pid:
        time.sleep(poll_s)
    os._exit(1)


STOP_POLL_S = 0.2
"""How often the parent checks for a stop signal while it waits for results (s)."""


class _StopSignals:
    """Inside ``with``: SIGTERM and SIGINT (Ctrl-C) are recorded instead of acting at once, and the
    collection loop raises for them (:meth:`raise_if_stopped`) from its own code, so the workers are always
    stopped. (A handler that raised would lose the signal when it lands in a finaliser, where Python
    prints and ignores exceptions, and the run would go on.) Outside the main thread signals cannot be
    handled; nothing changes there."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "_StopSignals":
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                if signal.getsignal(signum) is not signal.SIG_IGN:  # e.g. SIGINT of a background job stays off
                    self._previous[signum] = signal.signal(signum, self._record)
        return self

    def __exit__(self, *exc: Any) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _record(self, signum: int, frame: Any) -> None:
        if self.signum is None:
            self.signum = signum

    def raise_if_stopped(self) -> None:
        """Ctrl-C as KeyboardInterrupt, SIGTERM as ``SystemExit(143)``, once either has arrived."""
        if self.signum == signal.SIGINT:
            raise KeyboardInterrupt
        if self.signum is not None:
            raise SystemExit(128 + self.signum)


def _stop_workers(pool: ProcessPoolExecutor, timeout_s: float = 5.0) -> None:
    """Terminate the pool's worker processes now (their episodes are abandoned) and reap them.

    ``ProcessPoolExecutor`` (before Python 3.14's ``terminate_workers``) has no public way to do this:
    its ``_processes`` map is the only handle on the workers.
    """
    processes = list((getattr(pool, "_processes", None) or {}).values())
    for process in processes:
        if process.is_alive():
            process.terminate()
    pool.shutdown(wait=False, cancel_futures=True)
    deadline = time.monotonic() + timeout_s
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join(1.0)


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
        with _StopSignals() as stop:
            pool = ProcessPoolExecutor(self.workers, mp_context=context, initializer=_worker_init,
                                       initargs=(os.getpid(),))
            try:
                yield from self._submit_and_collect(pool, jobs, stop)
            except BaseException:  # SIGTERM (as SystemExit), Ctrl-C, an episode's error, the consumer closing
                _stop_workers(pool)
                raise
            pool.shutdown(wait=True)

    def _submit_and_collect(self, pool: ProcessPoolExecutor, jobs: list[EpisodeJob],
                            stop: _StopSignals) -> Iterator[dict[str, Any]]:
        """Keep at most ``2 * workers`` jobs in flight; yield results as they finish; raise on a stop signal."""
        pending, queue = set(), iter(jobs)
        while True:
            stop.raise_if_stopped()
            for job in queue:
                pending.add(pool.submit(run_job, job, self.device))
                if len(pending) >= 2 * self.workers:
                    break
            if not pending:
                return
            done, pending = wait(pending, timeout=STOP_POLL_S, return_when=FIRST_COMPLETED)
            for future in done:
                stop.raise_if_stopped()
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
