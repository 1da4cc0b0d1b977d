"""Evaluation: bootstrap CI, epsilon-greedy, the evaluate loop, the paper's aggregates."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from poldist.envs import EnvSpec
from poldist.evaluation import (
    bootstrap_ci,
    epsilon_greedy,
    evaluate,
    geometric_mean,
    hierarchical_bootstrap,
    percent_intervals,
    percent_of_teacher,
)


def _zeros_policy(n_actions: int):
    def policy(obs: torch.Tensor) -> torch.Tensor:
        assert obs.dtype == torch.uint8
        return torch.zeros(len(obs), n_actions)

    return policy


# --- bootstrap_ci --------------------------------------------------------------------------------


def test_bootstrap_ci_brackets_the_mean() -> None:
    values = np.random.default_rng(0).normal(10.0, 2.0, 50)
    lo, hi = bootstrap_ci(values)
    assert lo < values.mean() < hi
    # roughly mean +- 1.96 * sd / sqrt(n) ~ +- 0.55
    assert 0.2 < hi - lo < 1.5


def test_bootstrap_ci_is_deterministic_for_a_seed() -> None:
    values = np.arange(20, dtype=float) ** 1.5
    assert bootstrap_ci(values, seed=3) == bootstrap_ci(values, seed=3)
    assert bootstrap_ci(values, seed=3) != bootstrap_ci(values, seed=4)


def test_bootstrap_ci_narrows_with_lower_confidence() -> None:
    values = np.random.default_rng(1).exponential(5.0, 40)
    lo95, hi95 = bootstrap_ci(values, confidence=0.95)
    lo50, hi50 = bootstrap_ci(values, confidence=0.5)
    assert lo95 < lo50 < hi50 < hi95


def test_bootstrap_ci_degenerate_inputs() -> None:
    assert bootstrap_ci(np.array([4.0])) == (4.0, 4.0)
    assert bootstrap_ci(np.array([3.0, 3.0, 3.0])) == (3.0, 3.0)
    lo, hi = bootstrap_ci(np.array([]))
    assert math.isnan(lo) and math.isnan(hi)


# --- epsilon_greedy ------------------------------------------------------------------------------


def test_epsilon_zero_is_argmax() -> None:
    outputs = torch.randn(200, 5, generator=torch.Generator().manual_seed(0))
    actions = epsilon_greedy(outputs, 0.0, np.random.default_rng(0))
    assert isinstance(actions, np.ndarray)
    assert actions.shape == (200,)
    np.testing.assert_array_equal(actions, outputs.argmax(dim=1).numpy())


def test_epsilon_one_is_spread_over_actions() -> None:
    outputs = torch.zeros(4000, 4)
    outputs[:, 2] = 1.0  # greedy would always pick 2
    actions = epsilon_greedy(outputs, 1.0, np.random.default_rng(0))
    counts = np.bincount(actions, minlength=4)
    assert counts.sum() == 4000
    assert (counts > 800).all() and (counts < 1200).all()


def test_small_epsilon_mostly_greedy() -> None:
    outputs = torch.zeros(10_000, 4)
    outputs[:, 3] = 1.0
    actions = epsilon_greedy(outputs, 0.2, np.random.default_rng(0))
    # greedy with prob 0.8 + 0.2 / 4 = 0.85
    assert abs((actions == 3).mean() - 0.85) < 0.02
    assert set(np.unique(actions)) == {0, 1, 2, 3}


# --- evaluate ------------------------------------------------------------------------------------


def test_evaluate_uniform_policy_on_minatar_breakout(breakout_spec: EnvSpec) -> None:
    result = evaluate(_zeros_policy(3), breakout_spec, episodes=5, num_envs=2, seed=0)
    assert result.episodes == 5
    assert len(result.returns) == 5
    assert len(result.lengths) == 5
    assert all(length > 0 for length in result.lengths)
    assert math.isfinite(result.mean)
    assert result.mean == pytest.approx(np.mean(result.returns))
    assert result.ci_low <= result.mean <= result.ci_high
    assert all(r >= 0 for r in result.returns)  # Breakout rewards are +1 per brick
    assert "5 episodes" in str(result)
    assert result.to_dict()["episodes"] == 5


@pytest.mark.parametrize("episodes, num_envs", [(1, 8), (3, 8), (7, 3)])
def test_evaluate_returns_the_requested_episode_count(
    breakout_spec: EnvSpec, episodes: int, num_envs: int
) -> None:
    result = evaluate(_zeros_policy(3), breakout_spec, episodes=episodes, num_envs=num_envs, seed=1)
    assert result.episodes == episodes
    assert len(result.returns) == episodes


def test_evaluate_is_deterministic_for_a_seed(breakout_spec: EnvSpec) -> None:
    a = evaluate(_zeros_policy(3), breakout_spec, episodes=4, num_envs=2, epsilon=0.5, seed=3)
    b = evaluate(_zeros_policy(3), breakout_spec, episodes=4, num_envs=2, epsilon=0.5, seed=3)
    assert a.returns == b.returns
    assert a.lengths == b.lengths


def test_evaluate_step_budget_drops_unfinished_episodes(breakout_spec: EnvSpec) -> None:
    result = evaluate(_zeros_policy(3), breakout_spec, episodes=5, num_envs=2, max_total_steps=2)
    assert result.episodes == 0
    assert result.returns == []
    assert math.isnan(result.mean)


# --- the paper's aggregates ----------------------------------------------------------------------


def test_percent_of_teacher() -> None:
    assert percent_of_teacher(5.0, 10.0) == pytest.approx(50.0)
    assert percent_of_teacher(13.0, 10.0) == pytest.approx(130.0)
    assert percent_of_teacher(0.0, 4.0) == 0.0
    assert math.isnan(percent_of_teacher(3.0, 0.0))


def test_geometric_mean() -> None:
    assert geometric_mean([50.0, 200.0]) == pytest.approx(100.0)
    assert geometric_mean([2.0, 8.0, 4.0]) == pytest.approx(4.0)
    assert geometric_mean([108.3]) == pytest.approx(108.3)
    # below the arithmetic mean for unequal values
    assert geometric_mean([10.0, 1000.0]) == pytest.approx(100.0)


# --- percent of teacher with a two-stage (seeds, then episodes) bootstrap -------------------------


def test_percent_of_teacher_with_a_random_baseline():
    assert percent_of_teacher(5.0, 10.0) == 50.0
    # Pong-like scores: random -20.7, teacher 19, student 10: (10 + 20.7) / (19 + 20.7)
    assert abs(percent_of_teacher(10.0, 19.0, -20.7) - 100 * 30.7 / 39.7) < 1e-12
    assert np.isnan(percent_of_teacher(1.0, 2.0, 2.0))


def test_hierarchical_bootstrap_spans_seed_to_seed_variation():
    # two seeds without episode noise (2 and 4), a constant teacher of 2: replicates are
    # 100% (both slots seed 1, p 1/4), 150% (p 1/2) or 200% (p 1/4); the point is 150%
    point, reps = hierarchical_bootstrap([[2, 2], [4, 4]], [2, 2, 2, 2], n_boot=4000)
    assert point == 150.0
    assert set(np.unique(reps)) == {100.0, 150.0, 200.0}
    assert abs((reps == 150.0).mean() - 0.5) < 0.03
    per_game, overall = percent_intervals({"g": [[2, 2], [4, 4]]}, {"g": [2, 2, 2, 2]})
    assert (per_game["g"].mean, per_game["g"].ci_low, per_game["g"].ci_high) == (150.0, 100.0, 200.0)
    assert (overall.mean, overall.ci_low, overall.ci_high) == pytest.approx((150.0, 100.0, 200.0))


def test_hierarchical_bootstrap_counts_episode_noise_within_a_seed():
    # one seed: seed resampling alone would give a zero-width interval; its episodes 0 and 2
    # resample to means 0 (1/4), 1 (1/2), 2 (1/4) against a constant teacher of 1
    point, reps = hierarchical_bootstrap([[0, 2]], [1, 1, 1], n_boot=4000)
    assert point == 100.0
    assert set(np.unique(reps)) == {0.0, 100.0, 200.0}
    assert abs((reps == 100.0).mean() - 0.5) < 0.03


def test_hierarchical_bootstrap_includes_the_reference_scores_uncertainty():
    # a noiseless student of 3 against reference episodes 1 and 3: teacher means 1, 2, 3
    # (p 1/4, 1/2, 1/4) give 300%, 150%, 100%; the point is 3 / 2 = 150%
    per_game, _ = percent_intervals({"g": [[3, 3, 3]]}, {"g": [1, 3]})
    assert (per_game["g"].mean, per_game["g"].ci_low, per_game["g"].ci_high) == (150.0, 100.0, 300.0)


def test_percent_intervals_geometric_mean_over_games():
    # noiseless games at 50% and 200%: geometric mean 100%, interval a single point
    per_game, overall = percent_intervals({"a": [[1, 1]], "b": [[4], [4]]}, {"a": [2, 2], "b": [2]})
    assert per_game["a"].mean == 50.0 and per_game["b"].mean == 200.0
    assert abs(overall.mean - 100.0) < 1e-9
    assert abs(overall.ci_low - 100.0) < 1e-9 and abs(overall.ci_high - 100.0) < 1e-9
    # a baseline changes a game's percent: (1 - 0) / (2 - 0) -> (1 + 1) / (2 + 1)
    per_game, _ = percent_intervals({"a": [[1]]}, {"a": [2]}, baselines={"a": -1.0})
    assert abs(per_game["a"].mean - 200 / 3) < 1e-9


def test_hierarchical_bootstrap_refuses_empty_input():
    with pytest.raises(ValueError):
        hierarchical_bootstrap([], [1.0])
    with pytest.raises(ValueError):
        hierarchical_bootstrap([[1.0], []], [1.0])
