"""Run a suite: expand its episodes, skip the finished ones, run the rest on an executor, write the report.

::

    from adaptive_mbrl.evaluation import load_suite, make_executor, run_suite
    rows = run_suite(load_suite("quickstart"), "runs/suite_quickstart", make_executor("local", workers=2))
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from adaptive_mbrl.evaluation.executors import Executor, LocalExecutor
from adaptive_mbrl.evaluation.report import write_report
from adaptive_mbrl.evaluation.results import RunFolder
from adaptive_mbrl.evaluation.suite import SuiteConfig, expand_jobs


def run_suite(suite: SuiteConfig, out: str | Path, executor: Executor | None = None, resume: bool = True,
              progress: bool | None = None) -> list[dict[str, Any]]:
    """Run every episode of ``suite`` not yet finished in ``out``, then write the report there.

    Args:
        suite: the suite (e.g. :func:`~adaptive_mbrl.evaluation.suite.load_suite`).
        out: run folder (created). Finished episodes are appended to ``episodes.jsonl`` as they arrive.
        executor: where episodes run (default: this process).
        resume: reuse the finished episodes of an earlier run of the same suite in ``out``.
        progress: progress bar (default: when attached to a terminal).

    Returns:
        the summary rows (see :func:`~adaptive_mbrl.evaluation.report.summarize`).
    """
    jobs, skipped = expand_jobs(suite)
    folder = RunFolder(out, suite, resume=resume)
    finished = folder.finished()
    wanted = {job.key for job in jobs}
    todo = [job for job in jobs if job.key not in finished]
    executor = executor or LocalExecutor(1)
    bar = tqdm(total=len(jobs), initial=len(jobs) - len(todo), desc=f"suite {suite.name}", unit="episode",
               disable=None if progress is None else not progress)
    try:
        for result in executor.run(todo):
            folder.append(result)
            finished[result["key"]] = result
            bar.update(1)
            bar.set_postfix_str(f"{result['label']} {result['scenario']}: {result['return']:.1f}")
    finally:
        bar.close()
    results = [r for key, r in finished.items() if key in wanted]
    labels = [entry.label for block in suite.robots for entry in block.controllers]
    return write_report(folder.path, results, suite.name, suite.baseline, skipped, labels)
