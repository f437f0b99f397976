"""Run a suite: expand its episodes, skip the finished ones, run the rest on an executor, write the report.

::

    from adaptive_mbrl.evaluation import load_suite, make_executor, run_suite
    rows = run_suite(load_suite("quickstart"), "runs/suite_quickstart", make_executor("local", workers=2))
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from adaptive_mbrl.evaluation.executors import Executor, LocalExecutor
from adaptive_mbrl.evaluation.progress import ProgressLog
from adaptive_mbrl.evaluation.report import write_report
from adaptive_mbrl.evaluation.results import RunFolder, checkpoint_digests, content_key, read_episodes
from adaptive_mbrl.evaluation.suite import SuiteConfig, expand_jobs


def run_suite(suite: SuiteConfig, out: str | Path, executor: Executor | None = None, resume: bool = True,
              progress: bool | None = None, reuse: Sequence[str | Path] = ()) -> list[dict[str, Any]]:
    """Run every episode of ``suite`` not yet finished in ``out``, then write the report there.

    Args:
        suite: the suite (e.g. :func:`~adaptive_mbrl.evaluation.suite.load_suite`).
        out: run folder (created). Finished episodes are appended to ``episodes.jsonl`` as they arrive.
        executor: where episodes run (default: this process).
        resume: reuse the finished episodes of an earlier run of the same suite in ``out`` whose
            checkpoints still have the same content (episodes are keyed by the checkpoint file's SHA-256).
        progress: print a line per finished episode with an ETA (default and True: yes, also when stdout
            is not a terminal; False: silent). See :mod:`adaptive_mbrl.evaluation.progress`.
        reuse: earlier suite run folders whose finished episodes this suite also has (same key: robot,
            scenario, label, training seed, episode, run-time settings, warm-up, and the checkpoint's
            content) are copied into ``out`` instead of being played again, e.g. the episodes of one
            training seed when a study adds another. The key does not cover the preset files' contents,
            so pass only folders run with the same presets (a benchmark that keys its folders by them
            does).

    Returns:
        the summary rows (see :func:`~adaptive_mbrl.evaluation.report.summarize`).
    """
    jobs, skipped = expand_jobs(suite)
    folder = RunFolder(out, suite, resume=resume)
    finished = folder.finished()
    digests = checkpoint_digests(jobs)
    keys = {job: content_key(job.key, digests[job.checkpoint]) for job in jobs}
    _take_over(folder, finished, set(keys.values()), reuse)
    todo = [job for job in jobs if keys[job] not in finished]
    executor = executor or LocalExecutor(1)
    log = ProgressLog(len(jobs), already=len(jobs) - len(todo)) if progress is not False else None
    results_in = executor.run(todo)
    try:
        for result in results_in:
            sha256 = digests[result["checkpoint"]]
            result = {**result, "key": content_key(result["key"], sha256), "checkpoint_sha256": sha256}
            folder.append(result)
            finished[result["key"]] = result
            if log is not None:
                log.episode(result)
    finally:  # an exception raised here (Ctrl-C while a result is written) closes the executor's generator
        # at once, so it stops its workers, rather than the interpreter's exit waiting for their queue
        close = getattr(results_in, "close", None)
        if close is not None:
            close()
    wanted = set(keys.values())
    results = [r for key, r in finished.items() if key in wanted]
    labels = [entry.label for block in suite.robots for entry in block.controllers]
    return write_report(folder.path, results, suite.name, suite.baseline, skipped, labels)


def _take_over(folder: RunFolder, finished: dict[str, dict[str, Any]], wanted: set[str],
               sources: Sequence[str | Path]) -> None:
    """Append to ``folder`` (and ``finished``) the episodes of the ``sources`` folders that it wants and
    lacks."""
    for source in sources:
        if Path(source).resolve() == folder.path.resolve():
            continue
        for key, result in read_episodes(source).items():
            if key in wanted and key not in finished:
                folder.append(result)
                finished[key] = result
