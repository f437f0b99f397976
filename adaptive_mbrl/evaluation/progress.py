"""One progress line per finished suite episode, with an estimate of the time left.

::

    [12/40] half_cheetah/crippled_joint_test MB seed 0 ep 1: return 812.3 (2.1 s) ETA 1 min 10 s

Printed whether or not the output is a terminal (logs of a batch job show the progress too). The ETA is
the wall-clock time per episode finished in this run so far (so it accounts for the workers running in
parallel) times the episodes left.
"""
from __future__ import annotations

import sys
import time
from typing import Any, Callable, TextIO

from adaptive_mbrl.storage.runs import format_duration  # shared with the training rounds' lines

__all__ = ["ProgressLog", "format_duration"]


class ProgressLog:
    """Prints a line per finished episode to ``stream`` (default: stdout, flushed every line).

    Args:
        total: episodes in the suite.
        already: episodes finished before this run (resumed); counted as done, not in the ETA.
        clock: seconds (monotonic), replaceable in tests.
    """

    def __init__(self, total: int, already: int = 0, stream: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.total, self.already, self.done = total, already, 0
        self.stream, self.clock = stream, clock
        self.start = clock()

    def episode(self, result: dict[str, Any]) -> str:
        """Record one finished episode (a result of :func:`~adaptive_mbrl.evaluation.episode.run_job`);
        prints and returns its line."""
        self.done += 1
        finished = self.already + self.done
        left = self.total - finished
        eta = (self.clock() - self.start) / self.done * left
        line = (f"[{finished}/{self.total}] {result['robot']}/{result['scenario']} {result['label']} "
                f"seed {result['seed']} ep {result['episode']}: return {result['return']:.1f} "
                f"({result['wall_s']:.1f} s) ETA {format_duration(eta)}")
        stream = self.stream or sys.stdout
        print(line, file=stream, flush=True)
        return line
