"""Evaluation: the paper's protocol (epsilon 0.05, no-op starts), mean score with a 95% CI."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch

from poldist.envs import EnvSpec, make_vector_env

# obs (B, C, H, W) uint8 tensor -> outputs (B, n_actions); the greedy action is their argmax.
Policy = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class EvalResult:
    """Episode returns and their summary."""

    mean: float
    ci_low: float
    ci_high: float
    episodes: int
    returns: list[float]
    lengths: list[int]

    def to_dict(self) -> dict:
        """JSON-friendly form."""
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.mean:.2f} [{self.ci_low:.2f}, {self.ci_high:.2f}] ({self.episodes} episodes)"


def bootstrap_ci(
    values: np.ndarray, confidence: float = 0.95, n_boot: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean of ``values`` (shape ``(n,)``)."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2:
        m = float(values.mean()) if len(values) else float("nan")
        return m, m
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (n_boot, len(values)))].mean(axis=1)
    alpha = (1 - confidence) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def epsilon_greedy(outputs: torch.Tensor, epsilon: float, rng: np.random.Generator) -> np.ndarray:
    """Actions ``(B,)``: argmax of ``outputs`` ``(B, A)``, uniform with probability ``epsilon``."""
    actions = outputs.argmax(dim=1).cpu().numpy()
    explore = rng.random(len(actions)) < epsilon
    if explore.any():
        actions[explore] = rng.integers(0, outputs.shape[1], int(explore.sum()))
    return actions


@torch.no_grad()
def evaluate(
    policy: Policy,
    spec: EnvSpec,
    episodes: int = 30,
    *,
    epsilon: float = 0.05,
    seed: int = 10_000,
    num_envs: int = 8,
    max_total_steps: int | None = None,
    device: str | torch.device = "cpu",
) -> EvalResult:
    """Play ``episodes`` episodes with an epsilon-greedy ``policy``; unclipped returns.

    Episodes are split evenly over ``num_envs`` envs, each env stopping once its share
    is done, so short episodes are not over-represented. ``max_total_steps`` (all envs
    together) stops early; unfinished episodes are then dropped.

    ``device``: where ``policy``'s network lives; each vector step's observations ``(n, C, H, W)``
    go there as one uint8 batch (the network scales them) and the actions come back to the host.
    """
    n = max(1, min(num_envs, episodes))
    quota = np.array([episodes // n + (i < episodes % n) for i in range(n)])
    env = make_vector_env(spec, n, seed)
    rng = np.random.default_rng(seed)
    returns: list[float] = []
    lengths: list[int] = []
    done_count = np.zeros(n, int)
    ep_ret = np.zeros(n)
    ep_len = np.zeros(n, int)
    steps = 0
    try:
        obs, _ = env.reset(seed=seed)
        while (done_count < quota).any():
            if max_total_steps is not None and steps >= max_total_steps:
                break
            out = policy(torch.as_tensor(obs, device=device))
            obs, reward, terminated, truncated, _ = env.step(epsilon_greedy(out, epsilon, rng))
            steps += n
            ep_ret += reward
            ep_len += 1
            for i in np.flatnonzero(terminated | truncated):
                if done_count[i] < quota[i]:
                    returns.append(float(ep_ret[i]))
                    lengths.append(int(ep_len[i]))
                    done_count[i] += 1
                ep_ret[i] = 0.0
                ep_len[i] = 0
    finally:
        env.close()
    arr = np.array(returns)
    lo, hi = bootstrap_ci(arr, seed=seed)
    mean = float(arr.mean()) if len(arr) else float("nan")
    return EvalResult(mean, lo, hi, len(arr), returns, lengths)


def percent_of_teacher(student_score: float, teacher_score: float, baseline: float = 0.0) -> float:
    """The paper's metric: ``100 * student / teacher`` (raw scores, as in Rusu et al.).

    ``baseline`` (e.g. a random policy's score) is subtracted from both first:
    ``100 * (student - baseline) / (teacher - baseline)``, defined where scores can be negative.
    """
    gap = teacher_score - baseline
    return 100.0 * (student_score - baseline) / gap if gap else float("nan")


@dataclass
class PercentInterval:
    """Percent of teacher: the point estimate and a bootstrap interval (percent)."""

    mean: float
    ci_low: float
    ci_high: float

    def __str__(self) -> str:
        return f"{self.mean:.1f}% [{self.ci_low:.1f}, {self.ci_high:.1f}]"


def _bootstrap_means(values: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``(n_boot,)`` means of ``values`` ``(n,)`` resampled with replacement."""
    return values[rng.integers(0, len(values), (n_boot, len(values)))].mean(axis=1)


def hierarchical_bootstrap(
    student_returns: list[list[float]] | list[np.ndarray],
    reference_returns: list[float] | np.ndarray,
    *,
    baseline: float = 0.0,
    n_boot: int = 4000,
    rng: np.random.Generator | None = None,
) -> tuple[float, np.ndarray]:
    """Percent of teacher on one game, and its bootstrap replicates.

    The student's score is the mean over seeds of each seed's mean episode return; the
    teacher's is the mean of its reference episodes. A replicate resamples seeds with
    replacement, then each drawn seed's episodes with replacement (a two-stage bootstrap,
    so seed-to-seed and episode-to-episode variation both count), and independently the
    teacher's reference episodes (its own uncertainty).

    Args:
        student_returns: one array of episode returns per seed, ``S`` arrays of ``(n_s,)``.
        reference_returns: the teacher's reference episodes, ``(N,)``.
        baseline: score subtracted from both (a random policy's; 0 for the paper's plain percent).

    Returns:
        ``(point, replicates)``: the percent of teacher, and ``(n_boot,)`` bootstrap replicates.
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    seeds = [np.asarray(r, dtype=np.float64) for r in student_returns]
    if not seeds or any(len(r) == 0 for r in seeds) or len(reference_returns) == 0:
        raise ValueError("need at least one seed, one episode per seed and one reference episode")
    ref = np.asarray(reference_returns, dtype=np.float64)
    point = percent_of_teacher(float(np.mean([r.mean() for r in seeds])), float(ref.mean()), baseline)
    drawn = rng.integers(0, len(seeds), (n_boot, len(seeds)))  # (B, S): which seed fills each slot
    # each slot of each replicate gets its own episode resample of the seed drawn into it
    per_seed = np.stack([_bootstrap_means(r, n_boot * len(seeds), rng) for r in seeds])  # (S, B*S)
    slot_means = per_seed[drawn.ravel(), np.arange(n_boot * len(seeds))].reshape(n_boot, len(seeds))
    teacher = _bootstrap_means(ref, n_boot, rng)
    with np.errstate(divide="ignore", invalid="ignore"):
        reps = 100.0 * (slot_means.mean(axis=1) - baseline) / (teacher - baseline)
    return point, reps


def percent_intervals(
    students: dict[str, list[list[float]]],
    references: dict[str, list[float]],
    *,
    baselines: dict[str, float] | None = None,
    confidence: float = 0.95,
    n_boot: int = 4000,
    seed: int = 0,
) -> tuple[dict[str, PercentInterval], PercentInterval]:
    """Percent of teacher per game and its geometric mean over games, with percentile intervals
    of the two-stage bootstrap of :func:`hierarchical_bootstrap` (games resampled independently,
    the geometric mean taken within each replicate).

    Args:
        students: ``game -> one list of episode returns per seed``.
        references: ``game -> the teacher's reference episode returns``.
        baselines: ``game -> score subtracted from both`` (default 0: the paper's percent).

    Returns:
        ``(per game, geometric mean)``.
    """
    rng = np.random.default_rng(seed)
    alpha = (1 - confidence) / 2
    per_game: dict[str, PercentInterval] = {}
    points, reps = [], []
    for game in students:
        point, r = hierarchical_bootstrap(
            students[game],
            references[game],
            baseline=(baselines or {}).get(game, 0.0),
            n_boot=n_boot,
            rng=rng,
        )
        per_game[game] = PercentInterval(
            point, float(np.quantile(r, alpha)), float(np.quantile(r, 1 - alpha))
        )
        points.append(point)
        reps.append(r)
    logs = np.log(np.clip(np.stack(reps), 1e-12, None)).mean(axis=0)
    geo = np.exp(logs)
    overall = PercentInterval(
        geometric_mean(points), float(np.quantile(geo, alpha)), float(np.quantile(geo, 1 - alpha))
    )
    return per_game, overall


def geometric_mean(values: list[float]) -> float:
    """Geometric mean of positive values (the paper's aggregate of percent-of-teacher)."""
    arr = np.asarray(values, dtype=np.float64)
    return float(np.exp(np.log(np.clip(arr, 1e-12, None)).mean()))
