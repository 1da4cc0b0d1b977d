"""Teacher training: Double DQN (van Hasselt et al., 2016) on vector envs.

Read top to bottom: config, the pure update step, then the loop (collect with an
epsilon schedule, store, update, sync the target, evaluate, checkpoint).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.tensorboard import SummaryWriter

from poldist.checkpoints import (
    load_checkpoint,
    pack_optimizer,
    require_metadata,
    save_checkpoint,
    save_model,
    unpack_optimizer,
)
from poldist.envs import EnvSpec, make_env_spec, make_vector_env
from poldist.errors import PoldistError
from poldist.evaluation import EvalResult, epsilon_greedy, evaluate
from poldist.losses import make_loss
from poldist.memory import FrameStackMemory, ReplayMemory
from poldist.networks import (
    DEVICE_HELP,
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
from poldist.runs import EvalLog, machine_info, prepare_run_dir, write_json
from poldist.teachers import NetworkTeacher, check_teacher_fits, expand_teacher_names, load_teacher


@dataclass
class DQNConfig:
    """Hyper-parameters of teacher training (defaults: MinAtar, a few CPU-minutes per 1M steps)."""

    env_id: str = "MinAtar/Breakout-v1"
    total_steps: int = 3_000_000  # env steps, all envs together
    num_envs: int = 8
    seed: int = 0
    lr: float = 1e-4
    batch_size: int = 64
    buffer_size: int = 200_000
    gamma: float = 0.99
    learning_starts: int = 20_000  # env steps of random-ish play before updates
    updates_per_step: float = 0.125  # gradient updates per env step (1 per vector step of 8)
    target_update: int = 2_000  # updates between target-network syncs
    eps_start: float = 1.0
    eps_end: float = 0.01
    eps_fraction: float = 0.1  # fraction of total_steps over which epsilon decays
    max_grad_norm: float = 10.0
    eval_interval: int = 100_000  # env steps
    eval_episodes: int = 20
    eval_epsilon: float = 0.05
    checkpoint_interval: int = 100_000  # env steps
    torch_threads: int = 1  # small nets: one thread beats two on a 2-core machine
    head_hidden: int = 0  # per-game hidden layer of a multi-task network (the paper's: 128)
    network: str = "teacher"  # teacher | net1 | net2 | net3 | widths: a student-sized net by DQN
    # Kickstarting (Schmitt et al. 2018): add weight * distillation loss towards a teacher to the
    # DQN loss, the weight falling linearly to 0 over kickstart_decay * total_steps env steps, so
    # the student starts from the teacher's policy and can then surpass it by its own RL.
    kickstart_teacher: str = ""  # checkpoint or shipped name; several, comma-separated: one per game
    kickstart_weight: float = 1.0
    kickstart_decay: float = 0.5
    # auto: mse for Q-value teachers (MSE keeps values the TD loss agrees with; a KL-matched student
    # collapsed once the weight reached 0, RESULTS.md section 5), kl at tau 1 for logits teachers;
    # or kl | nll | mse | erd, KL/ERD at the teacher's default temperature
    kickstart_loss: str = "auto"
    device: str = field(default="auto", metadata={"help": DEVICE_HELP})
    # warm start: the online and target networks start from this model checkpoint's weights (same
    # architecture); the memory, optimizer and counters start afresh (e.g. a run carried to another
    # machine as its network alone: scripts/carry_run.py weights)
    init_weights: str = ""


def teacher_architecture(spec: EnvSpec) -> Architecture:
    """The paper's teacher for a domain: Nature DQN (Atari) or MinAtar's DQN network."""
    if spec.domain == "atari":
        return nature_dqn(spec.n_actions, spec.obs_shape[0])
    return minatar_dqn(spec.obs_shape[0], spec.n_actions)


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


def _rng_state(rng: np.random.Generator) -> dict[str, Any]:
    return rng.bit_generator.state


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


def train_dqn(
    cfg: DQNConfig,
    run_dir: str | Path,
    *,
    resume: bool = False,
    on_start: Callable[[Path], None] | None = None,
    on_eval: Callable[[int, QNetwork, list[EvalResult]], bool | None] | None = None,
) -> dict[str, Any]:
    """Train a Double-DQN teacher; write ``<run_dir>/teacher`` (model checkpoint).

    Several comma-separated env ids train the paper's multi-task DQN baseline: one network
    with one head per game, one replay memory per game, every game's envs stepped in turn
    (``total_steps`` counts all games together), each minibatch from one game (round robin).

    Networks (online, target, kickstarting teachers) live on ``cfg.device``; the replay
    memories stay in host memory (uint8 numpy) and only sampled minibatches go to the device.

    ``on_start(run_dir)`` is called once the run directory is validated (the CLI records
    its command line there). ``on_eval(env_step, online_network, results)`` is called after
    each periodic evaluation, one result per game (online distillation follows the
    learning teacher there); if it returns True, training stops there (a time-to-score
    benchmark stops once its target is reached).

    Returns:
        The final summary (also written to ``<run_dir>/summary.json``).
    """
    ids = [e.strip() for e in cfg.env_id.split(",") if e.strip()]
    specs = [make_env_spec(e) for e in ids]  # fails before any work on a bad id
    device = resolve_device(cfg.device)  # an unknown or absent device fails before the run dir
    kick_teachers = _kickstart_teachers(cfg, specs, device) if cfg.kickstart_teacher else []
    kick_loss = (
        make_loss(kickstart_loss_name(cfg, kick_teachers[0]), kick_teachers[0].default_tau)
        if kick_teachers
        else None
    )
    run_dir = prepare_run_dir(run_dir, resume=resume)
    if on_start is not None:
        on_start(run_dir)
    torch.set_num_threads(cfg.torch_threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)

    arch = student_architecture(teacher_architecture(specs[0]), cfg.network)
    arch = replace(
        arch,
        obs_shape=(max(s.obs_shape[0] for s in specs), *arch.obs_shape[1:]),  # fewer channels: padded
        n_actions=tuple(s.n_actions for s in specs),
        head_hidden=cfg.head_hidden,
    )
    # built on the CPU (its RNG draws the initial weights whatever the device), then moved
    online, target = QNetwork(arch).to(device), QNetwork(arch).to(device)
    if cfg.init_weights and not resume:
        _init_from(online, cfg.init_weights)
    target.load_state_dict(online.state_dict())
    optimizer = adam(online.parameters(), lr=cfg.lr, eps=1.5e-4)
    games = [_Game(spec, _game_memory(spec, cfg.buffer_size)) for spec in specs]
    step = updates = 0
    wall_before = update_debt = 0.0
    if resume:
        ckpt = load_checkpoint(run_dir / "state")
        require_metadata(ckpt, ("counters", "optimizer", "rng"), run_dir / "state")
        online.load_state_dict({k[7:]: v for k, v in ckpt.tensors.items() if k.startswith("online.")})
        target.load_state_dict({k[7:]: v for k, v in ckpt.tensors.items() if k.startswith("target.")})
        unpack_optimizer(optimizer, ckpt.tensors, ckpt.metadata["optimizer"])
        for i, game in enumerate(games):  # "memory": single-game checkpoints of version 0.1.0
            game.memory.load_bytes(ckpt.blobs.get(f"memory_{i}") or ckpt.blobs["memory"])
        c = ckpt.metadata["counters"]
        step, updates, wall_before = c["step"], c["updates"], c["wall_seconds"]
        update_debt = c.get("update_debt", 0.0)  # absent in checkpoints before 0.2
        rng.bit_generator.state = ckpt.metadata["rng"]
        torch.set_rng_state(ckpt.tensors["torch_rng"])
    write_json(run_dir / "config.json", cfg)
    writer = SummaryWriter(str(run_dir / "tb"))
    evals = EvalLog(run_dir / "evals.csv", resume_step=step if resume else None)

    def checkpoint() -> None:
        opt_tensors, opt_info = pack_optimizer(optimizer)
        tensors = {f"online.{k}": v for k, v in online.state_dict().items()}
        tensors.update({f"target.{k}": v for k, v in target.state_dict().items()})
        tensors.update(opt_tensors, torch_rng=torch.get_rng_state())
        meta = {
            "kind": "dqn-state",
            "config": asdict(cfg),
            "optimizer": opt_info,
            "rng": _rng_state(rng),
            # update_debt: the fraction of an update owed when updates_per_step * envs is not whole
            "counters": {
                "step": step,
                "updates": updates,
                "wall_seconds": wall(),
                "update_debt": update_debt,
            },
        }
        blobs = {f"memory_{i}": g.memory.write_npz for i, g in enumerate(games)}
        save_checkpoint(run_dir / "state", tensors, meta, blobs)

    start = time.perf_counter()

    def wall() -> float:
        return wall_before + time.perf_counter() - start

    for i, game in enumerate(games):
        seed = cfg.seed + 1000 * i + step
        game.env = make_vector_env(game.spec, cfg.num_envs, seed, clip_rewards=game.spec.domain == "atari")
        game.obs, _ = game.env.reset(seed=seed)
        game.ep_ret = np.zeros(cfg.num_envs)
    next_eval = (step // cfg.eval_interval + 1) * cfg.eval_interval
    next_ckpt = (step // cfg.checkpoint_interval + 1) * cfg.checkpoint_interval
    bar = progress(cfg.total_steps, f"dqn {cfg.env_id}", initial=step, unit="step")
    stopped = False
    while step < cfg.total_steps and not stopped:
        eps = linear_epsilon(step, cfg)
        for i, game in enumerate(games):
            with torch.no_grad():
                actions = epsilon_greedy(online(to_device(game.obs, device), i), eps, rng)
            next_obs, reward, terminated, truncated, info = game.env.step(actions)
            stored_next, done = final_observations(next_obs, terminated, truncated, info)
            game.memory.add(obs=game.obs, next_obs=stored_next, action=actions, reward=reward, done=done)
            game.ep_ret += reward
            for j in np.flatnonzero(terminated | truncated):
                writer.add_scalar(f"train/{game.spec.env_id}/episode_return", game.ep_ret[j], step)
                game.ep_ret[j] = 0.0
            game.obs = next_obs
            step += cfg.num_envs
        bar.update(cfg.num_envs * len(games))

        if step >= cfg.learning_starts:
            update_debt += cfg.num_envs * len(games) * cfg.updates_per_step
            while update_debt >= 1:
                update_debt -= 1
                k = updates % len(games)  # each minibatch from one game
                sample = games[k].memory.sample(cfg.batch_size, rng)
                batch = {key: to_device(v, device) for key, v in sample.items()}
                loss = double_dqn_loss(
                    lambda x, k=k: online(x, k), lambda x, k=k: target(x, k), batch, cfg.gamma
                )
                weight = kickstart_weight(step, cfg)
                if weight > 0:  # kickstarting: the teacher labels the same minibatch
                    with torch.no_grad():
                        teacher_out = kick_teachers[k](batch["obs"])
                    loss = loss + weight * kick_loss(online(batch["obs"], k), teacher_out)
                if not torch.isfinite(loss):  # stop before a NaN reaches the weights (and a checkpoint)
                    raise PoldistError(
                        f"DQN loss became {loss.item()} at update {updates} (env step {step}); "
                        f"last good checkpoint kept in {run_dir / 'state'}"
                    )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(online.parameters(), cfg.max_grad_norm, foreach=True)
                optimizer.step()
                updates += 1
                if updates % cfg.target_update == 0:
                    target.load_state_dict(online.state_dict())
                if updates % 1000 == 0:
                    writer.add_scalar("train/loss", loss.item(), step)
                    writer.add_scalar("train/epsilon", eps, step)
                    if kick_teachers:
                        writer.add_scalar("train/kickstart_weight", weight, step)
                    writer.add_scalar("train/steps_per_second", step / max(wall(), 1e-9), step)

        if step >= next_eval or step >= cfg.total_steps:
            next_eval += cfg.eval_interval
            results = [
                evaluate(
                    lambda o, i=i: online(o, i),
                    game.spec,
                    cfg.eval_episodes,
                    epsilon=cfg.eval_epsilon,
                    seed=cfg.seed + 10**6,
                    device=device,
                )
                for i, game in enumerate(games)
            ]
            for i, res in enumerate(results):
                writer.add_scalar(f"eval/{games[i].spec.env_id}/score", res.mean, step)
                evals.append(
                    step=step,
                    task=i,
                    updates=updates,
                    env_steps=step,
                    wall_seconds=wall(),
                    score=res.mean,
                    ci_low=res.ci_low,
                    ci_high=res.ci_high,
                    episodes=res.episodes,
                )
            bar.set_postfix(score=" ".join(f"{r.mean:.2f}" for r in results), eps=f"{eps:.2f}")
            if on_eval is not None:
                # fused Adam leaves the weights' version counters alone, and a watcher of the live
                # network (the Ray backend) spots changes by them: rewrite the weights in place
                online.load_state_dict(online.state_dict())
            if on_eval is not None and on_eval(step, online, results):
                stopped = True  # the final checkpoint and summary follow
        if step >= next_ckpt or step >= cfg.total_steps or stopped:
            next_ckpt += cfg.checkpoint_interval
            checkpoint()
    bar.close()
    for game in games:
        game.env.close()
    writer.close()
    rows = evals.read(evals.path)
    last_step = rows[-1]["step"]
    summary = {
        "env_id": cfg.env_id,
        "env_steps": step,
        "updates": updates,
        "wall_seconds": wall(),
        "steps_per_second": step / max(wall(), 1e-9),
        "final_eval": [r for r in rows if r["step"] == last_step],
        "stopped_early": stopped,
        "device": str(device),
        "machine": machine_info(),
        "config": asdict(cfg),
    }
    save_model(
        run_dir / "teacher", online, [g.spec for g in games], extra={"training": summary, "seed": cfg.seed}
    )
    write_json(run_dir / "summary.json", summary)
    return summary


def config_from_dict(d: dict[str, Any]) -> DQNConfig:
    """A :class:`DQNConfig` from a dict, rejecting unknown keys."""
    names = {f.name for f in fields(DQNConfig)}
    unknown = set(d) - names
    if unknown:
        raise ValueError(f"unknown DQN config keys {sorted(unknown)}")
    return DQNConfig(**d)
