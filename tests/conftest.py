"""Shared fixtures: deterministic seeds and small MinAtar specs/networks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from poldist.distillation import DistillConfig
from poldist.envs import EnvSpec, make_env_spec
from poldist.networks import QNetwork, minatar_dqn


@pytest.fixture(autouse=True)
def _seed_everything() -> None:
    torch.manual_seed(0)
    np.random.seed(0)


@pytest.fixture
def breakout_spec() -> EnvSpec:
    """MinAtar Breakout, minimal action set: (4, 10, 10) observations, 3 actions."""
    return make_env_spec("MinAtar/Breakout-v1")


@pytest.fixture
def small_net() -> QNetwork:
    """A MinAtar-sized DQN network (about 130k parameters) for Breakout."""
    return QNetwork(minatar_dqn(4, 3))


@pytest.fixture
def fast_distill_config():
    """A factory of short real-teacher distillation configs (keyword overrides)."""
    return _fast_distill_config


def _fast_distill_config(**overrides) -> DistillConfig:
    """3,000 updates of batch 128, no periodic evaluations or checkpoints, greedy agreement
    measured on 2,000 fresh teacher states at the end."""
    base = dict(
        updates=3_000,
        batch_size=128,
        lr=1e-3,
        transitions_per_update=4.0,
        learning_starts=2_000,
        memory_size=10_000,
        eval_interval=10**9,
        eval_episodes=1,
        final_eval_episodes=2,
        agreement_states=2_000,
        evaluate_teacher=False,
        checkpoint_interval=10**9,
    )
    base.update(overrides)
    return DistillConfig(**base)
