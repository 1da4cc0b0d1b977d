"""Shared fixtures: deterministic seeds and small MinAtar specs/networks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

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
