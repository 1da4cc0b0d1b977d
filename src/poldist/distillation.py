"""Policy distillation: the one loop, with pluggable Teacher, Controller, Collector and Loss.

Read top to bottom: the pure update step, the registries (collectors, learning-rate schedules,
optimizers), the tasks and the student, agreement measures, then :class:`Distiller`, the loop
(:func:`distill` runs it to the end). Who acts while the teacher labels (controllers) and who plays
(collectors) live in :mod:`poldist.collection`; teachers in :mod:`poldist.teachers`::

    repeat until cfg.updates minibatch updates are done:
        pick the task of this minibatch (single-task: always task 0)
        let the controller play that task's envs until its memory has
            learning_starts + updates_on_task * transitions_per_update transitions,
            storing each observation with the teacher's output vector
        one minibatch update of the student on that task's memory and head
        every eval_interval updates: evaluate the student; every
            checkpoint_interval: write a resumable checkpoint

Single-task distillation is multi-task distillation with one task; a teacher that
keeps learning (online distillation) is just a teacher whose network changes.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from poldist.checkpoints import save_model
from poldist.collection import (
    Collector,
    Controller,
    DistillTask,
    LocalCollector,
    TeacherControl,
    collect,
    make_controller,
)
from poldist.config import DistillConfig
from poldist.envs import make_env_spec, run_env_seed
from poldist.errors import PoldistError
from poldist.evaluation import EvalResult, evaluate, geometric_mean, percent_of_teacher
from poldist.losses import Loss, make_loss
from poldist.memory import FrameStackMemory, ReplayMemory
from poldist.networks import (
    Architecture,
    QNetwork,
    count_parameters,
    module_device,
    resolve_device,
    student_architecture,
    to_device,
)
from poldist.progress import progress
from poldist.runs import RunBook, loss_text, machine_info
from poldist.teachers import NetworkTeacher, Teacher, check_teacher_fits, expand_teacher_names, load_teacher

if TYPE_CHECKING:  # tensorboard is imported when a run opens its logs, not with the module
    from torch.utils.tensorboard import SummaryWriter


def distill_step(
    student: QNetwork,
    optimizer: torch.optim.Optimizer,
    loss_fn: Loss,
    obs: torch.Tensor,
    teacher_out: torch.Tensor,
    task: int = 0,
) -> float:
    """One minibatch update of ``student`` towards the teacher's outputs.

    Args:
        obs: ``(B, C, H, W)`` uint8 observations, on the student's device.
        teacher_out: ``(B, A)`` teacher outputs stored with them, on the same device.
        task: the student head to train.

    Returns:
        The loss value before the update.
    """
    loss = loss_fn(student(obs, task), teacher_out)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.item()


def _ray_collector(cfg: DistillConfig, tasks: list[DistillTask]) -> Collector:
    from poldist.ray_backend import RayCollector  # imported only here: ray stays optional

    return RayCollector(cfg, tasks)


# the keys are DistillConfig's backend choices (config.BACKEND_CHOICES), checked there
COLLECTORS: dict[str, Callable[[DistillConfig, list[DistillTask]], Collector]] = {
    "local": lambda cfg, tasks: LocalCollector(cfg.labeller, cfg.labeller_threads),
    "ray": _ray_collector,
}


def make_collector(cfg: DistillConfig, tasks: list[DistillTask]) -> Collector:
    """Who plays the teacher's games: :class:`~poldist.collection.LocalCollector`, or Ray actors
    (``backend="ray"``, :class:`poldist.ray_backend.RayCollector`)."""
    return COLLECTORS[cfg.backend](cfg, tasks)


def build_tasks(
    cfg: DistillConfig,
    teachers: Sequence[Teacher] | None = None,
    device: torch.device | str = "cpu",
) -> list[DistillTask]:
    """Load and check the teacher(s) and env(s) of ``cfg`` before any work starts.

    Teachers loaded here (``teachers`` None) are put on ``device``; given ones stay where they are.

    Raises:
        PoldistError: unknown env id, missing/corrupt teacher, teacher that does not fit the env.
    """
    if teachers is None:
        names = expand_teacher_names(cfg.teacher)
        if len(names) > 1 and cfg.env_id:
            raise PoldistError("--env-id names one env; with several teachers each uses its own")
        teachers = [load_teacher(n, env_id=cfg.env_id, device=device) for n in names]
    if not teachers:
        raise PoldistError("no teacher given")
    tasks = []
    for i, teacher in enumerate(teachers):
        spec = make_env_spec(cfg.env_id) if cfg.env_id else teacher.env
        if cfg.env_id:  # keep the teacher's settings (sticky actions, no-ops) on the same env
            spec = teacher.env if teacher.env.env_id == spec.env_id else spec
        check_teacher_fits(teacher, spec)
        fields = {"obs": (spec.obs_shape, np.uint8), "teacher_out": ((teacher.n_actions,), np.float32)}
        # Atari observations are 4 stacked frames: store each frame once, not four times
        memory_cls = FrameStackMemory if spec.domain == "atari" else ReplayMemory
        memory = memory_cls(cfg.memory_size, fields)
        tasks.append(DistillTask(teacher, spec, memory, index=i))
    return tasks


def _mixed_tasks_error(tasks: Sequence[DistillTask]) -> PoldistError:
    return PoldistError(
        "multi-task teachers must share frame size and network family, got "
        + ", ".join(f"{t.spec.env_id} {t.spec.obs_shape}" for t in tasks)
    )


def base_architecture(tasks: Sequence[DistillTask]) -> Architecture:
    """The network a student is scaled from: the first teacher's, read once where the teachers are
    loaded and passed to :func:`make_student`.

    Raises:
        PoldistError: a teacher that is not a network (pass its architecture to
            :class:`Distiller` as ``teacher_arch``), or multi-task teachers of different families.
    """
    archs = []
    for t in tasks:
        if not isinstance(t.teacher, NetworkTeacher):
            raise PoldistError(
                f"teacher {t.teacher.name} is not a network: give the student's base architecture "
                "(teacher_arch)"
            )
        archs.append(t.teacher.net.arch)
    if len({len(a.convs) for a in archs}) > 1:
        raise _mixed_tasks_error(tasks)
    return archs[0]


def make_student(cfg: DistillConfig, tasks: Sequence[DistillTask], teacher_arch: Architecture) -> QNetwork:
    """The student: ``teacher_arch`` (see :func:`base_architecture`) at ``cfg.student`` widths, one
    head per task, its input ``(C, H, W)`` with the most channels of any task (fewer are zero-padded)."""
    if len({t.spec.obs_shape[1:] for t in tasks}) > 1:
        raise _mixed_tasks_error(tasks)
    arch = student_architecture(teacher_arch, cfg.student)
    channels = max(t.spec.obs_shape[0] for t in tasks)  # fewer channels are zero-padded
    arch = replace(
        arch,
        obs_shape=(channels, *teacher_arch.obs_shape[1:]),
        n_actions=tuple(t.teacher.n_actions for t in tasks),
        head_hidden=cfg.head_hidden,
    )
    return QNetwork(arch)


# the keys are DistillConfig's lr_schedule choices (config.LR_SCHEDULE_CHOICES), checked there
LR_SCHEDULES: dict[str, Callable[[float], float]] = {
    "constant": lambda p: 1.0,
    "linear": lambda p: 1.0 - p,
    "cosine": lambda p: 0.5 * (1.0 + math.cos(math.pi * p)),
}


def lr_factor(schedule: str, progress: float) -> float:
    """The learning rate's multiplier after ``progress`` (0 to 1) of the updates: ``constant`` 1,
    ``linear`` ``1 - progress``, ``cosine`` ``(1 + cos(pi * progress)) / 2``."""
    return LR_SCHEDULES[schedule](min(max(progress, 0.0), 1.0))


# the keys are DistillConfig's optimizer choices (config.OPTIMIZER_CHOICES), checked there
OPTIMIZERS: dict[str, Callable[[Iterable[torch.nn.Parameter], float], torch.optim.Optimizer]] = {
    "rmsprop": lambda params, lr: torch.optim.RMSprop(params, lr=lr, alpha=0.95, eps=1e-6),
    "adam": lambda params, lr: torch.optim.Adam(params, lr=lr),
}


def make_optimizer(cfg: DistillConfig, params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
    """The student's optimizer ``cfg.optimizer`` names (the paper's RMSProp, or Adam), at ``cfg.lr``."""
    return OPTIMIZERS[cfg.optimizer](params, cfg.lr)


def median_top2_gap(outputs: np.ndarray) -> float:
    """Median over states of the gap between the two highest outputs; ``outputs``: ``(N, A)``."""
    top2 = np.sort(np.asarray(outputs, dtype=np.float64), axis=1)[:, -2:]
    return float(np.median(top2[:, 1] - top2[:, 0]))


GAP_EDGES = (0.0, 0.01, 0.03, 0.1, 0.3, math.inf)


def agreement_by_gap(student_act: np.ndarray, teacher_out: np.ndarray) -> dict[str, Any]:
    """Where the student's greedy actions ``(N,)`` differ from the teacher's, by how near-tied the
    teacher was: ``teacher_out`` ``(N, A)``.

    Returns:
        ``agreement`` (share of states with the teacher's greedy action), ``regret`` (mean of
        the teacher's best output minus its output for the student's action: the value the
        teacher thinks is lost, 0 where they agree), and per bin of the teacher's top-2 gap
        (edges :data:`GAP_EDGES`): ``gap_shares`` (share of states) and ``agreement_by_gap``
        (agreement within the bin; ``None`` for an empty bin).
    """
    out = np.asarray(teacher_out, dtype=np.float64)
    student_act = np.asarray(student_act)
    agree = student_act == out.argmax(1)
    top2 = np.sort(out, axis=1)[:, -2:]
    gap = top2[:, 1] - top2[:, 0]
    bins = np.digitize(gap, GAP_EDGES[1:-1])
    shares, by_gap = [], []
    for b in range(len(GAP_EDGES) - 1):
        inside = bins == b
        shares.append(float(inside.mean()))
        by_gap.append(float(agree[inside].mean()) if inside.any() else None)
    regret = out.max(1) - out[np.arange(len(out)), student_act]
    return {
        "agreement": float(agree.mean()),
        "regret": float(regret.mean()),
        "gap_edges": [e if math.isfinite(e) else "inf" for e in GAP_EDGES],
        "gap_shares": shares,
        "agreement_by_gap": by_gap,
    }


@torch.no_grad()
def agreement_details(
    student: QNetwork, task: DistillTask, n_states: int, rng: np.random.Generator
) -> dict[str, Any]:
    """:func:`agreement_by_gap` on ``n_states`` fresh teacher-visited states (not in memory).

    The states ``(n_states, C, H, W)`` go to the student's device in one batch, its greedy
    actions come back to the host.
    """
    held_out = task.memory.empty_like(n_states)
    saved, task.memory = task.memory, held_out
    try:
        collect(task, TeacherControl(0.05), student, n_states, rng)
    finally:
        task.memory = saved
    rows = held_out.all_rows()
    obs = to_device(rows["obs"], module_device(student))
    student_act = student(obs, task.index).argmax(1).cpu().numpy()
    return agreement_by_gap(student_act, rows["teacher_out"])


@torch.no_grad()
def action_agreement(student: QNetwork, task: DistillTask, n_states: int, rng: np.random.Generator) -> float:
    """Share of fresh teacher-visited states (not in memory) where student and teacher agree greedily."""
    return agreement_details(student, task, n_states, rng)["agreement"]


class Distiller:
    """The distillation loop, steppable: :meth:`run` advances it, :meth:`finish` ends it.

    :func:`distill` runs it to the end in one call; online distillation calls :meth:`run`
    in chunks while its teacher keeps learning in between. The first :meth:`run` (or
    :meth:`finish`) of a run at update 0 begins with an evaluation of the untrained student
    (call :meth:`evaluate` earlier to take it out of a timed chunk).

    Usable as a context manager: leaving it closes envs, teacher-play actors and logs
    (:meth:`close`) without a checkpoint, so a failed run keeps its last good one.

    The student and the teachers live on ``cfg.device`` (:attr:`device`; given
    :class:`~poldist.teachers.NetworkTeacher` s are moved there, other teachers are asked where
    they are); replay memories stay in host memory and only sampled minibatches go over.

    Args:
        cfg: hyper-parameters.
        run_dir: run directory (see :mod:`poldist.runs`).
        resume: continue from ``<run_dir>/state``.
        teachers: teachers to use instead of loading ``cfg.teacher`` (one per task).
        controller: who acts; default: the one ``cfg.control`` names.
        teacher_arch: the network the student is scaled from; default: the first teacher's
            (:func:`base_architecture`; needed for teachers that are not networks).
    """

    def __init__(
        self,
        cfg: DistillConfig,
        run_dir: str | Path,
        *,
        resume: bool = False,
        teachers: Sequence[Teacher] | None = None,
        controller: Controller | None = None,
        teacher_arch: Architecture | None = None,
    ):
        cfg.validate()  # a bad value fails in one line before the run dir exists
        self.cfg = cfg
        self.device = resolve_device(cfg.device)  # an unknown or absent device fails before the run dir
        for teacher in teachers or []:
            if isinstance(teacher, NetworkTeacher):  # in place: a live teacher (online) is already there
                teacher.to(self.device)
        self.tasks = build_tasks(cfg, teachers, self.device)
        teacher_arch = teacher_arch or base_architecture(self.tasks)
        self.loss_fn = make_loss(cfg.loss, cfg.tau or self.tasks[0].teacher.default_tau)
        self.collector = make_collector(cfg, self.tasks)  # a bad --ray-address fails before the run dir
        self.controller = controller or make_controller(cfg)
        self.book = RunBook(run_dir, resume=resume, seed=cfg.seed, torch_threads=cfg.torch_threads)
        self.run_dir = self.book.dir
        self.rng = self.book.rng
        # built on the CPU (its RNG draws the initial weights whatever the device), then moved
        self.student = make_student(cfg, self.tasks, teacher_arch).to(self.device)
        self.optimizer = make_optimizer(cfg, self.student.parameters())
        self.updates = 0
        # overlap_collection: a worker thread collects the next update's transitions, the student
        # that acts there being a copy synced before each launch (the update changes the original)
        self._pool = ThreadPoolExecutor(1, "collect") if cfg.overlap_collection else None
        self._pending: Future | None = None
        self._actor = copy.deepcopy(self.student) if cfg.overlap_collection else self.student
        self._next_task: int | None = None  # the task the pending collection is for
        # tau_gap: each task's temperature, measured once its learning starts (None: not yet)
        self.task_taus: list[float | None] = [None] * len(self.tasks)
        self._task_losses: dict[int, Loss] = {}
        if resume:
            self._restore()
        self.book.open_logs(cfg, self.updates)
        # the worker's own generator (two threads must not share one), from the seed and the start
        self._collect_rng = np.random.default_rng([cfg.seed, self.updates, 1])
        for i, task in enumerate(self.tasks):
            task.start(cfg.num_envs, self.env_seed("collect", i, self.updates), cfg.env_groups)
        # the learning curve starts at the untrained student: evaluated before the first update
        self._start_eval_due = self.updates == 0
        self._closed = False

    @property
    def writer(self) -> SummaryWriter:
        """The run's TensorBoard writer."""
        return self.book.writer

    def env_seed(self, purpose: str, task: int = 0, updates: int = 0) -> int:
        """The first env seed for ``purpose`` (``collect`` for ``task`` from ``updates`` on, ``eval``
        or ``final``), by the scheme ``cfg.env_seeds`` names."""
        return run_env_seed(self.cfg.env_seeds, self.cfg.seed, purpose, task, updates)

    def wall(self) -> float:
        """Seconds of work on this run, across resumes."""
        return self.book.wall()

    def cpu(self) -> float | None:
        """CPU seconds of this run's process, across resumes (see :meth:`RunBook.cpu`)."""
        return self.book.cpu()

    def _restore(self) -> None:
        ckpt = self.book.restore()
        self.student.load_state_dict(RunBook.module_state(ckpt, "student"))
        RunBook.restore_optimizer(ckpt, self.optimizer)
        c = ckpt.metadata["counters"]
        self.updates = c["updates"]
        self.task_taus = list(c.get("task_taus", self.task_taus))
        for i, task in enumerate(self.tasks):
            task.memory.load_bytes(ckpt.blobs[f"memory_{i}"])
            task.updates = c["task_updates"][i]

    def checkpoint(self) -> None:
        """Write the resumable state (student, optimizer, memories, counters, RNGs) atomically."""
        self.book.save_state(
            "distill-state",
            self.cfg,
            {"student": self.student},
            self.optimizer,
            {
                "updates": self.updates,
                "task_updates": [t.updates for t in self.tasks],
                "task_taus": self.task_taus,
            },
            {f"memory_{i}": t.memory.write_npz for i, t in enumerate(self.tasks)},
        )

    def task_loss(self, k: int) -> Loss:
        """Task ``k``'s loss: :attr:`loss_fn`, or with ``cfg.tau_gap`` its own temperature, set
        from the teacher outputs in its memory the first time it is asked for (its first update)."""
        if self.cfg.tau_gap <= 0 or self.cfg.loss not in ("kl", "erd"):
            return self.loss_fn
        if k not in self._task_losses:
            if self.task_taus[k] is None:
                gap = median_top2_gap(self.tasks[k].memory.all_rows()["teacher_out"])
                self.task_taus[k] = max(self.cfg.tau_gap * gap, 1e-6)
            self._task_losses[k] = make_loss(self.cfg.loss, self.task_taus[k])
        return self._task_losses[k]

    def tau_used(self, k: int) -> float | None:
        """The KL/ERD temperature task ``k`` is trained at (``None`` for NLL and MSE)."""
        if self.cfg.loss not in ("kl", "erd"):
            return None
        return self.task_taus[k] if self.cfg.tau_gap > 0 else self.loss_fn.keywords["tau"]

    def resolved(self) -> dict[str, Any]:
        """What the config left to the run, as it ran: ``tau``, the temperature of every task (a
        ``cfg.tau`` of 0 stands for the teacher's default: 0.01 for Q-values, 1 for logits);
        ``task_taus``, each task's (``tau_gap`` sets one per task, ``None`` before its first
        update); ``tau_from``: ``config``, ``teacher_default``, ``tau_gap`` or ``none`` (NLL, MSE).
        Recorded in the summary and the student checkpoint beside the config as given."""
        task_taus = [self.tau_used(k) for k in range(len(self.tasks))]
        if self.cfg.loss not in ("kl", "erd"):
            tau_from = "none"
        elif self.cfg.tau_gap > 0:
            tau_from = "tau_gap"
        else:
            tau_from = "config" if self.cfg.tau > 0 else "teacher_default"
        return {
            "tau": task_taus[0] if tau_from in ("config", "teacher_default") else None,
            "task_taus": task_taus,
            "tau_from": tau_from,
        }

    def evaluate_student(self, episodes: int, seed: int) -> list[EvalResult]:
        """Score the student on every task (epsilon 0.05)."""
        self.student.eval()
        results = [
            evaluate(
                lambda o, i=i: self.student(o, i),
                t.spec,
                episodes,
                epsilon=0.05,
                seed=seed,
                device=self.device,
            )
            for i, t in enumerate(self.tasks)
        ]
        self.student.train()
        return results

    def evaluate(self) -> list[EvalResult]:
        """Score the student now (``eval_episodes`` episodes on the ``eval`` env seeds) and log it:
        one row per task in ``evals.csv`` at the current update."""
        results = self.evaluate_student(self.cfg.eval_episodes, self.env_seed("eval"))
        self.book.log_eval(
            self.updates,
            results,
            env_ids=[t.spec.env_id for t in self.tasks],
            updates=self.updates,
            env_steps=[t.memory.added for t in self.tasks],
        )
        self._start_eval_due = False
        return results

    def run(self, until: int | None = None, *, show_progress: bool = True) -> None:
        """Do minibatch updates until ``until`` (default ``cfg.updates``) have been done in all."""
        cfg, tasks, rng = self.cfg, self.tasks, self.rng
        until = cfg.updates if until is None else min(until, cfg.updates)
        if self._start_eval_due:
            self.evaluate()
        bar = progress(
            until,
            f"distil {cfg.loss} -> {cfg.student}",
            initial=self.updates,
            unit="upd",
            disable=not show_progress,
        )
        loss_sum, losses = 0.0, 0  # since the bar's last loss: it shows their mean
        while self.updates < until:
            k = self._pick_task(self.updates)
            task = tasks[k]
            self._wait_for_collection()
            owed = self._transitions_owed(k)
            if owed > 0:  # the first update, or one the worker did not collect for
                self.collector.collect(task, self.controller, self.student, owed, rng, self.updates)
            batch = task.memory.sample(cfg.batch_size, rng)
            if self._pool is not None and self.updates + 1 < until:
                self._launch_collection(k)
            obs, teacher_out = (
                to_device(batch["obs"], self.device),
                to_device(batch["teacher_out"], self.device),
            )
            if cfg.lr_schedule != "constant":
                for group in self.optimizer.param_groups:
                    group["lr"] = cfg.lr * lr_factor(cfg.lr_schedule, self.updates / max(1, cfg.updates))
            loss = distill_step(self.student, self.optimizer, self.task_loss(k), obs, teacher_out, k)
            if not np.isfinite(loss):
                raise PoldistError(f"loss became {loss} at update {self.updates}; last good checkpoint kept")
            loss_sum, losses = loss_sum + loss, losses + 1
            task.updates += 1
            self.updates += 1
            bar.update(1)
            if self.updates % 500 == 0:
                self.writer.add_scalar("train/loss", loss, self.updates)
                self.writer.add_scalar("train/updates_per_second", self.updates / self.wall(), self.updates)
            if self.updates % cfg.eval_interval == 0 or self.updates == cfg.updates:
                self._wait_for_collection()
                results = self.evaluate()
                bar.set_postfix(
                    score=" ".join(f"{r.mean:.2f}" for r in results), loss=loss_text(loss_sum / losses)
                )
                loss_sum, losses = 0.0, 0
            if self.updates % cfg.checkpoint_interval == 0 or self.updates == cfg.updates:
                self._wait_for_collection()
                self.checkpoint()
        self._wait_for_collection()
        bar.close()

    def _pick_task(self, update: int) -> int:
        """The task of minibatch ``update`` (0-based): each comes from one task (the paper);
        single-task: 0."""
        if self._next_task is not None:  # drawn when its transitions were sent to be collected
            k, self._next_task = self._next_task, None
            return k
        if self.cfg.task_schedule == "round_robin":
            return update % len(self.tasks)
        return int(self.rng.integers(len(self.tasks)))

    def _transitions_owed(self, k: int, ahead: int = 0) -> int:
        """Fresh transitions task ``k``'s memory lacks before its next update (``ahead``: updates of
        task ``k`` that will be done first)."""
        cfg, task = self.cfg, self.tasks[k]
        target = cfg.learning_starts + (task.updates + 1 + ahead) * cfg.transitions_per_update
        return max(0, int(np.ceil(target - task.memory.added)))

    def _launch_collection(self, k: int) -> None:
        """Collect the next update's transitions in the worker while update ``k`` runs here."""
        self._next_task = self._pick_task(self.updates + 1)  # now: the worker must know whose envs to play
        owed = self._transitions_owed(self._next_task, ahead=int(self._next_task == k))
        if owed == 0:
            return
        if not isinstance(self.controller, TeacherControl):  # a controller that may ask the student
            self._actor.load_state_dict(self.student.state_dict())  # the weights before this update
        task = self.tasks[self._next_task]
        self._pending = self._pool.submit(
            self.collector.collect,
            task,
            self.controller,
            self._actor,
            owed,
            self._collect_rng,
            self.updates + 1,
        )

    def _wait_for_collection(self) -> None:
        """Let the worker's collection finish (its error, if any, is raised here)."""
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()

    def finish(self) -> dict[str, Any]:
        """Final evaluation (student, teacher, agreement); save ``<run_dir>/student`` and the summary.

        The summary's ``config`` is the config as given (``config.json``, a valid ``--config`` and
        ``--resume`` input); ``resolved`` (:meth:`resolved`) records the temperature(s) used. The
        student checkpoint's metadata holds both (``distillation.resolved``, ``config``)."""
        cfg, tasks = self.cfg, self.tasks
        if self._start_eval_due:  # never run: its curve still starts at the untrained student
            self.evaluate()
        train_wall, train_cpu = self.wall(), self.cpu()
        final_seed = self.env_seed("final")
        final = self.evaluate_student(cfg.final_eval_episodes, final_seed)
        self.student.eval()
        per_task = []
        for task, res in zip(tasks, final):
            entry: dict[str, Any] = {
                "env_id": task.spec.env_id,
                "teacher": task.teacher.name,
                "student_score": res.mean,
                "student_ci": [res.ci_low, res.ci_high],
                "student_returns": res.returns,
                **agreement_details(self.student, task, cfg.agreement_states, self.rng),
                "transitions": task.memory.added,
                "tau": self.tau_used(task.index),
            }
            if cfg.evaluate_teacher:
                t_res = evaluate(
                    task.teacher,
                    task.spec,
                    cfg.final_eval_episodes,
                    seed=final_seed,
                    device=task.teacher.device,
                )
                entry.update(
                    teacher_score=t_res.mean,
                    teacher_ci=[t_res.ci_low, t_res.ci_high],
                    teacher_returns=t_res.returns,
                    percent_of_teacher=percent_of_teacher(res.mean, t_res.mean),
                )
            per_task.append(entry)
        self.close()
        n_student = count_parameters(self.student)
        teacher_params = tasks[0].teacher.num_parameters()
        summary = {
            "tasks": per_task,
            "geometric_mean_percent": (
                geometric_mean([t["percent_of_teacher"] for t in per_task]) if cfg.evaluate_teacher else None
            ),
            "student_params": n_student,
            "teacher_params": teacher_params,
            "compression": n_student / teacher_params,
            "updates": self.updates,
            "train_wall_seconds": train_wall,
            "wall_seconds": self.wall(),
            "train_cpu_seconds": train_cpu,
            "cpu_seconds": self.cpu(),
            "device": str(self.device),
            "machine": machine_info(),
            "config": asdict(cfg),  # as given (config.json); what ran of it: "resolved"
            "resolved": self.resolved(),
        }
        save_model(
            self.run_dir / "student",
            self.student,
            [t.spec for t in tasks],
            output_kind="q" if cfg.loss == "mse" else "logits",
            extra={
                "distillation": {k: v for k, v in summary.items() if k != "config"},
                "config": asdict(cfg),
            },
        )
        self.book.write_summary(summary)
        return summary

    def close(self) -> None:
        """Close envs, teacher-play actors and logs; no checkpoint is written."""
        if self._closed:
            return
        self._closed = True
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        for task in self.tasks:
            task.close()
        self.collector.close()  # Ray actors must not outlive the run
        self.book.close()

    def __enter__(self) -> Distiller:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def distill(
    cfg: DistillConfig,
    run_dir: str | Path,
    *,
    resume: bool = False,
    teachers: Sequence[Teacher] | None = None,
    controller: Controller | None = None,
    teacher_arch: Architecture | None = None,
) -> dict[str, Any]:
    """Distil the teacher(s) of ``cfg`` into a student; write ``<run_dir>/student``.

    Arguments as :class:`Distiller`.

    Returns:
        The summary (also in ``<run_dir>/summary.json``).
    """
    with Distiller(
        cfg, run_dir, resume=resume, teachers=teachers, controller=controller, teacher_arch=teacher_arch
    ) as distiller:
        distiller.run()
        return distiller.finish()
