"""Teacher play: who acts while the teacher labels (controllers), and who plays (collectors).

A :class:`DistillTask` is one game of a distillation run: its teacher, env and replay memory.
:func:`collect` plays a task's envs in this process, storing each observation with the teacher's
output vector; a :class:`Collector` is anything with that ``collect`` (and a ``close``):
:class:`LocalCollector` here, :class:`poldist.ray_backend.RayCollector` in Ray actors. The
distillation loop (:mod:`poldist.distillation`) picks one by ``cfg.backend``.

This module imports neither the loop nor Ray: both build on it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from poldist.config import DistillConfig
from poldist.envs import EnvSpec, make_vector_env
from poldist.errors import PoldistError
from poldist.evaluation import epsilon_greedy
from poldist.fast_teacher import LABELLERS, Labeller, TorchLabeller, make_labeller, plain_forward
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
        if teacher_out.device.type == "cpu":  # the same actions and draws, without torch's argmax
            return host_epsilon_greedy(teacher_out.numpy(), self.epsilon, rng)
        return epsilon_greedy(teacher_out, self.epsilon, rng)


def host_epsilon_greedy(outputs: np.ndarray, epsilon: float, rng: np.random.Generator) -> np.ndarray:
    """:func:`~poldist.evaluation.epsilon_greedy` on a host array ``(N, A)``: actions ``(N,)`` int64.

    The same actions for finite outputs (the first maximum on ties, as ``torch.argmax``) and the
    same draws from ``rng``, in the same order.
    """
    actions = outputs.argmax(axis=1).astype(np.int64, copy=False)
    explore, random_actions = exploration_draws(len(actions), epsilon, outputs.shape[1], rng)
    if len(random_actions):
        actions[explore] = random_actions
    return actions


def exploration_draws(
    n: int, epsilon: float, n_actions: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Epsilon-greedy's draws for ``n`` envs, in its order: which explore ``(n,)`` bool, then
    their random actions ``(k,)`` int64 (``k`` explorers)."""
    explore = rng.random(n) < epsilon
    k = np.count_nonzero(explore)  # ~1 us sooner than explore.any() and .sum() on a few envs
    return explore, (rng.integers(0, n_actions, k) if k else np.empty(0, np.int64))


def _student_actions(student: QNetwork, obs: torch.Tensor, task: int, epsilon: float, rng) -> np.ndarray:
    out = plain_forward(student, obs, task)  # = student(obs, task), without module dispatch
    if out.device.type == "cpu":  # the same actions and draws, without torch's argmax
        return host_epsilon_greedy(out.numpy(), epsilon, rng)
    return epsilon_greedy(out, epsilon, rng)


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
    """One game: its teacher, env and replay memory, and where its envs are.

    :attr:`obs` is the envs' current observations ``(N, C, H, W)``. An env with ``send``/``recv``
    (Atari's vector env) may still be stepping when :func:`collect` returns (:attr:`stepping`):
    its last actions were sent and the envs step in their own threads while the learner
    updates; reading :attr:`obs` (or the next ``collect``) receives that step first.
    """

    teacher: Teacher
    spec: EnvSpec
    memory: ReplayMemory
    index: int = 0  # the student head of this task
    env: Any = None
    updates: int = 0
    stepping: bool = False  # actions sent to self.env, its observations not received yet

    def __post_init__(self) -> None:
        self._obs: np.ndarray | None = None

    @property
    def obs(self) -> np.ndarray | None:
        """The envs' current observations (the step in flight received first)."""
        if self.stepping:
            self.stepping = False
            self._obs = self.env.recv()[0]
        return self._obs

    @obs.setter
    def obs(self, value: np.ndarray | None) -> None:
        self.stepping = False
        self._obs = value

    def send(self, actions: np.ndarray) -> None:
        """Step the envs with ``actions`` ``(N,)`` in their own threads; :attr:`obs` receives it."""
        self.env.send(actions)
        self.stepping = True

    def start(self, num_envs: int, seed: int, groups: int = 1) -> None:
        """(Re)open the envs at fresh episodes.

        ``groups`` > 1: the ``num_envs`` envs as that many vector envs (:class:`GroupedVectorEnv`,
        each env seeded as in one vector env), which :func:`collect` pipelines: one group steps
        while the teacher labels the other (opt-in).
        """
        if groups > 1:
            self.env = GroupedVectorEnv(self.spec, num_envs, seed, groups)
        else:
            self.env = make_vector_env(self.spec, num_envs, seed)
        self.obs, _ = self.env.reset(seed=seed)

    def reset(self, seed: int) -> None:
        """Reset the envs (env ``i`` with ``seed + i``), a step in flight received first."""
        _ = self.obs
        self.obs, _ = self.env.reset(seed=seed)

    def close(self) -> None:
        """Close the envs (a step in flight is received first); idempotent."""
        if self.env is not None:
            _ = self.obs
            self.env.close()


class GroupedVectorEnv:
    """``num_envs`` copies of a game as ``groups`` consecutive vector envs, stepped as one.

    Env ``i`` is the same env (same seed at a reset) as env ``i`` of ``make_vector_env(spec,
    num_envs, seed)``: group ``g`` holds envs ``offsets[g]`` to ``offsets[g + 1] - 1`` and is reset
    with ``seed + offsets[g]``. A group steps in the background: :meth:`send_group` hands it its
    actions (an env with ``send``/``recv``, Atari's, steps in its own threads; another steps in
    :attr:`pool`'s worker thread) and :meth:`recv_group` waits for its observations, so that
    :func:`collect` labels one group while the other steps; :meth:`send`/:meth:`recv` do it for
    every group (a vector env's split step, observations only).
    """

    def __init__(self, spec: EnvSpec, num_envs: int, seed: int, groups: int = 2):
        if not 1 <= groups <= num_envs:
            raise PoldistError(f"cannot split {num_envs} envs into {groups} groups")
        sizes = [num_envs // groups + (g < num_envs % groups) for g in range(groups)]
        self.offsets = np.cumsum([0, *sizes]).tolist()
        self.envs = [make_vector_env(spec, k, seed + off) for k, off in zip(sizes, self.offsets)]
        self.num_envs = num_envs
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="poldist-envs")
        self.obs: list[np.ndarray | None] = [None] * groups  # each group's latest observations
        self._in_flight: list[Future | bool | None] = [None] * groups  # a step sent, not received
        self._closed = False

    def reset(self, *, seed: int | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset every env (a step in flight received first): observations ``(num_envs, C, H, W)``
        and ``{"groups": [info, ...]}``."""
        self._settle()
        res = [e.reset(seed=None if seed is None else seed + off) for e, off in zip(self.envs, self.offsets)]
        self.obs = [r[0] for r in res]
        return np.concatenate(self.obs), {"groups": [r[1] for r in res]}

    def send_group(self, g: int, actions: np.ndarray) -> None:
        """Start stepping group ``g`` with its ``actions`` ``(size of g,)``; returns at once."""
        env = self.envs[g]
        if hasattr(env, "send"):
            env.send(actions)
            self._in_flight[g] = True
        else:
            self._in_flight[g] = self.pool.submit(env.step, actions)

    def recv_group(self, g: int) -> np.ndarray:
        """Group ``g``'s observations, its step in flight (if any) received first."""
        pending = self._in_flight[g]
        if pending is not None:
            self._in_flight[g] = None
            self.obs[g] = (self.envs[g].recv() if pending is True else pending.result())[0]
        return self.obs[g]

    def _settle(self) -> None:
        """Receive every step in flight."""
        for g, pending in enumerate(self._in_flight):
            if pending is not None:
                self.recv_group(g)

    def send(self, actions: np.ndarray) -> None:
        """Start stepping every group with ``actions`` ``(num_envs,)``."""
        for g, (a, b) in enumerate(zip(self.offsets, self.offsets[1:])):
            self.send_group(g, actions[a:b])

    def recv(self) -> tuple[np.ndarray, None, None, None, dict[str, Any]]:
        """Every group's observations ``(num_envs, C, H, W)`` (steps in flight received); the
        rewards and ends of episodes are not kept (``None``)."""
        return np.concatenate([self.recv_group(g) for g in range(len(self.envs))]), None, None, None, {}

    def close(self) -> None:
        """Close the envs (steps in flight received first) and the worker thread; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._settle()
        self.pool.shutdown(wait=True)
        for e in self.envs:
            e.close()


_TORCH_LABELLERS: dict[int, TorchLabeller] = {}  # id(teacher) -> its labeller (collect without one)


def _default_labeller(teacher: Teacher) -> TorchLabeller:
    lab = _TORCH_LABELLERS.get(id(teacher))
    if lab is None or lab.teacher is not teacher:
        if len(_TORCH_LABELLERS) > 64:
            _TORCH_LABELLERS.clear()
        lab = _TORCH_LABELLERS[id(teacher)] = TorchLabeller(teacher)
    return lab


def collect(
    task: DistillTask,
    controller: Controller,
    student: QNetwork,
    n_transitions: int,
    rng: np.random.Generator,
    updates: int = 0,
    labeller: Labeller | None = None,
) -> None:
    """Play ``task``'s envs for at least ``n_transitions`` steps, storing teacher-labelled states.

    Each vector step's observations ``(N, C, H, W)`` (uint8) go to the teacher's device as one
    batch; the teacher's outputs ``(N, A)`` come back to the host for the memory, which holds the
    observations from the env's own uint8 arrays (no float copies on the host). An env with
    ``send``/``recv`` (Atari's vector env) steps in its own threads while the memory stores, and
    its last step is left in flight when ``collect`` returns, so the envs step while the learner
    updates (``task.obs``, or the next ``collect``, receives it; the same data either way).

    ``updates``: student updates done so far, passed to the controller's schedule.
    ``labeller``: who computes the teacher's outputs (:mod:`poldist.fast_teacher`); None: the
    teacher's PyTorch network (:class:`~poldist.fast_teacher.TorchLabeller`, bit-identical to
    ``task.teacher(obs)``). A labeller of another teacher is refused.
    """
    teacher = task.teacher
    if labeller is None:
        labeller = _default_labeller(teacher)
    elif labeller.teacher is not teacher:
        raise PoldistError(f"the labeller labels for {labeller.teacher.name}, not for {teacher.name}")
    if isinstance(task.env, GroupedVectorEnv) and type(controller) is TeacherControl:
        _collect_pipelined(task, controller, labeller, n_transitions, rng, updates)
        return
    torch_labels = isinstance(labeller, TorchLabeller)
    env = task.env
    split_step = hasattr(env, "send") and hasattr(env, "recv")
    done = 0
    if not torch_labels and type(controller) is TeacherControl:
        # a host labeller with the teacher acting: numpy from the env to the memory, no tensors
        # made; TeacherControl.act's host path, so the same actions and draws
        while done < n_transitions:
            obs = task.obs
            out = labeller(obs)
            _check_finite(out, teacher, updates)
            actions = host_epsilon_greedy(out, controller.epsilon, rng)
            _store_and_step(task, env, split_step, obs, out, actions)
            done += len(actions)
        return
    device = teacher.device
    on_host = device.type == "cpu"
    while done < n_transitions:
        obs = task.obs
        # on the CPU, torch.from_numpy: the tensor torch.as_tensor gives (shared memory), 3 us sooner
        obs_t = torch.from_numpy(obs) if on_host and type(obs) is np.ndarray else to_device(obs, device)
        if torch_labels:
            out_t = labeller.outputs(obs_t)
            out = out_t.cpu().numpy() if not on_host else out_t.numpy()
        else:
            out = labeller(obs)
            out_t = torch.from_numpy(out) if on_host else to_device(out, device)
        _check_finite(out, teacher, updates)
        actions = controller.act(obs_t, out_t, student, task.index, rng, updates)
        _store_and_step(task, env, split_step, obs, out, actions)
        done += len(actions)


def _store_and_step(
    task: DistillTask, env: Any, split_step: bool, obs: np.ndarray, out: np.ndarray, actions: np.ndarray
) -> None:
    """Store ``obs`` ``(N, C, H, W)`` with the teacher's ``out`` ``(N, A)`` and step the envs with
    ``actions`` ``(N,)``."""
    if split_step:
        # the envs step in their threads while the memory stores, and after the last step of a
        # collect() while the learner updates: the next collect() (or task.obs) receives it
        task.send(actions)
        task.memory.add(obs=obs, teacher_out=out)
    else:
        task.memory.add(obs=obs, teacher_out=out)
        task.obs = env.step(actions)[0]


def _check_finite(out: np.ndarray, teacher: Teacher, updates: int) -> None:
    # the sum is finite when every output is (a few us sooner than isfinite().all(), which confirms
    # a non-finite sum: finite float32 outputs can overflow it)
    if not math.isfinite(out.sum()) and not np.isfinite(out).all():  # refuse before a NaN is stored
        raise PoldistError(
            f"teacher outputs are not finite (NaN/inf) at update {updates} "
            f"(teacher {teacher.name}); nothing stored from them, last good checkpoint kept"
        )


def _collect_pipelined(
    task: DistillTask,
    controller: TeacherControl,
    labeller: Labeller,
    n_transitions: int,
    rng: np.random.Generator,
    updates: int,
) -> None:
    """:func:`collect` on a :class:`GroupedVectorEnv`, teacher-driven: while a group steps in the
    background, the teacher labels the next group (and the memory stores); the groups' last steps
    are left in flight (``task.obs``, or the next ``collect``, receives them).

    Each vector step draws its exploration as :func:`host_epsilon_greedy` does for all envs at
    once (:func:`exploration_draws`), so actions, draws
    and the memory's rows (one ``add`` per vector step, envs in order) are those of the plain
    loop whenever the labeller gives each group's rows what it gives them in one batch.
    """
    env: GroupedVectorEnv = task.env
    bounds = list(zip(env.offsets, env.offsets[1:]))
    n_actions = task.teacher.n_actions
    done = 0
    task.stepping = True  # task.obs asks the groups (env.recv), which receive what is in flight
    while done < n_transitions:
        explore, drawn = exploration_draws(env.num_envs, controller.epsilon, n_actions, rng)
        random_actions = np.zeros(env.num_envs, np.int64)
        random_actions[explore] = drawn
        groups, outs = [], []
        for g, (a, b) in enumerate(bounds):
            obs = env.recv_group(g)  # its previous step, taken while the other groups were labelled
            out = labeller(obs)
            _check_finite(out, task.teacher, updates)
            actions = np.where(explore[a:b], random_actions[a:b], out.argmax(axis=1)).astype(np.int64)
            groups.append(obs)
            outs.append(out)
            env.send_group(g, actions)
        task.memory.add(obs=np.concatenate(groups), teacher_out=np.concatenate(outs))
        done += env.num_envs


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
    """Teacher play in this process: :func:`collect` on each task's own vector env.

    ``labeller``: how the teachers' outputs are computed (:func:`~poldist.fast_teacher.make_labeller`):
    ``"auto"`` (default: onnxruntime where it can label, else torch), ``"torch"`` (bit-identical to
    the teacher's PyTorch network) or ``"onnxruntime"`` (faster on the CPU, labels within
    :data:`~poldist.fast_teacher.LABEL_TOLERANCE`, so a run is not bit-identical to a PyTorch one).
    ``threads``: the onnxruntime labeller's threads (0: :func:`~poldist.fast_teacher.auto_threads`).
    """

    def __init__(self, labeller: str = "auto", threads: int = 0):
        if labeller not in LABELLERS:
            raise PoldistError(f"unknown labeller {labeller!r}: choose from {', '.join(LABELLERS)}")
        self.labeller = labeller
        self.threads = threads
        self._labellers: dict[int, Labeller] = {}  # id(task.teacher) -> its labeller

    def labeller_for(self, teacher: Teacher) -> Labeller:
        """The labeller of ``teacher`` (made on first use, then kept)."""
        lab = self._labellers.get(id(teacher))
        if lab is None or lab.teacher is not teacher:
            lab = self._labellers[id(teacher)] = make_labeller(teacher, self.labeller, self.threads)
        return lab

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
        collect(task, controller, student, n_transitions, rng, updates, self.labeller_for(task.teacher))

    def close(self) -> None:
        """Drop the labellers (their onnxruntime sessions); idempotent."""
        self._labellers.clear()
