"""Teacher training: Double DQN (van Hasselt et al., 2016) on vector envs.

Read top to bottom: config, the pure update step, then :class:`DQNTrainer`, the loop (collect
with an epsilon schedule, store, update, sync the target, evaluate, checkpoint), steppable like
:class:`poldist.distillation.Distiller`; :func:`train_dqn` runs it to the end.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from poldist.checkpoints import save_model
from poldist.config import DQNConfig
from poldist.envs import EnvSpec, env_seed, make_env_spec, make_vector_env
from poldist.errors import PoldistError
from poldist.evaluation import EvalResult, epsilon_greedy, evaluate
from poldist.losses import make_loss
from poldist.memory import FrameStackMemory, ReplayMemory
from poldist.networks import (
    Architecture,
    QNetwork,
    adam,
    minatar_dqn,
    nature_dqn,
    resolve_device,
    student_architecture,
    to_device,
)
from poldist.progress import progress
from poldist.runs import EvalLog, RunBook, loss_text, machine_info
from poldist.teachers import NetworkTeacher, check_teacher_fits, expand_teacher_names, load_teacher

if TYPE_CHECKING:  # tensorboard is imported when a run opens its logs, not with the module
    from torch.utils.tensorboard import SummaryWriter


def teacher_architecture(spec: EnvSpec) -> Architecture:
    """The paper's teacher for a domain: Nature DQN (Atari) or MinAtar's DQN network."""
    if spec.domain == "atari":
        return nature_dqn(spec.n_actions, spec.obs_shape[0])
    return minatar_dqn(spec.obs_shape[0], spec.n_actions)


def clip_grad_norm(params: list[torch.nn.Parameter], max_norm: float) -> torch.Tensor:
    """``torch.nn.utils.clip_grad_norm_(params, max_norm, foreach=True)``, bit for bit, but on the CPU
    the gradients are multiplied only when the norm is over ``max_norm`` (torch multiplies them by 1
    otherwise, to spare a GPU a sync: 2% of an Atari update on 2 CPU threads). Returns the norm."""
    grads = [p.grad for p in params if p.grad is not None]
    total = torch.nn.utils.get_total_norm(grads, foreach=True)
    if grads and (grads[0].device.type != "cpu" or bool(max_norm / (total + 1e-6) < 1)):
        torch.nn.utils.clip_grads_with_norm_(params, max_norm, total, foreach=True)
    return total


def double_dqn_loss(
    online: Callable[[torch.Tensor], torch.Tensor],
    target: Callable[[torch.Tensor], torch.Tensor],
    batch: dict[str, torch.Tensor],
    gamma: float,
) -> torch.Tensor:
    """Huber loss of Double DQN on a batch.

    ``batch``: ``obs``/``next_obs`` ``(B, C, H, W)``, ``action`` ``(B,)`` int64,
    ``reward`` ``(B,)`` float, ``done`` ``(B,)`` float (1 where the episode terminated).
    The online network picks the next action, the target network values it.
    """
    q = online(batch["obs"]).gather(1, batch["action"][:, None]).squeeze(1)
    with torch.no_grad():
        next_action = online(batch["next_obs"]).argmax(dim=1, keepdim=True)
        next_q = target(batch["next_obs"]).gather(1, next_action).squeeze(1)
        y = batch["reward"] + gamma * (1.0 - batch["done"]) * next_q
    return F.smooth_l1_loss(q, y)


def linear_epsilon(step: int, cfg: DQNConfig) -> float:
    """Epsilon at env step ``step``: linear from ``eps_start`` to ``eps_end``, then flat."""
    frac = min(1.0, step / max(1.0, cfg.eps_fraction * cfg.total_steps))
    return cfg.eps_start + frac * (cfg.eps_end - cfg.eps_start)


@dataclass
class _Game:
    """One task of a (multi-task) DQN run: its env, replay memory and current observations."""

    spec: EnvSpec
    memory: ReplayMemory | FrameStackMemory
    env: Any = None
    obs: np.ndarray | None = None
    ep_ret: np.ndarray | None = None


def kickstart_weight(step: int, cfg: DQNConfig) -> float:
    """The distillation term's weight after ``step`` env steps: linear from ``kickstart_weight`` to 0."""
    if not cfg.kickstart_teacher:
        return 0.0
    span = cfg.kickstart_decay * cfg.total_steps
    if span <= 0:
        return 0.0
    return cfg.kickstart_weight * max(0.0, 1.0 - step / span)


def kickstart_loss_name(cfg: DQNConfig, teacher: NetworkTeacher) -> str:
    """The kickstart loss ``cfg`` asks for; ``auto`` is ``mse`` for Q-value teachers, ``kl`` for logits."""
    if cfg.kickstart_loss != "auto":
        return cfg.kickstart_loss
    return "mse" if teacher.output_kind == "q" else "kl"


def _kickstart_teachers(
    cfg: DQNConfig, specs: list[EnvSpec], device: torch.device | str = "cpu"
) -> list[NetworkTeacher]:
    """Load and check one kickstarting teacher per game (before any work starts), on ``device``."""
    names = expand_teacher_names(cfg.kickstart_teacher)
    if len(names) != len(specs):
        raise PoldistError(f"--kickstart-teacher: {len(names)} teacher(s) for {len(specs)} game(s)")
    teachers = [load_teacher(n, env_id=s.env_id, device=device) for n, s in zip(names, specs)]
    for t, s in zip(teachers, specs):
        check_teacher_fits(t, s)
    return teachers


def _game_memory(spec: EnvSpec, size: int) -> ReplayMemory | FrameStackMemory:
    """A game's DQN replay memory; on Atari every 84x84 frame is stored once (about 7 KB a
    transition instead of 56 KB for ``obs`` and ``next_obs`` as two stacks of four frames)."""
    fields = {
        "obs": (spec.obs_shape, np.uint8),
        "next_obs": (spec.obs_shape, np.uint8),
        "action": ((), np.int64),
        "reward": ((), np.float32),
        "done": ((), np.float32),
    }
    if spec.domain == "atari":
        return FrameStackMemory(size, fields, frame_field="obs", next_frame_field="next_obs")
    return ReplayMemory(size, fields)


def final_observations(
    next_obs: np.ndarray, terminated: np.ndarray, truncated: np.ndarray, info: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray]:
    """The true next observations of a ``SAME_STEP`` autoreset step, and where to stop bootstrapping.

    An env whose episode ended returns the first observation of its next episode; its last one is
    in ``info["final_obs"]``. Gymnasium's vector envs mark those envs in ``info["_final_obs"]``;
    ale-py's ``AtariVectorEnv`` gives no mask, so ``terminated | truncated`` marks them.

    Returns:
        ``(stored_next, done)``: ``(n, C, H, W)`` next observations to store (``next_obs``
        itself when no episode ended) and ``(n,)`` bool, true where the target must not
        bootstrap (terminated; also truncated when the env gives no final observation).
    """
    ended = terminated | truncated
    if "final_obs" not in info:
        return next_obs, ended
    mask = np.asarray(info.get("_final_obs", ended), bool)
    stored_next = next_obs
    if mask.any():
        stored_next = next_obs.copy()
        for j in np.flatnonzero(mask):
            stored_next[j] = info["final_obs"][j]
    return stored_next, terminated


def _init_from(net: QNetwork, path: str) -> None:
    """Copy a model checkpoint's weights into ``net`` (half-precision weights are widened)."""
    from poldist.checkpoints import load_model

    source, _ = load_model(path)
    if source.arch != net.arch:
        raise PoldistError(f"--init-weights {path}: its network {source.arch} is not this run's {net.arch}")
    net.load_state_dict({k: v.float() for k, v in source.state_dict().items()})


class DQNTrainer:
    """Double-DQN teacher training, steppable: :meth:`run` advances it, :meth:`finish` ends it.

    Several comma-separated env ids train the paper's multi-task DQN baseline: one network
    with one head per game, one replay memory per game, every game's envs stepped in turn
    (``total_steps`` counts all games together), each minibatch from one game (round robin).

    Networks (online, target, kickstarting teachers) live on ``cfg.device``; the replay
    memories stay in host memory (uint8 numpy) and only sampled minibatches go to the device.

    An evaluation falls due every ``eval_interval`` env steps and at ``total_steps``; a
    checkpoint every ``checkpoint_interval`` and at ``total_steps``. A checkpoint due at a step is
    written when training leaves that step (the next :meth:`run`) or by :meth:`finish`, so what a
    caller does between two :meth:`run` calls (online distillation: a chunk of student updates on
    the teacher just evaluated) belongs to it, and a resume never skips that work.

    Usable as a context manager: leaving it closes envs and logs (:meth:`close`) without a
    checkpoint, so a failed run keeps its last good one.

    A caller that stops early (a time-to-score benchmark) loops ``run(trainer.next_eval)`` and
    reads the results it returns; :meth:`as_teacher` lends the network being trained as a teacher
    (online distillation) whose version follows the optimizer steps.

    Args:
        cfg: hyper-parameters.
        run_dir: run directory (see :mod:`poldist.runs`).
        resume: continue from ``<run_dir>/state``.
        show_progress: a progress bar over ``cfg.total_steps``.
    """

    def __init__(
        self, cfg: DQNConfig, run_dir: str | Path, *, resume: bool = False, show_progress: bool = True
    ):
        cfg.validate()  # a bad value fails in one line before the run dir exists
        self.cfg = cfg
        ids = [e.strip() for e in cfg.env_id.split(",") if e.strip()]
        specs = [make_env_spec(e) for e in ids]  # fails before any work on a bad id
        self.device = resolve_device(cfg.device)  # an unknown or absent device fails before the run dir
        self.kick_teachers = _kickstart_teachers(cfg, specs, self.device) if cfg.kickstart_teacher else []
        # what cfg left to the run ("auto", the teacher's temperature), recorded in the summary
        self.resolved: dict[str, Any] = {"kickstart_loss": None, "kickstart_tau": None}
        self.kick_loss = None
        if self.kick_teachers:
            name, tau = kickstart_loss_name(cfg, self.kick_teachers[0]), self.kick_teachers[0].default_tau
            self.kick_loss = make_loss(name, tau)
            self.resolved = {"kickstart_loss": name, "kickstart_tau": tau if name in ("kl", "erd") else None}
        self.book = RunBook(run_dir, resume=resume, seed=cfg.seed, torch_threads=cfg.torch_threads)
        self.run_dir = self.book.dir
        self.rng = self.book.rng

        arch = student_architecture(teacher_architecture(specs[0]), cfg.network)
        arch = replace(
            arch,
            obs_shape=(max(s.obs_shape[0] for s in specs), *arch.obs_shape[1:]),  # fewer channels: padded
            n_actions=tuple(s.n_actions for s in specs),
            head_hidden=cfg.head_hidden,
        )
        # built on the CPU (its RNG draws the initial weights whatever the device), then moved
        self.online, self.target = QNetwork(arch).to(self.device), QNetwork(arch).to(self.device)
        if cfg.init_weights and not resume:
            _init_from(self.online, cfg.init_weights)
        self.target.load_state_dict(self.online.state_dict())
        self.optimizer = adam(self.online.parameters(), lr=cfg.lr, eps=1.5e-4)
        self.games = [_Game(spec, _game_memory(spec, cfg.buffer_size)) for spec in specs]
        self.step = self.updates = 0
        # the fraction of an update owed when updates_per_step * envs is not whole
        self.update_debt = 0.0
        # the losses since the progress bar last showed their mean (a tensor: no sync per update)
        self._loss_sum: torch.Tensor | float = 0.0
        self._losses = 0
        if resume:
            self._restore()
        self.book.open_logs(cfg, self.step)
        for i, game in enumerate(self.games):
            seed = cfg.seed + 1000 * i + self.step
            game.env = make_vector_env(
                game.spec, cfg.num_envs, seed, clip_rewards=game.spec.domain == "atari"
            )
            game.obs, _ = game.env.reset(seed=seed)
            game.ep_ret = np.zeros(cfg.num_envs)
        # Atari's vector env steps in its own threads between send() and recv(); others cannot overlap
        self._overlap = cfg.overlap_envs and all(
            hasattr(g.env, "send") and hasattr(g.env, "recv") for g in self.games
        )
        self.resolved["overlap_envs"] = self._overlap
        self._next_eval = (self.step // cfg.eval_interval + 1) * cfg.eval_interval
        self._next_ckpt = (self.step // cfg.checkpoint_interval + 1) * cfg.checkpoint_interval
        self._saved_step = self.step if resume else -1  # the step of the checkpoint on disk
        self._live_teachers: list[NetworkTeacher] = []  # lent by as_teacher: told of each update
        self.eval_seconds = 0.0  # spent in evaluate() by this process (benchmarks take it out)
        self._checkpoint_due = False
        self._closed = False
        self.bar = progress(
            cfg.total_steps, f"dqn {cfg.env_id}", initial=self.step, unit="step", disable=not show_progress
        )

    @property
    def writer(self) -> SummaryWriter:
        """The run's TensorBoard writer."""
        return self.book.writer

    @property
    def next_eval(self) -> int:
        """The env step at which the next evaluation falls due (``run(trainer.next_eval)`` stops
        right after it)."""
        # evaluations come after a vector step: one due already is done after the next one
        return min(max(self._next_eval, self.step + 1), self.cfg.total_steps)

    def wall(self) -> float:
        """Seconds of work on this run, across resumes."""
        return self.book.wall()

    def cpu(self) -> float | None:
        """CPU seconds of this run's process, across resumes (see :meth:`RunBook.cpu`)."""
        return self.book.cpu()

    def as_teacher(self, task: int = 0, name: str = "learning DQN teacher") -> NetworkTeacher:
        """The online network, as a Q-value teacher for game ``task``, live: it is the network being
        trained (no copy), and its :attr:`~poldist.teachers.NetworkTeacher.version` is bumped at every
        optimizer step, so copies elsewhere (Ray actors) know when to refresh."""
        teacher = NetworkTeacher(self.online, self.games[task].spec, "q", task, name)
        self._live_teachers.append(teacher)
        return teacher

    def _restore(self) -> None:
        ckpt = self.book.restore()
        self.online.load_state_dict(RunBook.module_state(ckpt, "online"))
        self.target.load_state_dict(RunBook.module_state(ckpt, "target"))
        RunBook.restore_optimizer(ckpt, self.optimizer)
        for i, game in enumerate(self.games):  # "memory": single-game checkpoints of version 0.1.0
            game.memory.load_bytes(ckpt.blobs.get(f"memory_{i}") or ckpt.blobs["memory"])
        c = ckpt.metadata["counters"]
        self.step, self.updates = c["step"], c["updates"]
        self.update_debt = c.get("update_debt", 0.0)  # absent in checkpoints before 0.2

    def checkpoint(self) -> None:
        """Write the resumable state (networks, optimizer, memories, counters, RNGs) atomically."""
        self.book.save_state(
            "dqn-state",
            self.cfg,
            {"online": self.online, "target": self.target},
            self.optimizer,
            {"step": self.step, "updates": self.updates, "update_debt": self.update_debt},
            {f"memory_{i}": g.memory.write_npz for i, g in enumerate(self.games)},
        )
        self._saved_step = self.step
        self._checkpoint_due = False

    def eval_seed(self) -> int:
        """The first env seed of an evaluation at the current step: ``seed + 10**6`` with
        ``eval_seeds="fixed"``, else a seed drawn from the run seed and the step (a new sample of
        starting conditions at every evaluation, none shared with training's env seeds)."""
        if self.cfg.eval_seeds == "fixed":
            return self.cfg.seed + 10**6
        return env_seed(self.cfg.seed, "dqn-eval", self.step)

    def evaluate(self) -> list[EvalResult]:
        """Score the online network on every game now (``eval_episodes`` episodes at
        ``eval_epsilon``, env seed :meth:`eval_seed`) and log it: one row per game in ``evals.csv``."""
        cfg = self.cfg
        start = time.perf_counter()
        results = [
            evaluate(
                lambda o, i=i: self.online(o, i),
                game.spec,
                cfg.eval_episodes,
                epsilon=cfg.eval_epsilon,
                seed=self.eval_seed(),
                device=self.device,
            )
            for i, game in enumerate(self.games)
        ]
        self.eval_seconds += time.perf_counter() - start
        self.book.log_eval(
            self.step,
            results,
            env_ids=[g.spec.env_id for g in self.games],
            updates=self.updates,
            env_steps=[self.step] * len(self.games),
        )
        return results

    def _act(self, eps: float) -> None:
        """One vector step of every game's envs, epsilon-greedy on the online network; store it."""
        self._store([(game.env.step(a), a) for game, a in zip(self.games, self._actions(eps))])

    def _actions(self, eps: float) -> list[np.ndarray]:
        """Every game's ``(num_envs,)`` epsilon-greedy actions on its current observations."""
        actions = []
        for i, game in enumerate(self.games):
            with torch.no_grad():
                actions.append(
                    epsilon_greedy(self.online(to_device(game.obs, self.device), i), eps, self.rng)
                )
        return actions

    def _overlapped_step(self, eps: float) -> None:
        """``overlap_envs``: send every game's actions, do the updates owed while the envs step in
        their threads, then receive and store the transitions."""
        actions = self._actions(eps)
        for game, a in zip(self.games, actions):
            game.env.send(a)
        self._learn(eps, steps=self.cfg.num_envs * len(self.games))
        self._store([(game.env.recv(), a) for game, a in zip(self.games, actions)])

    def _store(self, stepped: list[tuple[tuple[Any, ...], np.ndarray]]) -> None:
        """Store each game's vector step ``((next_obs, reward, terminated, truncated, info), actions)``."""
        cfg = self.cfg
        for game, ((next_obs, reward, terminated, truncated, info), actions) in zip(self.games, stepped):
            stored_next, done = final_observations(next_obs, terminated, truncated, info)
            game.memory.add(obs=game.obs, next_obs=stored_next, action=actions, reward=reward, done=done)
            game.ep_ret += reward
            for j in np.flatnonzero(terminated | truncated):
                self.writer.add_scalar(f"train/{game.spec.env_id}/episode_return", game.ep_ret[j], self.step)
                game.ep_ret[j] = 0.0
            game.obs = next_obs
            self.step += cfg.num_envs
        self.bar.update(cfg.num_envs * len(self.games))

    def _learn(self, eps: float, steps: int = 0) -> None:
        """The gradient updates owed for the env steps just taken (none before ``learning_starts``);
        ``steps``: env steps taken but not yet counted (``overlap_envs``: still in the envs)."""
        cfg, games, online, target = self.cfg, self.games, self.online, self.target
        if self.step + steps < cfg.learning_starts:
            return
        self.update_debt += cfg.num_envs * len(games) * cfg.updates_per_step
        while self.update_debt >= 1:
            self.update_debt -= 1
            k = self.updates % len(games)  # each minibatch from one game
            sample = games[k].memory.sample(cfg.batch_size, self.rng)
            batch = {key: to_device(v, self.device) for key, v in sample.items()}
            loss = double_dqn_loss(lambda x, k=k: online(x, k), lambda x, k=k: target(x, k), batch, cfg.gamma)
            weight = kickstart_weight(self.step, cfg)
            if weight > 0:  # kickstarting: the teacher labels the same minibatch
                with torch.no_grad():
                    teacher_out = self.kick_teachers[k](batch["obs"])
                loss = loss + weight * self.kick_loss(online(batch["obs"], k), teacher_out)
            if not torch.isfinite(loss):  # stop before a NaN reaches the weights (and a checkpoint)
                raise PoldistError(
                    f"DQN loss became {loss.item()} at update {self.updates} (env step {self.step}); "
                    f"last good checkpoint kept in {self.run_dir / 'state'}"
                )
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            clip_grad_norm(list(online.parameters()), cfg.max_grad_norm)
            self.optimizer.step()
            self._loss_sum, self._losses = self._loss_sum + loss.detach(), self._losses + 1
            for teacher in self._live_teachers:
                teacher.weights_changed()
            self.updates += 1
            if self.updates % cfg.target_update == 0:
                target.load_state_dict(online.state_dict())
            if self.updates % 1000 == 0:
                self.writer.add_scalar("train/loss", loss.item(), self.step)
                self.writer.add_scalar("train/epsilon", eps, self.step)
                if self.kick_teachers:
                    self.writer.add_scalar("train/kickstart_weight", weight, self.step)
                self.writer.add_scalar(
                    "train/steps_per_second", self.step / max(self.wall(), 1e-9), self.step
                )

    def _postfix(self, results: list[EvalResult], eps: float) -> dict[str, str]:
        """The progress bar's readout at an evaluation: scores, epsilon and the mean loss of the
        updates since the last one (none before ``learning_starts``)."""
        postfix = {"score": " ".join(f"{r.mean:.2f}" for r in results), "eps": f"{eps:.2f}"}
        if self._losses:
            postfix["loss"] = loss_text(float(self._loss_sum) / self._losses)
        self._loss_sum, self._losses = 0.0, 0
        return postfix

    def run(self, until: int) -> list[EvalResult] | None:
        """Train until ``until`` env steps (at most ``cfg.total_steps``), all games together,
        doing the evaluations and checkpoints that fall due on the way.

        Returns:
            The results (one per game) of the evaluation at the step where it stopped, if one fell
            due there; else ``None``.
        """
        cfg = self.cfg
        until = min(until, cfg.total_steps)
        results = None
        while self.step < until:
            if self._checkpoint_due:  # the state of the step being left, with what the caller did there
                self.checkpoint()
            eps = linear_epsilon(self.step, cfg)
            if self._overlap:
                self._overlapped_step(eps)
            else:
                self._act(eps)
                self._learn(eps)
            results = None
            if self.step >= self._next_eval or self.step >= cfg.total_steps:
                self._next_eval += cfg.eval_interval
                results = self.evaluate()
                self.bar.set_postfix(self._postfix(results, eps))
            if self.step >= self._next_ckpt or self.step >= cfg.total_steps:
                self._next_ckpt += cfg.checkpoint_interval
                self._checkpoint_due = True
        return results

    def close(self) -> None:
        """Close envs, progress bar and logs; no checkpoint is written (see :meth:`finish`)."""
        if self._closed:
            return
        self._closed = True
        self.bar.close()
        for game in self.games:
            game.env.close()
        self.book.close()

    def __enter__(self) -> DQNTrainer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def finish(self, *, stopped_early: bool | None = None) -> dict[str, Any]:
        """End the run: checkpoint the current step (unless on disk already), close, save
        ``<run_dir>/teacher`` (model checkpoint) and ``summary.json``.

        Args:
            stopped_early: recorded in the summary; default: whether ``total_steps`` was not reached.

        Returns:
            The summary; its ``final_eval``: the rows of the last evaluation in ``evals.csv``.
        """
        cfg = self.cfg
        if self._saved_step != self.step:  # due at total_steps, or a caller stopped early
            self.checkpoint()
        self.close()
        rows = EvalLog.read(self.book.evals.path)
        last_step = rows[-1]["step"]
        wall = self.wall()
        summary = {
            "env_id": cfg.env_id,
            "env_steps": self.step,
            "updates": self.updates,
            "wall_seconds": wall,
            "cpu_seconds": self.cpu(),
            "steps_per_second": self.step / max(wall, 1e-9),
            "final_eval": [r for r in rows if r["step"] == last_step],
            "stopped_early": self.step < cfg.total_steps if stopped_early is None else stopped_early,
            "device": str(self.device),
            "machine": machine_info(),
            "config": asdict(cfg),  # as given (config.json); what ran of it: "resolved"
            "resolved": self.resolved,
        }
        save_model(
            self.run_dir / "teacher",
            self.online,
            [g.spec for g in self.games],
            extra={"training": summary, "seed": cfg.seed},
        )
        self.book.write_summary(summary)
        return summary


def train_dqn(cfg: DQNConfig, run_dir: str | Path, *, resume: bool = False) -> dict[str, Any]:
    """Train a Double-DQN teacher to ``cfg.total_steps``; write ``<run_dir>/teacher`` (model
    checkpoint) and the summary. :class:`DQNTrainer` in one call; a caller that acts between
    evaluations (stops early, records something) steps a :class:`DQNTrainer` itself.

    Returns:
        The final summary (also written to ``<run_dir>/summary.json``).
    """
    with DQNTrainer(cfg, run_dir, resume=resume) as trainer:
        trainer.run(cfg.total_steps)
        return trainer.finish(stopped_early=False)


def config_from_dict(d: dict[str, Any]) -> DQNConfig:
    """A :class:`DQNConfig` from a dict, rejecting unknown keys."""
    names = {f.name for f in fields(DQNConfig)}
    unknown = set(d) - names
    if unknown:
        raise ValueError(f"unknown DQN config keys {sorted(unknown)}")
    return DQNConfig(**d)
