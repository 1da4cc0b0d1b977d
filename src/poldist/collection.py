"""Teacher play: who acts while the teacher labels (controllers), and who plays (collectors).

A :class:`DistillTask` is one game of a distillation run: its teacher, env and replay memory.
:func:`collect` plays a task's envs in this process, storing each observation with the teacher's
output vector; a :class:`Collector` is anything with that ``collect`` (and a ``close``):
:class:`LocalCollector` here, :class:`poldist.ray_backend.RayCollector` in Ray actors. The
distillation loop (:mod:`poldist.distillation`) picks one by ``cfg.backend``.

This module imports neither the loop nor Ray: both build on it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from poldist.config import DistillConfig
from poldist.envs import EnvSpec, make_vector_env
from poldist.errors import PoldistError
from poldist.evaluation import epsilon_greedy
from poldist.memory import ReplayMemory
from poldist.networks import QNetwork, to_device
from poldist.teachers import Teacher


class Controller(Protocol):
    """Who acts while the teacher labels: returns actions ``(N,)`` (numpy, host) for ``N`` envs.

    ``obs``: ``(N, C, H, W)`` uint8 and ``teacher_out``: ``(N, A)``, both on the teacher's device
    (the student's too); ``updates``: student updates done so far (schedules such as DAgger's
    decaying beta read it).
    """

    def act(
        self,
        obs: torch.Tensor,
        teacher_out: torch.Tensor,
        student: QNetwork,
        task: int,
        rng: np.random.Generator,
        updates: int = 0,
    ) -> np.ndarray: ...


@dataclass
class TeacherControl:
    """The paper's control: the teacher acts, epsilon-greedily on its outputs."""

    epsilon: float = 0.05

    def act(self, obs, teacher_out, student, task, rng, updates=0) -> np.ndarray:
        """Epsilon-greedy on the teacher's outputs ``(N, A)``."""
        return epsilon_greedy(teacher_out, self.epsilon, rng)


@torch.no_grad()
def _student_actions(student: QNetwork, obs: torch.Tensor, task: int, epsilon: float, rng) -> np.ndarray:
    return epsilon_greedy(student(obs, task), epsilon, rng)


@dataclass
class StudentControl:
    """Student-driven (on-policy) distillation: the student acts, the teacher only labels.

    The student then learns on the states its own mistakes lead to (Ross et al. 2011;
    Czarnecki et al. 2019), which teacher-driven data never shows it.
    """

    epsilon: float = 0.05

    def act(self, obs, teacher_out, student, task, rng, updates=0) -> np.ndarray:
        """Epsilon-greedy on the student's outputs for ``obs`` ``(N, C, H, W)``."""
        return _student_actions(student, obs, task, self.epsilon, rng)


@dataclass
class MixedControl:
    """DAgger's mixture: at each step and env the teacher acts with probability ``beta``.

    ``beta`` falls linearly from ``beta_start`` to ``beta_end`` over ``decay_updates``
    student updates, then stays there: teacher-driven first, student-driven later.
    """

    epsilon: float = 0.05
    beta_start: float = 1.0
    beta_end: float = 0.0
    decay_updates: int = 10_000

    def beta(self, updates: int) -> float:
        """Probability that the teacher acts after ``updates`` student updates."""
        frac = min(1.0, updates / max(1, self.decay_updates))
        return self.beta_start + frac * (self.beta_end - self.beta_start)

    def act(self, obs, teacher_out, student, task, rng, updates=0) -> np.ndarray:
        """Per env, the teacher's action with probability ``beta(updates)``, else the student's."""
        teacher_a = epsilon_greedy(teacher_out, self.epsilon, rng)
        student_a = _student_actions(student, obs, task, self.epsilon, rng)
        return np.where(rng.random(len(teacher_a)) < self.beta(updates), teacher_a, student_a)


def _mixed_control(cfg: DistillConfig) -> MixedControl:
    decay = max(1, round(cfg.beta_decay * cfg.updates))
    return MixedControl(cfg.epsilon, cfg.beta_start, cfg.beta_end, decay)


# the keys are DistillConfig's control choices (config.CONTROL_CHOICES), checked there
CONTROLLERS: dict[str, Callable[[DistillConfig], Controller]] = {
    "teacher": lambda cfg: TeacherControl(cfg.epsilon),
    "student": lambda cfg: StudentControl(cfg.epsilon),
    "mixed": _mixed_control,
}


def make_controller(cfg: DistillConfig) -> Controller:
    """The controller ``cfg.control`` names, with its epsilon and (mixed) beta schedule."""
    return CONTROLLERS[cfg.control](cfg)


@dataclass
class DistillTask:
    """One game: its teacher, env and replay memory, and where its envs are."""

    teacher: Teacher
    spec: EnvSpec
    memory: ReplayMemory
    index: int = 0  # the student head of this task
    env: Any = None
    obs: np.ndarray | None = None
    updates: int = 0

    def start(self, num_envs: int, seed: int) -> None:
        """(Re)open the envs at fresh episodes."""
        self.env = make_vector_env(self.spec, num_envs, seed)
        self.obs, _ = self.env.reset(seed=seed)


def collect(
    task: DistillTask,
    controller: Controller,
    student: QNetwork,
    n_transitions: int,
    rng: np.random.Generator,
    updates: int = 0,
) -> None:
    """Play ``task``'s envs for at least ``n_transitions`` steps, storing teacher-labelled states.

    Each vector step's observations ``(N, C, H, W)`` (uint8) go to the teacher's device as one
    batch; the teacher's outputs ``(N, A)`` come back to the host for the memory, which holds the
    observations from the env's own uint8 arrays (no float copies on the host).

    ``updates``: student updates done so far, passed to the controller's schedule.
    """
    device = task.teacher.device
    done = 0
    while done < n_transitions:
        obs_t = to_device(task.obs, device)
        teacher_out = task.teacher(obs_t)
        if not torch.isfinite(teacher_out).all():  # refuse before a NaN reaches the memory (and a checkpoint)
            raise PoldistError(
                f"teacher outputs are not finite (NaN/inf) at update {updates} "
                f"(teacher {task.teacher.name}); nothing stored from them, last good checkpoint kept"
            )
        actions = controller.act(obs_t, teacher_out, student, task.index, rng, updates)
        task.memory.add(obs=task.obs, teacher_out=teacher_out.cpu().numpy())
        task.obs, *_ = task.env.step(actions)
        done += len(actions)


class Collector(Protocol):
    """Who plays the teacher's games for the learner (:class:`LocalCollector`, or Ray actors)."""

    def collect(
        self,
        task: DistillTask,
        controller: Controller,
        student: QNetwork,
        n_transitions: int,
        rng: np.random.Generator,
        updates: int = 0,
    ) -> None:
        """Add at least ``n_transitions`` teacher-labelled transitions to ``task.memory``.

        ``student``: the learner's student, whose weights are those after ``updates`` updates
        (a controller that lets it act reads it).
        """
        ...

    def close(self) -> None:
        """Release envs, actors and processes; idempotent."""
        ...


class LocalCollector:
    """Teacher play in this process: :func:`collect` on each task's own vector env."""

    def collect(
        self,
        task: DistillTask,
        controller: Controller,
        student: QNetwork,
        n_transitions: int,
        rng: np.random.Generator,
        updates: int = 0,
    ) -> None:
        """Add at least ``n_transitions`` teacher-labelled transitions to ``task.memory``."""
        collect(task, controller, student, n_transitions, rng, updates)

    def close(self) -> None:
        """Nothing to release."""
