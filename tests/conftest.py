"""Shared test set-up: the slow learning-check tier runs after every fast test."""
import os

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run tests marked ``slow`` (learning checks with small budgets) last, as their own tier."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is not None)
