"""Config dataclasses: one documented field each, checked once, at the edge.

A config field is declared with :func:`option`, which keeps its help text (shown by
``--help``), its allowed values and its lower bound next to its default::

    lr: float = option(1e-4, "Adam learning rate", minimum=0.0)
    loss: Literal["kl", "nll", "mse"] = option("kl", "distillation loss")

:func:`check_config` checks a built config against its fields (type, the ``Literal`` choices of a
string option, bound), so a
command refuses a bad value in one line before it creates anything on disk;
:func:`config_values` does the same for the raw JSON of a ``--config`` file.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import typing
from collections.abc import Sequence
from typing import Any, Literal

from poldist.errors import PoldistError
from poldist.networks import DEVICE_HELP
from poldist.schema import is_kind

_KINDS = {int: "int", float: "float", bool: "bool", str: "str"}


def option(
    default: Any,
    help: str,
    *,
    choices: Sequence[Any] | None = None,
    minimum: float | None = None,
) -> Any:
    """A config field: its default, its help (say the unit), allowed values, lower bound."""
    meta: dict[str, Any] = {"help": help}
    if choices is not None:
        meta["choices"] = tuple(choices)
    if minimum is not None:
        meta["minimum"] = minimum
    return dataclasses.field(default=default, metadata=meta)


def _kind(cls: type, name: str) -> str:
    hint = typing.get_type_hints(cls)[name]
    if typing.get_origin(hint) is Literal:
        return "str"
    if hint not in _KINDS:
        raise TypeError(
            f"{cls.__name__}.{name}: config fields must be int, float, bool, str or a Literal, not {hint}"
        )
    return _KINDS[hint]


def field_choices(cls: type, name: str) -> tuple[Any, ...] | None:
    """The allowed values of field ``name`` of ``cls``: its ``Literal[...]`` annotation's (or
    ``option(choices=...)``'s), or ``None`` for a free value."""
    hint = typing.get_type_hints(cls)[name]
    if typing.get_origin(hint) is Literal:
        return typing.get_args(hint)
    return {f.name: f for f in dataclasses.fields(cls)}[name].metadata.get("choices")


def check_value(cls: type, name: str, value: Any, where: str) -> None:
    """Raise a one-line :class:`PoldistError` if ``value`` does not fit field ``name`` of ``cls``."""
    f = {f.name: f for f in dataclasses.fields(cls)}[name]
    kind = _kind(cls, name)
    flag = "--" + name.replace("_", "-")
    if not is_kind(value, kind):
        raise PoldistError(
            f"{where}: {name} ({flag}) must be a{'n' if kind == 'int' else ''} {kind}, got {value!r}"
        )
    choices = field_choices(cls, name)
    if choices is not None and value not in choices:
        raise PoldistError(f"{where}: {name} ({flag}) must be one of {list(choices)}, got {value!r}")
    minimum = f.metadata.get("minimum")
    if minimum is not None and value < minimum:
        raise PoldistError(f"{where}: {name} ({flag}) must be at least {minimum}, got {value!r}")


def check_config(cfg: Any, where: str = "config") -> None:
    """Check every field of a config dataclass instance (type, choices, lower bound)."""
    for f in dataclasses.fields(cfg):
        check_value(type(cfg), f.name, getattr(cfg, f.name), where)


def config_values(cls: type, raw: Any, where: str) -> dict[str, Any]:
    """The fields of a decoded ``--config`` JSON for ``cls``, each checked.

    Raises:
        PoldistError: ``raw`` is not a JSON object, names unknown fields, or holds a value of
            the wrong type or out of range (one line, naming the field and its flag).
    """
    if not isinstance(raw, dict):
        raise PoldistError(
            f"{where} must hold a JSON object of {cls.__name__} fields, got {type(raw).__name__}"
        )
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(raw) - set(names))
    if unknown:
        raise PoldistError(f"{where} has unknown keys {unknown}; {cls.__name__} has {names}")
    for name, value in raw.items():
        check_value(cls, name, value, where)
    return dict(raw)


# --------------------------------------------------------------------------- the configs

# the string options' values: each is also the key set of its registry (tests/test_registries.py)
LossName = Literal["kl", "nll", "mse", "erd"]
ControlName = Literal["teacher", "student", "mixed"]
OptimizerName = Literal["rmsprop", "adam"]
LrSchedule = Literal["constant", "linear", "cosine"]
Backend = Literal["local", "ray"]
LOSS_CHOICES = typing.get_args(LossName)
CONTROL_CHOICES = typing.get_args(ControlName)
OPTIMIZER_CHOICES = typing.get_args(OptimizerName)
LR_SCHEDULE_CHOICES = typing.get_args(LrSchedule)
BACKEND_CHOICES = typing.get_args(Backend)


@dataclasses.dataclass
class DQNConfig:
    """Hyper-parameters of teacher training (defaults: MinAtar, a few CPU-minutes per 1M steps).

    Kickstarting (Schmitt et al. 2018) adds ``weight x`` a distillation loss towards a teacher to
    the DQN loss, the weight falling linearly to 0 over ``kickstart_decay x total_steps`` env steps,
    so the student starts from the teacher's policy and can then surpass it by its own RL.
    """

    env_id: str = option("MinAtar/Breakout-v1", "the game: MinAtar/<Game>-v1 or ALE/<Game>-v5")
    total_steps: int = option(3_000_000, "length of training, in env steps (all envs together)", minimum=1)
    num_envs: int = option(8, "parallel envs", minimum=1)
    overlap_envs: bool = option(
        False,
        "step the envs in their own threads while the network updates (envs with send/recv: Atari); "
        "each update then samples the memory before that env step's transitions are stored",
    )
    seed: int = option(0, "run seed (weights, exploration, env seeds)", minimum=0)
    lr: float = option(1e-4, "Adam learning rate", minimum=0.0)
    batch_size: int = option(64, "transitions per update", minimum=1)
    buffer_size: int = option(200_000, "replay memory, in transitions", minimum=1)
    gamma: float = option(0.99, "discount factor per agent step", minimum=0.0)
    learning_starts: int = option(20_000, "env steps of play before the first update", minimum=0)
    updates_per_step: float = option(
        0.125, "gradient updates per env step (1 per vector step of 8)", minimum=0.0
    )
    target_update: int = option(2_000, "updates between target-network syncs", minimum=1)
    eps_start: float = option(1.0, "epsilon-greedy probability at the start", minimum=0.0)
    eps_end: float = option(0.01, "epsilon-greedy probability after the decay", minimum=0.0)
    eps_fraction: float = option(
        0.1, "fraction of total_steps over which epsilon decays linearly", minimum=0.0
    )
    max_grad_norm: float = option(10.0, "gradient-norm clip", minimum=0.0)
    eval_interval: int = option(100_000, "env steps between evaluations", minimum=1)
    eval_episodes: int = option(20, "episodes per evaluation", minimum=1)
    eval_epsilon: float = option(0.05, "epsilon-greedy probability while evaluating", minimum=0.0)
    eval_seeds: Literal["fresh", "fixed"] = option(
        "fresh",
        # fixed seeds replay the same starting conditions at every evaluation, so a run ended on its
        # best reading is ended on that sample's noise (the Pong teacher read 2 points high)
        "env seeds of the evaluations: fresh (new seeds each evaluation, drawn from run seed and step) | "
        "fixed (seed + 10**6 every time: the scheme the shipped MinAtar teachers were trained with)",
    )
    checkpoint_interval: int = option(100_000, "env steps between checkpoints (resume points)", minimum=1)
    torch_threads: int = option(1, "torch CPU threads (small nets: one beats two on 2 cores)", minimum=1)
    head_hidden: int = option(
        0, "multi-task: a hidden layer of this width per game (the paper's: 128)", minimum=0
    )
    network: str = option("teacher", "teacher | net1 | net2 | net3 | widths such as '16,16,16/128'")
    kickstart_teacher: str = option(
        "", "kickstarting: teacher checkpoint or shipped name; one per game, comma-separated"
    )
    kickstart_weight: float = option(1.0, "kickstarting: the distillation loss's initial weight", minimum=0.0)
    kickstart_decay: float = option(
        0.5, "kickstarting: fraction of total_steps over which the weight falls to 0", minimum=0.0
    )
    kickstart_loss: Literal["auto", "kl", "nll", "mse", "erd"] = option(
        "auto",
        # MSE keeps values the TD loss agrees with (a KL-matched student collapsed once the weight
        # reached 0, RESULTS.md section 5)
        "kickstarting: auto (mse for Q-value teachers, kl at tau 1 for logits) | kl | nll | mse | erd",
    )
    device: str = option("auto", DEVICE_HELP)
    init_weights: str = option(
        "",
        "warm start: the networks start from this model checkpoint's weights (same architecture); the "
        "memory, optimizer and counters start afresh (e.g. scripts/carry_run.py weights)",
    )

    def validate(self) -> None:
        """Refuse, in one line, a field of the wrong type or out of range (before any run dir)."""
        check_config(self, "train-teacher")
        for name in ("gamma", "eps_start", "eps_end", "eval_epsilon"):
            if getattr(self, name) > 1:
                raise PoldistError(f"train-teacher: {name} must be at most 1, got {getattr(self, name)}")


@dataclasses.dataclass
class DistillConfig:
    """Hyper-parameters of distillation (defaults: MinAtar, about a minute on 2 cores).

    The paper does 10,000 updates per 54,000 new teacher transitions (5.4 per update)
    from a 540,000-transition memory, with RMSProp; MinAtar keeps the ratio and uses a
    100,000-transition memory.
    """

    teacher: str = option(
        "minatar/breakout", "checkpoint dir or shipped name; several, comma-separated: multi-task"
    )
    env_id: str = option("", "env to distil on; empty: the teacher's")
    student: str = option(
        "net2",
        "teacher | net1 | net2 | net3 or widths: conv channels/fc units such as '16,16,16/128', a conv "
        "with its own kernel and stride as '8k4s2' ('16,8k4s2/34': a second conv, 4x4 of stride 2)",
    )
    head_hidden: int = option(
        0, "multi-task: a hidden layer of this width per game (the paper's: 128)", minimum=0
    )
    loss: LossName = option("kl", "kl | nll | mse | erd (entropy-regularised)")
    tau: float = option(0.0, "KL temperature; 0: 0.01 for Q-values, 1 for logits", minimum=0.0)
    epsilon: float = option(0.05, "epsilon-greedy probability of whoever acts", minimum=0.0)
    control: ControlName = option(
        "teacher",
        "who acts while the teacher labels: teacher (the paper) | student | mixed (DAgger)",
    )
    beta_start: float = option(1.0, "mixed: probability that the teacher acts, at the start", minimum=0.0)
    beta_end: float = option(0.0, "mixed: probability that the teacher acts, after the decay", minimum=0.0)
    beta_decay: float = option(
        0.5, "mixed: fraction of the updates over which beta falls linearly", minimum=0.0
    )
    task_schedule: Literal["round_robin", "random"] = option(
        "round_robin", "multi-task: round_robin | random (per minibatch)"
    )
    num_envs: int = option(8, "parallel envs per game", minimum=1)
    backend: Backend = option("local", "teacher play: local | ray (actors; pip install 'poldist[ray]')")
    ray_address: str = option("", "ray: cluster address; empty: a local ray.init()")
    ray_actors: int = option(2, "ray: teacher-play actors per game", minimum=1)
    labeller: Literal["torch", "onnxruntime", "auto"] = option(
        "auto",
        "who computes the teacher's outputs while collecting (local backend): torch (bit-identical "
        "to the teacher's PyTorch network) | onnxruntime (CPU teachers, 2-5x faster; labels within "
        "1e-5, so greedy actions may differ on near-ties) | auto (onnxruntime where it can, else torch)",
    )
    labeller_threads: int = option(
        0,
        "onnxruntime labeller threads; 0: 2 for a teacher of >= 1M multiply-adds per observation "
        "(Atari's Nature DQN) when 2 cores are usable, else 1",
        minimum=0,
    )
    env_groups: int = option(
        1,
        "collection envs of a game in this many pipelined groups: one steps while the teacher labels the "
        "other (teacher acting, local backend; the same data as 1 group; 2 speed up Atari, where ALE "
        "steps outside the GIL, and slow MinAtar)",
        minimum=1,
    )
    updates: int = option(30_000, "student minibatch updates", minimum=0)
    transitions_per_update: float = option(5.4, "fresh teacher transitions per update, per game", minimum=0.0)
    learning_starts: int = option(10_000, "teacher transitions per game before the first update", minimum=0)
    memory_size: int = option(100_000, "replay memory per game, in transitions", minimum=1)
    batch_size: int = option(32, "transitions per update", minimum=1)
    optimizer: OptimizerName = option("rmsprop", "rmsprop | adam")
    lr: float = option(5e-4, "learning rate", minimum=0.0)
    lr_schedule: LrSchedule = option(
        "constant",
        "constant | linear | cosine: the learning rate falls to 0 at --updates",
    )
    tau_gap: float = option(
        0.0,
        "if > 0: each task's KL temperature is this times its teacher's median gap between its two highest "
        "outputs on the transitions collected before its first update (overrides --tau)",
        minimum=0.0,
    )
    eval_interval: int = option(5_000, "updates between evaluations", minimum=1)
    eval_episodes: int = option(20, "episodes per evaluation", minimum=1)
    final_eval_episodes: int = option(200, "episodes of the final score", minimum=1)
    evaluate_teacher: bool = option(True, "score the teacher at the end")
    agreement_states: int = option(
        5_000, "fresh teacher states on which greedy agreement is measured", minimum=1
    )
    checkpoint_interval: int = option(10_000, "updates between checkpoints (resume points)", minimum=1)
    seed: int = option(0, "run seed (weights, sampling, env seeds)", minimum=0)
    env_seeds: Literal["disjoint", "offset"] = option(
        "disjoint",
        "disjoint: each run seed draws its own env seeds for collection, evaluation and final scoring | "
        "offset: the scheme of results made before 0.3 (seed + 1000 * task, seed + 10**6, "
        "seed + 2 * 10**6; neighbouring run seeds share 7 of 8 env streams)",
    )
    torch_threads: int = option(1, "torch CPU threads", minimum=1)
    overlap_collection: bool = option(
        False,
        "collect the next update's teacher transitions in a worker thread while the student updates "
        "(a second core; a student that acts does so with weights one update old)",
    )
    device: str = option("auto", DEVICE_HELP)

    def validate(self) -> None:
        """Refuse, in one line, a field of the wrong type or out of range (before any run dir)."""
        check_config(self, "distill")
        if self.overlap_collection and self.backend != "local":
            raise PoldistError("distill: overlap_collection needs backend local (Ray actors already overlap)")
        for name in ("epsilon", "beta_start", "beta_end"):
            if getattr(self, name) > 1:
                raise PoldistError(f"distill: {name} must be at most 1, got {getattr(self, name)}")
        if self.transitions_per_update <= 0:
            raise PoldistError("distill: transitions_per_update must be positive")
        if self.env_groups > self.num_envs:
            raise PoldistError(
                f"distill: env_groups ({self.env_groups}) must be at most num_envs ({self.num_envs})"
            )
        if self.backend == "ray" and importlib.util.find_spec("ray") is None:
            raise PoldistError("backend ray needs ray: pip install 'poldist[ray]'")


@dataclasses.dataclass
class OnlineConfig:
    """Online distillation: a teacher's DQN run with a student distilled alongside."""

    env_id: str = option("MinAtar/Breakout-v1", "the game: MinAtar/<Game>-v1 or ALE/<Game>-v5")
    total_steps: int = option(1_500_000, "the teacher's training, in env steps", minimum=1)
    interval: int = option(50_000, "teacher env steps between student chunks", minimum=1)
    updates_per_interval: int = option(3_000, "student updates per chunk", minimum=1)
    student: str = option("net1", "teacher | net1 | net2 | net3 or widths such as '8/64'")
    loss: LossName = option("kl", "kl | nll | mse | erd")
    tau: float = option(0.01, "KL temperature", minimum=0.0)
    memory_size: int = option(30_000, "student memory in transitions (small: labels stay recent)", minimum=1)
    batch_size: int = option(64, "student transitions per update", minimum=1)
    eval_episodes: int = option(20, "episodes per evaluation of each", minimum=1)
    seed: int = option(0, "run seed", minimum=0)
    backend: Backend = option("local", "student's teacher play: local | ray")
    ray_address: str = option("", "ray: cluster address; empty: a local ray.init()")
    ray_actors: int = option(2, "ray: teacher-play actors", minimum=1)
    checkpoint_every: int = option(5, "chunks between checkpoints (resume points)", minimum=1)
    device: str = option("auto", DEVICE_HELP + " (teacher and student alike)")

    def validate(self) -> None:
        """Refuse, in one line, a field of the wrong type or out of range (before any run dir)."""
        check_config(self, "online")


# --------------------------------------------------------------------------- resuming a run

# what a resumed run may change: its length may grow; where and how fast it runs may change
# A resume may set the run's length, longer or shorter: a length at or below what is done ends the
# run at its checkpoint (its summary records the counters that ran), e.g. to keep a teacher where
# its evaluations peaked.
RESUME_MAY_RESIZE = ("updates", "total_steps")
RESUME_MAY_CHANGE = ("device", "torch_threads", "ray_address")


def resumed_config(
    cls: type, stored: Any, requested: dict[str, Any], where: str
) -> tuple[Any, dict[str, list[Any]]]:
    """The config of a resumed run: its stored config, with only the changes a resume may make.

    Args:
        stored: the run's recorded ``config.json`` (decoded).
        requested: the fields given on this invocation (flags and ``--config`` file).
        where: the stored config's path, for messages.

    Returns:
        ``(config, changes)``: ``changes`` maps each changed field to ``[old, new]``.

    Raises:
        PoldistError: a stored config that does not fit ``cls``, or a requested value that differs
            from the stored one where a resume may not change it (one line, naming the flag).
    """
    base = config_values(cls, stored, where)
    changes: dict[str, list[Any]] = {}
    for name, new in requested.items():
        old = base.get(name, {f.name: f.default for f in dataclasses.fields(cls)}[name])
        if new == old:
            continue
        flag = "--" + name.replace("_", "-")
        if name not in RESUME_MAY_RESIZE + RESUME_MAY_CHANGE:
            allowed = ", ".join("--" + n.replace("_", "-") for n in RESUME_MAY_CHANGE)
            raise PoldistError(
                f"--resume: {flag} {new!r} differs from the run's {old!r} ({where}); a resumed run keeps its "
                f"settings (it may set --updates / --total-steps or change {allowed}); "
                "drop the flag, or start a new run with another --out"
            )
        changes[name] = [old, new]
    base.update({k: v for k, (_, v) in changes.items()})
    cfg = cls(**base)
    cfg.validate()
    return cfg, changes
