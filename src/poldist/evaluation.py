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


def percent_of_teacher(student_score: float, teacher_score: float) -> float:
    """The paper's metric: ``100 * student / teacher`` (raw scores, as in Rusu et al.)."""
    return 100.0 * student_score / teacher_score if teacher_score else float("nan")


def geometric_mean(values: list[float]) -> float:
    """Geometric mean of positive values (the paper's aggregate of percent-of-teacher)."""
    arr = np.asarray(values, dtype=np.float64)
    return float(np.exp(np.log(np.clip(arr, 1e-12, None)).mean()))
