"""Env specs and vector envs: ids, shapes, dtypes, SAME_STEP autoreset."""

from __future__ import annotations

import json

import numpy as np
import pytest

from poldist.envs import EnvSpec, make_env_spec, make_vector_env
from poldist.errors import PoldistError

# MinAtar Breakout channels: paddle 0, ball 1, trail 2, brick 3
BALL, BRICK = 1, 3


def test_minatar_breakout_minimal_spec() -> None:
    spec = make_env_spec("MinAtar/Breakout-v1")
    assert spec.domain == "minatar"
    assert spec.obs_shape == (4, 10, 10)
    assert spec.n_actions == 3
    assert spec.obs_scale == 1.0
    assert spec.settings["sticky_action_prob"] == 0.1
    assert spec.settings["difficulty_ramping"] is True


def test_minatar_breakout_full_action_set() -> None:
    assert make_env_spec("MinAtar/Breakout-v0").n_actions == 6


def test_minatar_seaquest_v0_spec() -> None:
    spec = make_env_spec("MinAtar/Seaquest-v0")
    assert spec.obs_shape == (10, 10, 10)
    assert spec.n_actions == 6


def test_atari_breakout_spec() -> None:
    spec = make_env_spec("ALE/Breakout-v5")
    assert spec.domain == "atari"
    assert spec.obs_shape == (4, 84, 84)
    assert spec.n_actions == 4
    assert spec.obs_scale == pytest.approx(1 / 255)
    assert spec.settings["repeat_action_probability"] == 0.0
    assert spec.settings["game"] == "breakout"


def test_atari_full_action_space() -> None:
    assert make_env_spec("ALE/Breakout-v5", full_action_space=True).n_actions == 18


@pytest.mark.parametrize(
    "env_id, match",
    [
        ("MinAtar/Pong-v1", "unknown MinAtar game"),
        ("Foo-v0", "unknown env id"),
        ("ALE/NotAGame-v5", "unknown Atari game"),
        ("MinAtar/Breakout-v2", "unknown env id"),
        ("ALE/Breakout-v4", "unknown env id"),
        ("", "unknown env id"),
    ],
)
def test_unknown_ids_raise(env_id: str, match: str) -> None:
    with pytest.raises(PoldistError, match=match):
        make_env_spec(env_id)


def test_settings_override_and_unknown_setting() -> None:
    spec = make_env_spec("MinAtar/Breakout-v1", sticky_action_prob=0.0, noop_max=5)
    assert spec.settings["sticky_action_prob"] == 0.0
    assert spec.settings["noop_max"] == 5
    with pytest.raises(PoldistError, match="frameskip"):
        make_env_spec("MinAtar/Breakout-v1", frameskip=4)


@pytest.mark.parametrize("env_id", ["MinAtar/Breakout-v1", "MinAtar/Seaquest-v0", "ALE/Breakout-v5"])
def test_env_spec_dict_round_trip(env_id: str) -> None:
    spec = make_env_spec(env_id)
    assert EnvSpec.from_dict(spec.to_dict()) == spec
    restored = EnvSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert restored == spec
    assert isinstance(restored.obs_shape, tuple)


@pytest.mark.parametrize(
    "env_id",
    [
        "MinAtar/Asterix-v1",
        "MinAtar/Breakout-v1",
        "MinAtar/Freeway-v1",
        "MinAtar/Seaquest-v1",
        "MinAtar/SpaceInvaders-v1",
        "MinAtar/Freeway-v0",
    ],
)
def test_spec_matches_the_real_env(env_id: str) -> None:
    spec = make_env_spec(env_id)
    env = make_vector_env(spec, 2, seed=0)
    try:
        obs, _ = env.reset(seed=0)
        assert obs.shape == (2, *spec.obs_shape)
        assert env.single_action_space.n == spec.n_actions
    finally:
        env.close()


def test_minatar_vector_env_obs(breakout_spec: EnvSpec) -> None:
    env = make_vector_env(breakout_spec, 3, seed=0)
    try:
        obs, _ = env.reset(seed=0)
        assert obs.shape == (3, 4, 10, 10)
        assert obs.dtype == np.uint8
        assert set(np.unique(obs)) <= {0, 1}
        # a fresh Breakout has three full rows of bricks and the ball on row 3
        assert (obs[:, BRICK].sum(axis=(1, 2)) == 30).all()
        obs, reward, terminated, truncated, _ = env.step(np.array([0, 1, 2]))
        assert obs.shape == (3, 4, 10, 10)
        assert obs.dtype == np.uint8
        assert set(np.unique(obs)) <= {0, 1}
        assert reward.shape == terminated.shape == truncated.shape == (3,)
    finally:
        env.close()


def test_minatar_same_step_autoreset(breakout_spec: EnvSpec) -> None:
    env = make_vector_env(breakout_spec, 4, seed=1)
    rng = np.random.default_rng(0)
    try:
        obs, _ = env.reset(seed=1)
        ended = 0
        for _ in range(2000):
            obs, _, terminated, truncated, info = env.step(rng.integers(0, 3, 4))
            assert obs.shape == (4, 4, 10, 10) and obs.dtype == np.uint8
            done = terminated | truncated
            for i in np.flatnonzero(done):
                ended += 1
                final = info["final_obs"][i]
                # the terminal frame (ball lost at the bottom) is only in info ...
                assert final[BALL, 9].sum() == 1
                # ... the returned observation already starts the next episode
                assert obs[i, BALL, 3].sum() == 1
                assert obs[i, BRICK].sum() == 30
            if ended >= 3:
                break
        assert ended >= 3
        # stepping on after the resets keeps working
        for _ in range(5):
            obs, *_ = env.step(rng.integers(0, 3, 4))
        assert set(np.unique(obs)) <= {0, 1}
    finally:
        env.close()


def test_minatar_noop_starts() -> None:
    spec = make_env_spec("MinAtar/Breakout-v1", noop_max=3, sticky_action_prob=0.0)
    env = make_vector_env(spec, 8, seed=0)
    try:
        obs, _ = env.reset(seed=0)
        assert obs.shape == (8, 4, 10, 10) and obs.dtype == np.uint8
        # without no-ops every episode starts with the ball on row 3; with them it has moved
        ball_rows = {int(np.argwhere(o[BALL])[0][0]) for o in obs}
        assert ball_rows != {3}
        obs, *_ = env.step(np.zeros(8, dtype=np.int64))
        assert set(np.unique(obs)) <= {0, 1}
    finally:
        env.close()


def test_minatar_vector_env_is_deterministic_for_a_seed(breakout_spec: EnvSpec) -> None:
    def rollout(seed: int) -> np.ndarray:
        env = make_vector_env(breakout_spec, 2, seed=seed)
        rng = np.random.default_rng(0)
        frames = [env.reset(seed=seed)[0]]
        for _ in range(30):
            frames.append(env.step(rng.integers(0, 3, 2))[0])
        env.close()
        return np.stack(frames)

    np.testing.assert_array_equal(rollout(5), rollout(5))
    assert not np.array_equal(rollout(5), rollout(6))


def test_atari_vector_env_obs() -> None:
    spec = make_env_spec("ALE/Breakout-v5")
    env = make_vector_env(spec, 1, seed=0)
    try:
        obs, _ = env.reset(seed=0)
        assert obs.shape == (1, 4, 84, 84)
        assert obs.dtype == np.uint8
        obs, *_ = env.step(np.array([1]))
        assert obs.shape == (1, 4, 84, 84)
    finally:
        env.close()


@pytest.mark.parametrize("alias", ["BreakoutNoFrameskip-v4", "Breakout-v5"])
def test_atari_aliases_name_the_ale_v5_env(alias: str) -> None:
    spec = make_env_spec(alias)
    assert spec.env_id == "ALE/Breakout-v5"
    assert spec.settings["repeat_action_probability"] == 0.0


def test_env_seeds_of_runs_and_purposes_are_disjoint_and_below_the_reference_seeds() -> None:
    from poldist.envs import REFERENCE_SEED, env_seed, run_env_seed

    firsts = [
        env_seed(s, p, task) for s in range(20) for p in ("collect", "eval", "final") for task in (0, 1)
    ]
    assert len(set(firsts)) == len(firsts)
    assert all(0 <= f < REFERENCE_SEED - 2**16 for f in firsts)
    # 8 envs each (seeds f .. f + 7): no two runs or purposes share an env stream
    streams = [set(range(f, f + 8)) for f in firsts]
    assert all(a.isdisjoint(b) for i, a in enumerate(streams) for b in streams[i + 1 :])
    assert env_seed(3, "eval") == env_seed(3, "eval")  # deterministic
    assert run_env_seed("disjoint", 1, "collect", 2, 500) == env_seed(1, "collect", 2, 500)
    # the scheme of the results made before 0.3, kept so that their commands reproduce them
    assert run_env_seed("offset", 1, "collect", 2, 500) == 1 + 2000 + 500
    assert run_env_seed("offset", 1, "eval") == 1 + 10**6
    assert run_env_seed("offset", 1, "final") == 1 + 2 * 10**6
    assert run_env_seed("offset", 1, "collect", 0, 7, actor=2) == 1 + 7 + 3 * 10**6
