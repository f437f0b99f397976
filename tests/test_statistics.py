"""The bootstrap interval of a method's return relative to a baseline."""
import math

import numpy as np
import pytest

from adaptive_mbrl.evaluation.statistics import by_seed, ratio_interval


def _seeds(rng: np.random.Generator, mean: float, spread: float, seeds: int = 3, episodes: int = 8) -> dict:
    return {s: list(rng.normal(mean, spread, episodes)) for s in range(seeds)}


def test_a_clearly_better_method_gets_an_interval_around_its_true_ratio_above_one() -> None:
    rng = np.random.default_rng(1)
    low, high = ratio_interval(_seeds(rng, 200.0, 10.0), _seeds(rng, 100.0, 10.0))
    assert 1.7 < low < 2.0 < high < 2.3


def test_identical_methods_get_an_interval_that_contains_one() -> None:
    rng = np.random.default_rng(2)
    low, high = ratio_interval(_seeds(rng, 100.0, 40.0), _seeds(rng, 100.0, 40.0))
    assert low < 1.0 < high


def test_bimodal_returns_with_few_episodes_give_a_wide_interval_that_narrows_with_more() -> None:
    # falls (return ~30) or survivals (return ~800), half and half: the typical shape of ant returns
    def fall_or_survive(rng, episodes):
        return {s: list(rng.choice([30.0, 800.0], episodes)) for s in range(3)}
    rng = np.random.default_rng(3)
    few = ratio_interval(fall_or_survive(rng, 2), fall_or_survive(rng, 2))
    many = ratio_interval(fall_or_survive(rng, 40), fall_or_survive(rng, 40))
    assert few[1] - few[0] > 1.0  # 6 episodes of a coin flip cannot rank two methods
    assert many[1] - many[0] < 0.5 * (few[1] - few[0])


def test_the_interval_is_reproducible_and_ordered() -> None:
    rng = np.random.default_rng(4)
    a, b = _seeds(rng, 150.0, 50.0), _seeds(rng, 100.0, 50.0)
    first, second = ratio_interval(a, b, seed=7), ratio_interval(a, b, seed=7)
    assert first == second and first[0] <= first[1]


def test_no_shared_seed_or_a_non_positive_baseline_gives_nan() -> None:
    assert all(math.isnan(x) for x in ratio_interval({0: [1.0]}, {1: [1.0]}))
    assert all(math.isnan(x) for x in ratio_interval({0: [5.0, 6.0]}, {0: [-3.0, -4.0]}))
    assert all(math.isnan(x) for x in ratio_interval({0: [5.0]}, {0: [3.0]}))  # one episode each


def test_bad_settings_are_refused_with_their_names() -> None:
    with pytest.raises(ValueError, match="level"):
        ratio_interval({0: [1.0]}, {0: [1.0]}, level=1.5)
    with pytest.raises(ValueError, match="resamples"):
        ratio_interval({0: [1.0]}, {0: [1.0]}, resamples=0)


def test_by_seed_groups_episode_returns() -> None:
    results = [{"seed": 0, "return": 1.0}, {"seed": 1, "return": 2.0}, {"seed": 0, "return": 3.0}]
    assert by_seed(results) == {0: [1.0, 3.0], 1: [2.0]}


def test_pairing_by_task_removes_the_spread_that_the_tasks_cause() -> None:
    # episode i is task i for both methods; tasks differ 10x in difficulty, the method is always 1.2x
    tasks = {s: [50.0, 500.0, 100.0, 800.0, 20.0, 300.0] for s in range(3)}
    better = {s: [1.2 * r for r in rs] for s, rs in tasks.items()}
    paired = ratio_interval(better, tasks, paired=True)
    independent = ratio_interval(better, tasks)
    assert paired == pytest.approx((1.2, 1.2))
    assert independent[0] < 0.9 and independent[1] > 1.6


def test_by_seed_orders_returns_by_episode() -> None:
    results = [{"seed": 0, "episode": 1, "return": 2.0}, {"seed": 0, "episode": 0, "return": 1.0}]
    assert by_seed(results) == {0: [1.0, 2.0]}


def test_independent_seeds_compare_methods_whose_seed_numbers_differ() -> None:
    rng = np.random.default_rng(5)
    mine = {s: list(rng.normal(300.0, 20.0, 5)) for s in (0, 1, 2)}
    pearl = {7: list(rng.normal(100.0, 20.0, 5))}  # another family, one training seed of its own number
    assert all(math.isnan(x) for x in ratio_interval(mine, pearl))  # no shared seed
    low, high = ratio_interval(mine, pearl, independent=True)
    point = np.mean([r for s in mine.values() for r in s]) / np.mean(pearl[7])
    assert 2.0 < low < point < high < 4.5


def test_independent_seeds_carry_the_spread_between_training_seeds() -> None:
    # one good and one bad training seed: drawing seeds shows that the mean hangs on which seed is drawn,
    # which pooling all episodes under one seed hides
    rng = np.random.default_rng(6)
    mine = {0: list(rng.normal(300.0, 10.0, 10)), 1: list(rng.normal(100.0, 10.0, 10))}
    base = {0: list(rng.normal(100.0, 10.0, 20))}
    low, high = ratio_interval(mine, base, independent=True)
    pooled_low, pooled_high = ratio_interval({0: mine[0] + mine[1]}, base, independent=True)
    assert high - low > 2 * (pooled_high - pooled_low)
    assert low < 1.3 and high > 2.7


def test_paired_and_independent_are_refused_together() -> None:
    with pytest.raises(ValueError, match="paired and independent"):
        ratio_interval({0: [1.0, 2.0]}, {0: [1.0, 2.0]}, paired=True, independent=True)
