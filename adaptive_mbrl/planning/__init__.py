"""Batched sampling planners over action sequences in [-1, 1], and trajectory scoring."""
from adaptive_mbrl.planning.base import Planner, ScoreFn, sanitize_returns, select_elites, shift
from adaptive_mbrl.planning.cem import CEM
from adaptive_mbrl.planning.config import PlannerConfig
from adaptive_mbrl.planning.factory import PLANNERS, make_planner
from adaptive_mbrl.planning.icem import ICEM
from adaptive_mbrl.planning.mppi import MPPI
from adaptive_mbrl.planning.noise import colored_noise
from adaptive_mbrl.planning.random_shooting import RandomShooting
from adaptive_mbrl.planning.rollout import ParticleStep, TrajectoryScorer

__all__ = ["Planner", "ScoreFn", "PlannerConfig", "make_planner", "PLANNERS", "RandomShooting", "CEM", "MPPI",
           "ICEM", "TrajectoryScorer", "ParticleStep", "colored_noise", "select_elites", "shift", "sanitize_returns"]
