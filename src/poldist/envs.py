"""Environments: MinAtar and Atari behind one vectorised interface.

Every env the library makes returns observations as ``uint8`` arrays of shape
``(num_envs, C, H, W)`` (channels first), and uses Gymnasium's ``SAME_STEP``
autoreset, so every step is a real transition: when an episode ends the returned
observation is already the first one of the next episode.

- MinAtar (``MinAtar/<Game>-v0`` full 6-action set, ``-v1`` minimal set): the
  ``(10, 10, C)`` boolean grid is transposed to ``(C, 10, 10)`` uint8 in {0, 1}.
  Sticky actions (0.1) and difficulty ramping stay at MinAtar's defaults.
- Atari (``ALE/<Game>-v5``): ale-py's ``AtariVectorEnv`` runs the paper's
  pipeline in C++ (84x84 grayscale, frame skip 4 with max-pooling, 4 stacked
  frames, up to 30 no-op starts, no sticky actions, 108,000-frame episodes).
"""

from __future__ import annotations

import re
import zlib
from dataclasses import asdict, dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from poldist.errors import PoldistError
from poldist.schema import require, require_ints, require_like

MINATAR_GAMES = {
    # game: (channels, minimal action count)
    "asterix": (4, 5),
    "breakout": (4, 3),
    "freeway": (7, 3),
    "seaquest": (10, 6),
    "space_invaders": (6, 4),
}
MINATAR_NAMES = {
    "Asterix": "asterix",
    "Breakout": "breakout",
    "Freeway": "freeway",
    "Seaquest": "seaquest",
    "SpaceInvaders": "space_invaders",
}
_MINATAR_ID = re.compile(r"^MinAtar/(?P<game>[A-Za-z]+)-v(?P<version>[01])$")
_ALE_ID = re.compile(r"^ALE/(?P<game>[A-Za-z]+)-v5$")
# ids of Atari agents trained elsewhere (RL Zoo / CleanRL: NoFrameskip-v4; envpool: <Game>-v5); they
# name the same games without sticky actions, which is the library's ALE/<Game>-v5 setting
_ATARI_ALIAS = re.compile(r"^(?P<game>[A-Za-z]+)(NoFrameskip-v4|-v5)$")


# Each domain's env settings and their defaults (the game is filled in from the env id); a
# checkpoint records them, and EnvSpec.from_dict checks a recorded one against these.
_MINATAR_SETTINGS: dict[str, Any] = {
    "game": "",
    "use_minimal_action_set": True,
    "sticky_action_prob": 0.1,
    "difficulty_ramping": True,
    "noop_max": 0,
    "max_episode_steps": 10_000,
}
_ATARI_SETTINGS: dict[str, Any] = {
    "game": "",
    "frameskip": 4,
    "stack_num": 4,
    "img_height": 84,
    "img_width": 84,
    "grayscale": True,
    "maxpool": True,
    "repeat_action_probability": 0.0,
    "noop_max": 30,
    "max_num_frames_per_episode": 108_000,
    "full_action_space": False,
    "use_fire_reset": True,
    "episodic_life": False,
}


# Env seeds. A vector env of N copies seeds copy i with s + i, so two seeds less than N apart
# share env streams. Every run seed and purpose (collection, evaluation, final scoring) draws its
# own s by hashing, below REFERENCE_SEED; the reference scores of shipped teachers use seeds from
# REFERENCE_SEED on, which nothing else draws, so no run is ever selected or scored on them.
REFERENCE_SEED = 2**30


def env_seed(run_seed: int, purpose: str, *keys: int) -> int:
    """The first env seed of ``purpose`` (e.g. ``"collect"``, ``"eval"``, ``"final"``) in run
    ``run_seed``, with optional integer ``keys`` (task index, resume point).

    Distinct arguments give unrelated seeds in ``[0, REFERENCE_SEED - 2**16)``: two vector envs of
    up to N copies overlap with probability about ``2 * N / 2**30``.
    """
    words = [int(run_seed) & 0xFFFFFFFF, zlib.crc32(purpose.encode()), *(int(k) & 0xFFFFFFFF for k in keys)]
    return int(np.random.SeedSequence(words).generate_state(1)[0]) % (REFERENCE_SEED - 2**16)


def run_env_seed(
    scheme: str, run_seed: int, purpose: str, task: int = 0, updates: int = 0, actor: int | None = None
) -> int:
    """The first env seed of a distillation run's ``purpose`` (``collect``, ``eval``, ``final``).

    ``scheme``: ``disjoint`` (:func:`env_seed`, the default) or ``offset``, the scheme of results
    made before version 0.3 (``run_seed + 1000 * task + updates`` for collection, ``+ 10**6`` for
    evaluation, ``+ 2 * 10**6`` for the final score, ``+ 10**6 * (1 + actor)`` more for a Ray
    actor's collection), kept so that those results stay reproducible.
    """
    if scheme == "offset":
        offsets = {"collect": 1000 * task + updates, "eval": 10**6, "final": 2 * 10**6}
        return run_seed + offsets[purpose] + (0 if actor is None else 10**6 * (1 + actor))
    keys = (task, updates) if actor is None else (task, updates, actor)
    return env_seed(run_seed, purpose, *keys)


@dataclass(frozen=True)
class EnvSpec:
    """What a network needs to know about an env, and how to rebuild the env.

    Attributes:
        env_id: the Gymnasium id, e.g. ``"MinAtar/Breakout-v1"``.
        domain: ``"minatar"`` or ``"atari"``.
        obs_shape: ``(C, H, W)`` of one observation as the network sees it.
        n_actions: size of the action set.
        obs_scale: factor that maps stored uint8 observations to network input
            (1/255 for Atari frames, 1.0 for MinAtar's {0, 1} grids).
        settings: env options (sticky actions, no-ops, frame skip, ...), recorded
            in checkpoints so that a checkpoint alone rebuilds its env.
    """

    env_id: str
    domain: str
    obs_shape: tuple[int, int, int]
    n_actions: int
    obs_scale: float
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (stored in checkpoint metadata)."""
        d = asdict(self)
        d["obs_shape"] = list(self.obs_shape)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "env spec") -> EnvSpec:
        """Inverse of :meth:`to_dict`, checked: every field's type and allowed values, the
        domain and observation shape against the env id, and the settings against the domain's.

        Args:
            d: the JSON form.
            where: what ``d`` is, for the error message (e.g. ``"checkpoint runs/x: envs[0]"``).

        Raises:
            PoldistError: one line naming the field that is wrong.
        """
        env_id = require(d, "env_id", where, "str")
        domain = require(d, "domain", where, "str", choices=("atari", "minatar"))
        shape = require_ints(d, "obs_shape", where, length=3, minimum=1)
        n_actions = require(d, "n_actions", where, "int", minimum=1)
        obs_scale = require(d, "obs_scale", where, "float")
        settings = require(d, "settings", where, "dict", default={})
        if not obs_scale > 0:
            raise PoldistError(f"{where}: obs_scale must be positive, got {obs_scale!r}")
        m = _MINATAR_ID.match(env_id)
        if (domain == "minatar") != bool(m) or (domain == "atari" and not _ALE_ID.match(env_id)):
            raise PoldistError(f"{where}: env_id {env_id!r} is not a {domain} env id")
        if m:
            require_like(settings, _MINATAR_SETTINGS, f"{where}.settings")
            game = MINATAR_NAMES.get(m["game"])
            if game is None or settings.get("game", game) != game:
                raise PoldistError(
                    f"{where}: env_id {env_id!r} and settings.game disagree or name no MinAtar game"
                )
            channels, minimal = MINATAR_GAMES[game]
            expected, actions = (channels, 10, 10), (minimal if m["version"] == "1" else 6)
        else:
            require_like(settings, _ATARI_SETTINGS, f"{where}.settings")
            full = {**_ATARI_SETTINGS, **settings}
            expected, actions = (full["stack_num"], full["img_height"], full["img_width"]), None
            if n_actions > 18:
                raise PoldistError(f"{where}: n_actions must be at most 18 for Atari, got {n_actions}")
        if tuple(shape) != expected:
            raise PoldistError(
                f"{where}: obs_shape {shape} does not fit {env_id} (expected {list(expected)})"
            )
        if actions is not None and n_actions != actions:
            raise PoldistError(f"{where}: n_actions {n_actions} does not fit {env_id} (expected {actions})")
        return cls(
            env_id, domain, (shape[0], shape[1], shape[2]), n_actions, float(obs_scale), dict(settings)
        )


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _ale_game(name: str) -> str:
    import ale_py.roms

    rom = _snake(name)
    known = ale_py.roms.get_all_rom_ids()
    if rom not in known:
        raise PoldistError(f"unknown Atari game {name!r} (ale-py has no ROM {rom!r})")
    return rom


def make_env_spec(env_id: str, **settings: Any) -> EnvSpec:
    """Validate ``env_id`` and describe its env.

    Args:
        env_id: ``MinAtar/<Game>-v0|v1`` or ``ALE/<Game>-v5`` (``<Game>NoFrameskip-v4`` and
            ``<Game>-v5``, the ids of RL Zoo, CleanRL and envpool, name the same ALE env).
        **settings: overrides of the domain defaults: MinAtar ``sticky_action_prob``
            (0.1), ``difficulty_ramping`` (True), ``noop_max`` (0: MinAtar Breakout
            loses its only ball within 30 no-ops), ``max_episode_steps`` (10,000);
            Atari ``repeat_action_probability`` (0.0), ``noop_max`` (30),
            ``max_num_frames_per_episode`` (108,000), ``full_action_space`` (False).

    Raises:
        PoldistError: for an id that names no supported env.
    """
    m = _MINATAR_ID.match(env_id)
    if m:
        game = MINATAR_NAMES.get(m["game"])
        if game is None:
            raise PoldistError(
                f"unknown MinAtar game {m['game']!r} in {env_id!r}; choose one of {sorted(MINATAR_NAMES)}"
            )
        channels, minimal = MINATAR_GAMES[game]
        minimal_set = m["version"] == "1"
        s = {**_MINATAR_SETTINGS, "game": game, "use_minimal_action_set": minimal_set}
        _update_settings(s, settings, env_id)
        return EnvSpec(env_id, "minatar", (channels, 10, 10), minimal if minimal_set else 6, 1.0, s)
    alias = _ATARI_ALIAS.match(env_id)
    if alias and not _MINATAR_ID.match(env_id):
        env_id = f"ALE/{alias['game']}-v5"
    m = _ALE_ID.match(env_id)
    if m:
        game = _ale_game(m["game"])
        s = {**_ATARI_SETTINGS, "game": game}
        _update_settings(s, settings, env_id)
        n_actions = _ale_action_count(game, s["full_action_space"])
        return EnvSpec(env_id, "atari", (4, 84, 84), n_actions, 1.0 / 255.0, s)
    raise PoldistError(
        f"unknown env id {env_id!r}: expected MinAtar/<Game>-v0|v1 "
        f"(games {sorted(MINATAR_NAMES)}) or ALE/<Game>-v5"
    )


def _update_settings(s: dict[str, Any], overrides: dict[str, Any], env_id: str) -> None:
    unknown = set(overrides) - set(s)
    if unknown:
        raise PoldistError(f"unknown env settings {sorted(unknown)} for {env_id}")
    s.update(overrides)


def _ale_action_count(game: str, full: bool) -> int:
    if full:
        return 18
    import ale_py

    ale = ale_py.ALEInterface()
    ale.setLoggerMode(ale_py.LoggerMode.Error)
    ale.loadROM(ale_py.roms.get_rom_path(game))
    return len(ale.getMinimalActionSet())


class _MinAtarObs(gym.ObservationWrapper):
    """(10, 10, C) bool -> (C, 10, 10) uint8, plus random no-op starts."""

    def __init__(self, env: gym.Env, noop_max: int):
        super().__init__(env)
        h, w, c = env.observation_space.shape
        self.observation_space = gym.spaces.Box(0, 1, (c, h, w), np.uint8)
        self.noop_max = noop_max

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(observation.transpose(2, 0, 1), dtype=np.uint8)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        if self.noop_max > 0:
            for _ in range(int(self.np_random.integers(0, self.noop_max + 1))):
                obs, _, terminated, truncated, info = self.env.step(0)
                if terminated or truncated:
                    obs, info = self.env.reset()
        return self.observation(obs), info


def _make_minatar(spec: EnvSpec) -> gym.Env:
    import minatar.gym

    if spec.env_id not in gym.registry:
        minatar.gym.register_envs()
    s = spec.settings
    env = gym.make(
        spec.env_id,
        sticky_action_prob=s["sticky_action_prob"],
        difficulty_ramping=s["difficulty_ramping"],
        max_episode_steps=s["max_episode_steps"],
    )
    return _MinAtarObs(env, s["noop_max"])


def make_vector_env(
    spec: EnvSpec, num_envs: int, seed: int, *, clip_rewards: bool = False
) -> gym.vector.VectorEnv:
    """Make ``num_envs`` copies of the env described by ``spec``.

    Args:
        spec: from :func:`make_env_spec` (or a checkpoint's metadata).
        num_envs: parallel copies, stepped in one call.
        seed: seeds copy ``i`` with ``seed + i`` at the first reset.
        clip_rewards: clip rewards to [-1, 1] (Atari training); evaluation never clips.

    Returns:
        A vector env whose ``reset()``/``step()`` give observations of shape
        ``(num_envs, C, H, W)``, dtype uint8, with ``SAME_STEP`` autoreset.
        Call ``reset(seed=seed)`` before stepping.
    """
    if spec.domain == "minatar":
        return gym.vector.SyncVectorEnv(
            [lambda: _make_minatar(spec) for _ in range(num_envs)],
            autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
        )
    if spec.domain == "atari":
        import ale_py

        s = dict(spec.settings)
        game = s.pop("game")
        return ale_py.AtariVectorEnv(
            game,
            num_envs,
            autoreset_mode="SameStep",
            reward_clipping=clip_rewards,
            num_threads=min(num_envs, 2),
            **s,
        )
    raise PoldistError(f"unsupported domain {spec.domain!r}")
