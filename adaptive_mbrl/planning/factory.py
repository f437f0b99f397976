"""Build a planner from its config."""
from __future__ import annotations

import torch

from adaptive_mbrl.planning.base import Planner
from adaptive_mbrl.planning.cem import CEM
from adaptive_mbrl.planning.config import PlannerConfig
from adaptive_mbrl.planning.icem import ICEM
from adaptive_mbrl.planning.mppi import MPPI
from adaptive_mbrl.planning.random_shooting import RandomShooting

PLANNERS: dict[str, type[Planner]] = {"random_shooting": RandomShooting, "cem": CEM, "mppi": MPPI, "icem": ICEM}


def make_planner(config: PlannerConfig, action_dim: int, device: torch.device | str | None = None,
                 seed: int | None = None, dtype: torch.dtype = torch.float32) -> Planner:
    """The planner named by ``config.kind`` for actions of size ``action_dim`` in ``[-1, 1]``."""
    return PLANNERS[config.kind](config, action_dim, device=device, seed=seed, dtype=dtype)
