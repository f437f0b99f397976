"""Dynamics-shift evaluation suites: configs, episode jobs, executors (local processes, Ray), reports."""
from adaptive_mbrl.evaluation.episode import EpisodeRecord, load_controller, run_episode, run_job
from adaptive_mbrl.evaluation.executors import EXECUTORS, LocalExecutor, RayExecutor, make_executor
from adaptive_mbrl.evaluation.report import recovery_steps, summarize, write_report
from adaptive_mbrl.evaluation.runner import run_suite
from adaptive_mbrl.evaluation.suite import (EpisodeJob, SuiteConfig, expand_jobs, list_suites, load_suite,
                                            resolve_checkpoint)

__all__ = ["EXECUTORS", "EpisodeJob", "EpisodeRecord", "LocalExecutor", "RayExecutor", "SuiteConfig", "expand_jobs",
           "list_suites", "load_controller", "load_suite", "make_executor", "recovery_steps", "resolve_checkpoint",
           "run_episode", "run_job", "run_suite", "summarize", "write_report"]
