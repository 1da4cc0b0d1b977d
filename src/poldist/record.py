"""Videos of agents playing: ``poldist record`` and ``poldist evaluate --capture-video``.

Agents play by the evaluation protocol of :func:`poldist.evaluation.evaluate`: epsilon-greedy
(0.05 unless told), the env settings recorded in the checkpoint, env copy ``i`` seeded with
``seed + i`` and the exploration drawn from ``numpy.random.default_rng(seed)``. So a recording of
``N`` episodes on one env is the same play as ``evaluate(..., episodes=N, num_envs=1)``, and
:func:`capture_episode` on ``n`` env copies replays the first episode of copy 0 of an
``evaluate`` on ``n`` copies, the same actions and the same return.

Frames:

- MinAtar: the observation ``(C, 10, 10)`` is the whole game state; :func:`render_minatar` draws
  it as MinAtar's own renderer does (each cell in the colour of its highest set channel, a
  cubehelix palette, black where no channel is set), in numpy, each cell ``scale`` pixels wide.
- Atari: the library's env is ale-py's ``AtariVectorEnv``, whose observations are 84x84
  grayscale stacks. It can give RGB frames itself (``grayscale=False``), so the policy keeps
  playing on the library's own env, fed exactly what it was trained on, while a twin
  ``AtariVectorEnv`` (:func:`atari_screen_env`: the same game, settings and seed, one copy,
  ``grayscale=False``, one frame of the native 210x160 resolution, not stacked) is sent the
  same actions as copy 0 and gives the screens. The emulator is deterministic for a seed and
  the actions (no sticky actions; the no-op starts come from the seed), and every step checks
  that the twin's reward, episode end, lives and frame number match copy 0's, so a twin that
  lost step fails loudly instead of showing another game. A screen is max-pooled over the
  last two emulator frames when the env's ``maxpool`` is on, as the agent's frames are.

Each agent's panel has a header: its name, the episode (when more than one), the step within the
episode, and the running (unclipped) score. ``--vs`` puts two panels side by side, both agents
playing the same env seed; when one's episode ends first its panel holds its last frame until the
other's ends, and the next episode starts for both together.

Encoders: GIF with Pillow (palette images; MinAtar frames use one exact palette, Atari frames one
adaptive palette each), MP4 (H.264) with imageio and its ffmpeg plugin (the ``video`` extra:
``pip install 'poldist[video]'``). A GIF keeps every frame in memory until it is written (one byte
a pixel), so it suits clips of a few hundred frames; whole Atari episodes belong in an MP4, which
streams. The file is written under a temporary name and renamed when whole.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from poldist.envs import EnvSpec, make_vector_env
from poldist.errors import PoldistError
from poldist.evaluation import epsilon_greedy
from poldist.networks import resolve_device
from poldist.rendering import (
    ATARI_PIXEL_PX,
    HEADER_BG,
    HEADER_FG,
    MINATAR_CELL_PX,
    PanelText,
    atari_screen_env,
    minatar_palette,
    panel,
    render_minatar,
    side_by_side,
    upscale,
)
from poldist.video import VideoWriter, check_video_path

# obs (B, C, H, W) uint8 tensor -> outputs (B, n_actions), as poldist.evaluation.Policy
Policy = Callable[[torch.Tensor], torch.Tensor]

DEFAULT_FPS = {"minatar": 10.0, "atari": 15.0}  # Atari: 60 Hz with frame skip 4 is 15 agent steps/s


# ---------------------------------------------------------------------------------------------
# play


@dataclass
class PlayRecord:
    """What one agent did in a recording (env copy 0's episodes).

    ``returns`` and ``lengths`` are the finished episodes'; ``steps`` counts the agent's steps
    (all recorded episodes, finished or not), ``frames`` the frames its panel showed.
    """

    name: str
    returns: list[float] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    steps: int = 0
    frames: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {
            "name": self.name,
            "returns": self.returns,
            "lengths": self.lengths,
            "steps": self.steps,
            "frames": self.frames,
        }


class _Player:
    """One agent on a vector env of ``num_envs`` copies, played as :func:`evaluate` plays; it
    shows copy 0."""

    def __init__(
        self,
        policy: Policy,
        spec: EnvSpec,
        *,
        name: str,
        seed: int,
        epsilon: float,
        num_envs: int = 1,
        budget: int | None = None,
        scale: int,
        device: str | torch.device = "cpu",
    ):
        self.policy, self.spec, self.epsilon, self.device = policy, spec, epsilon, device
        self.n, self.budget, self.scale = num_envs, budget, scale
        self.record = PlayRecord(name)
        self.rng = np.random.default_rng(seed)
        self.env = make_vector_env(spec, num_envs, seed)
        self.twin = None
        try:
            self.obs, _ = self.env.reset(seed=seed)
            if spec.domain == "atari":
                self.twin = atari_screen_env(spec)
                twin_obs, _ = self.twin.reset(seed=seed)
                self.screen = twin_obs[0, 0]
            else:
                self.screen = self.obs[0]
        except BaseException:
            self.close()
            raise
        self.env_steps = 0  # all copies together, as evaluate's max_total_steps counts
        self.ep_step = 0
        self.score = 0.0
        self.ended = False
        self._next_screen: np.ndarray | None = None

    @property
    def out_of_budget(self) -> bool:
        return self.budget is not None and self.env_steps >= self.budget

    @property
    def running(self) -> bool:
        """Whether this episode still has steps to show."""
        return not self.ended and not self.out_of_budget

    def image(self) -> np.ndarray:
        """The current screen, ``(H, W, 3)`` uint8, scaled."""
        if self.spec.domain == "atari":
            return upscale(self.screen, self.scale)
        return render_minatar(self.screen, self.scale)

    @torch.no_grad()
    def step(self) -> None:
        """One step of every copy; copy 0's reward, score and screen are kept."""
        out = self.policy(torch.as_tensor(self.obs, device=self.device))
        actions = epsilon_greedy(out, self.epsilon, self.rng)
        self.obs, reward, terminated, truncated, info = self.env.step(actions)
        self.env_steps += self.n
        self.record.steps += 1
        self.ep_step += 1
        self.score += float(reward[0])
        ended = bool(terminated[0] or truncated[0])
        if self.twin is not None:
            screens, t_reward, t_term, t_trunc, t_info = self.twin.step(actions[:1])
            in_step = (
                t_reward[0] == reward[0]
                and bool(t_term[0]) == bool(terminated[0])
                and bool(t_trunc[0]) == bool(truncated[0])
                and all(
                    k not in info or k not in t_info or int(info[k][0]) == int(t_info[k][0])
                    for k in ("lives", "episode_frame_number")
                )
            )
            if not in_step:
                raise PoldistError(
                    f"the RGB twin of {self.spec.env_id} lost step with the agent's env at step "
                    f"{self.ep_step}; cannot record this game"
                )
            if ended:
                self.screen = np.asarray(t_info["final_obs"])[0, 0]
                self._next_screen = screens[0, 0]
            else:
                self.screen = screens[0, 0]
        elif ended:
            final = info.get("final_obs")
            self.screen = self.obs[0] if final is None or final[0] is None else np.asarray(final[0])
            self._next_screen = self.obs[0]
        else:
            self.screen = self.obs[0]
        if ended:
            self.ended = True
            self.record.returns.append(self.score)
            self.record.lengths.append(self.ep_step)

    def next_episode(self) -> None:
        """Show the first screen of the next episode (the env has already reset copy 0)."""
        if self._next_screen is not None:
            self.screen = self._next_screen
        self._next_screen = None
        self.ep_step, self.score, self.ended = 0, 0.0, False

    def close(self) -> None:
        self.env.close()
        if self.twin is not None:
            self.twin.close()


def _play(
    players: list[_Player], writer: VideoWriter, episodes: int, on_frame: Callable[[], None] | None = None
) -> None:
    """Play ``episodes`` episodes with every player in step, writing one frame per step."""

    def emit(episode: int) -> None:
        panels = [
            panel(
                p.image(),
                PanelText(p.record.name, p.ep_step, p.score, episode + 1, episodes, p.ended),
            )
            for p in players
        ]
        writer.append(side_by_side(panels))
        for p in players:
            p.record.frames += 1

    for ep in range(episodes):
        if ep > 0:
            for p in players:
                p.next_episode()
        emit(ep)
        while any(p.running for p in players):
            for p in players:
                if p.running:
                    p.step()
            emit(ep)
        if any(p.out_of_budget and not p.ended for p in players):
            break


def _frame_palette(spec: EnvSpec) -> np.ndarray | None:
    """Every colour a frame of ``spec`` can hold, when they are known (MinAtar), else ``None``."""
    if spec.domain != "minatar":
        return None
    ui = np.array([HEADER_BG, HEADER_FG], np.uint8)
    return np.concatenate([minatar_palette(spec.obs_shape[0]), ui])


def _check_options(
    episodes: int, epsilon: float, max_steps: int | None, fps: float | None, scale: int | None
) -> None:
    if episodes < 1:
        raise PoldistError(f"--episodes must be at least 1, got {episodes}")
    if not 0.0 <= epsilon <= 1.0:
        raise PoldistError(f"--epsilon must be in [0, 1], got {epsilon}")
    if max_steps is not None and max_steps < 1:
        raise PoldistError(f"--max-steps must be at least 1, got {max_steps}")
    if fps is not None and not fps > 0:
        raise PoldistError(f"--fps must be positive, got {fps}")
    if scale is not None and scale < 1:
        raise PoldistError(f"--scale must be at least 1 pixel, got {scale}")


def _default_scale(spec: EnvSpec, scale: int | None) -> int:
    if scale is not None:
        return scale
    return MINATAR_CELL_PX if spec.domain == "minatar" else ATARI_PIXEL_PX


@dataclass
class Recording:
    """A written video and what was played in it."""

    path: Path
    frames: int
    height: int
    width: int
    fps: float
    bytes: int
    env_id: str
    seed: int
    epsilon: float
    agents: list[PlayRecord]

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {
            "path": str(self.path),
            "frames": self.frames,
            "height": self.height,
            "width": self.width,
            "fps": self.fps,
            "bytes": self.bytes,
            "env_id": self.env_id,
            "seed": self.seed,
            "epsilon": self.epsilon,
            "agents": [a.to_dict() for a in self.agents],
        }

    def __str__(self) -> str:
        lines = [
            f"wrote {self.path} ({self.frames} frames, {self.width}x{self.height}, {self.fps:g} fps, "
            f"{self.bytes:,} bytes): {self.env_id}, seed {self.seed}, epsilon {self.epsilon:g}"
        ]
        for a in self.agents:
            scores = ", ".join(f"{r:g}" for r in a.returns) or "none finished"
            lines.append(f"  {a.name}: episode returns {scores} ({a.steps} steps)")
        return "\n".join(lines)


def _record_players(
    make_players: Callable[[], list[_Player]],
    spec: EnvSpec,
    out: Path,
    *,
    episodes: int,
    seed: int,
    epsilon: float,
    fps: float | None,
) -> Recording:
    fps = float(fps if fps is not None else DEFAULT_FPS[spec.domain])
    players: list[_Player] = []
    writer = VideoWriter(out, fps, _frame_palette(spec))
    try:
        players = make_players()
        _play(players, writer, episodes)
        path = writer.close()
    except BaseException:
        writer.abort()
        raise
    finally:
        for p in players:
            p.close()
    assert writer.size is not None
    return Recording(
        path,
        writer.frames,
        writer.size[0],
        writer.size[1],
        fps,
        path.stat().st_size,
        spec.env_id,
        seed,
        epsilon,
        [p.record for p in players],
    )


def capture_episode(
    policy: Policy,
    spec: EnvSpec,
    out: str | Path,
    *,
    name: str,
    episodes: int,
    seed: int,
    epsilon: float = 0.05,
    num_envs: int = 8,
    max_total_steps: int | None = None,
    device: str | torch.device = "cpu",
    fps: float | None = None,
    scale: int | None = None,
) -> Recording:
    """Record the first episode of copy 0 of ``evaluate(policy, spec, episodes, epsilon=epsilon,
    seed=seed, num_envs=num_envs, max_total_steps=max_total_steps)``: the same vector env of
    ``max(1, min(num_envs, episodes))`` copies and the same exploration draws, stopped once copy
    0's first episode ends (or the step budget, counted over all copies as ``evaluate`` counts
    it, runs out: the video then shows the unfinished episode, which ``evaluate`` drops).

    Args:
        policy: ``(B, C, H, W)`` uint8 observations on ``device`` -> ``(B, n_actions)`` outputs.
        spec: the env.
        out: ``.gif`` or ``.mp4``.
        name: the panel's title.
        fps: frames per second (default 10 for MinAtar, 15 for Atari).
        scale: pixels per MinAtar cell (default 20) or per Atari screen pixel (default 2).

    Raises:
        PoldistError: a bad file name or option (before any play).
    """
    _check_options(max(1, episodes), epsilon, max_total_steps, fps, scale)
    out = check_video_path(out)
    n = max(1, min(num_envs, episodes))

    def make() -> list[_Player]:
        return [
            _Player(
                policy,
                spec,
                name=name,
                seed=seed,
                epsilon=epsilon,
                num_envs=n,
                budget=max_total_steps,
                scale=_default_scale(spec, scale),
                device=device,
            )
        ]

    return _record_players(make, spec, out, episodes=1, seed=seed, epsilon=epsilon, fps=fps)


def _load_agents(
    checkpoint: str | Path, vs: str | Path | None, task: int, env_id: str, device: torch.device
) -> tuple[list[Any], EnvSpec]:
    from poldist.envs import make_env_spec
    from poldist.teachers import check_teacher_fits, load_teacher

    first = load_teacher(checkpoint, task=task, env_id=env_id, device=device)
    spec = first.env
    if env_id:
        spec = make_env_spec(env_id)
        check_teacher_fits(first, spec)
    agents = [first]
    if vs is not None:
        other = load_teacher(vs, env_id=env_id, device=device)
        heads = len(other.net.arch.n_actions)
        k = 1
        while other.env.env_id != spec.env_id and k < heads:  # a multi-task network: its head of this env
            other = load_teacher(vs, task=k, env_id=env_id, device=device)
            k += 1
        if env_id:
            check_teacher_fits(other, spec)
        if other.env.env_id != spec.env_id:
            raise PoldistError(
                f"--vs {vs} plays {other.env.env_id}, {checkpoint} plays {spec.env_id}: "
                "both must play the same env"
            )
        if not env_id and other.env.settings != spec.settings:
            diff = sorted(
                key
                for key in set(other.env.settings) | set(spec.settings)
                if other.env.settings.get(key) != spec.settings.get(key)
            )
            raise PoldistError(
                f"--vs {vs} plays {spec.env_id} with other settings than {checkpoint} ({', '.join(diff)}): "
                "both must play the same env"
            )
        agents.append(other)
    return agents, spec


def record(
    checkpoint: str | Path,
    out: str | Path,
    *,
    vs: str | Path | None = None,
    episodes: int = 1,
    seed: int = 12345,
    epsilon: float = 0.05,
    max_steps: int | None = None,
    task: int = 0,
    env_id: str = "",
    fps: float | None = None,
    scale: int | None = None,
    device: str | torch.device = "cpu",
    labels: Sequence[str] | None = None,
) -> Recording:
    """Record an agent (or two, side by side) playing ``episodes`` episodes.

    Each agent plays on its own env of one copy seeded ``seed`` with its own exploration
    ``default_rng(seed)``: the play of ``evaluate(agent, spec, episodes, seed=seed, num_envs=1,
    epsilon=epsilon)``, episode for episode.

    Args:
        checkpoint: checkpoint directory, shipped name (``minatar/breakout``), SB3 ``.zip`` or
            CleanRL file (as :func:`poldist.teachers.load_teacher`).
        out: ``.gif`` (Pillow) or ``.mp4`` (imageio with ffmpeg: the ``video`` extra).
        vs: a second agent on the same env and seed, drawn to the right (a multi-task network
            plays with its head of that env).
        episodes: episodes per agent, one after another in the video.
        seed: env seed (and the exploration's).
        epsilon: the evaluation's epsilon-greedy exploration.
        max_steps: at most this many steps per agent (the last episode may be unfinished).
        task: head of a multi-task ``checkpoint``.
        env_id: play this env (needed by CleanRL files; default: the checkpoint's).
        fps: frames per second (default 10 for MinAtar, 15 for Atari).
        scale: pixels per MinAtar cell (default 20: 200x200 panels) or per Atari screen pixel
            (default 2: 320x420 panels). Each panel has a header above it.
        device: where the networks run (a ``torch.device`` or a ``--device`` name such as ``auto``).
        labels: the panels' names, one per agent (default: the checkpoints as given).

    Returns:
        The :class:`Recording`: ``frames`` of ``(height, width, 3)``, ``width`` the panel width
        times the number of agents.

    Raises:
        PoldistError: a file name other than ``.gif``/``.mp4``, MP4 without imageio, an option
            out of range, an unknown checkpoint, or ``vs`` of another env; raised before anything
            is written.
    """
    _check_options(episodes, epsilon, max_steps, fps, scale)
    names = [str(checkpoint)] + ([str(vs)] if vs is not None else [])
    if labels is not None:
        if len(labels) != len(names):
            raise PoldistError(f"record: {len(labels)} labels for {len(names)} agents: give one per agent")
        names = [str(label) for label in labels]
    out = check_video_path(out)
    dev = resolve_device(device)
    agents, spec = _load_agents(checkpoint, vs, task, env_id, dev)

    def make() -> list[_Player]:
        players: list[_Player] = []
        try:
            for agent, name in zip(agents, names):
                players.append(
                    _Player(
                        agent,
                        spec,
                        name=name,
                        seed=seed,
                        epsilon=epsilon,
                        num_envs=1,
                        budget=max_steps,
                        scale=_default_scale(spec, scale),
                        device=dev,
                    )
                )
        except BaseException:
            for p in players:
                p.close()
            raise
        return players

    return _record_players(make, spec, out, episodes=episodes, seed=seed, epsilon=epsilon, fps=fps)
