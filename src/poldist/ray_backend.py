"""Teacher play in Ray actors: ``DistillConfig(backend="ray")`` (``pip install 'poldist[ray]'``).

:class:`RayCollector` is a :class:`~poldist.collection.Collector`, as
:class:`~poldist.collection.LocalCollector` is; the learner (:class:`~poldist.distillation.Distiller`)
is unchanged. This module builds on :mod:`poldist.collection` only (never on the loop). Per game
(task) it starts ``cfg.ray_actors`` actors; each holds

- its own vector env (``make_vector_env(spec, cfg.num_envs, seed)``, a distinct seed per actor),
- a copy of the teacher (a :class:`~poldist.teachers.NetworkTeacher`), rebuilt from plain data
  (architecture and env spec as dicts, weights as a ``state_dict`` through Ray's object store;
  no teacher object is pickled),
- a controller (``make_controller(cfg)``, or the one the learner passes to ``collect``), and for
  student-driven and mixed control a copy of the student.

Pull model with back-pressure: an actor plays only when asked, ``chunk`` vector steps per request,
and returns ``obs`` ``(chunk, num_envs, C, H, W)`` uint8 with ``teacher_out``
``(chunk, num_envs, A)`` float32. The learner keeps at most ``in_flight`` requests outstanding per
actor; ``collect`` takes finished chunks (``ray.wait``, oldest request first), adds each to the
task's memory one vector step at a time (so :class:`~poldist.memory.FrameStackMemory` keeps its
frame sharing within a chunk), and asks the same actor again, until the task has the transitions
the learner needs. So at most ``tasks x ray_actors x in_flight x chunk x num_envs`` transitions
are ever held outside the replay memories (defaults, one game: 2 x 2 x 32 x 8 = 1,024; about
0.4 MB on MinAtar, 29 MB of 84x84x4 Atari frames), however slow the learner is.

Weights travel with requests, and only when they changed: each network (the teacher of each
task, the student) is published to the object store once per change (one ``ray.put`` shared by
all actors) and an actor is sent it with its next request if it holds an older version. A change
is told, not guessed: the teacher's :attr:`~poldist.teachers.Teacher.version` (whoever writes a
live teacher's weights bumps it: :meth:`~poldist.teachers.NetworkTeacher.weights_changed`), and for
the student the learner's update count (its weights change only by updates). So a fixed teacher
is sent once, at actor start. The student is sent only when the controller uses it
(student-driven, mixed, or any controller other than :class:`~poldist.collection.TeacherControl`);
with student control it therefore follows the learner with a lag of at most ``in_flight`` chunks.

Failures: when an actor dies (``RayActorError``, e.g. ``ray.kill``, a crashed or lost node), the
learner notices it in ``collect`` (its pending requests fail), warns, starts a replacement with a
fresh seed, asks it for play, and the run goes on. An actor that keeps dying before delivering
anything (``max_failures`` in a row) raises :class:`~poldist.errors.PoldistError`, as does a
teacher whose outputs are not finite.

Devices: actors stay on the CPU, whatever ``cfg.device`` says; they build their teacher and
student copies on the CPU from CPU weights (published with ``.cpu()``), label their play there,
and send host arrays back. Only the learner (:class:`~poldist.distillation.Distiller`: the student,
its minibatches, evaluation) uses ``cfg.device``, so a GPU learner can be fed by CPU actors
on other nodes.

Not bit-reproducible: which actor's chunk arrives first depends on timing, and the actors use
their own random generators (the learner's ``rng`` is not used for play).
"""

from __future__ import annotations

import math
import os
import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from poldist.collection import Controller, DistillTask, TeacherControl, collect, make_controller
from poldist.config import DistillConfig
from poldist.envs import EnvSpec, make_vector_env, run_env_seed
from poldist.errors import PoldistError
from poldist.memory import ReplayMemory
from poldist.networks import Architecture, QNetwork
from poldist.teachers import NetworkTeacher

DEFAULT_CHUNK = 32  # vector steps per request: ~10-30 ms of MinAtar play, well above Ray's ~1 ms per call
DEFAULT_IN_FLIGHT = 2  # requests per actor: one being played while the learner takes the other


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as e:
        raise PoldistError("backend 'ray' needs Ray: pip install 'poldist[ray]'") from e
    return ray


def init_ray(address: str = "", num_cpus: int = 2) -> bool:
    """Connect to Ray: a small local instance when ``address`` is empty, else the cluster at ``address``.

    An instance this process already started (``ray.init`` elsewhere) is used as it is.

    Returns:
        Whether this call started (or connected) Ray, i.e. whether its caller should shut it down.
    """
    ray = _import_ray()
    if ray.is_initialized():
        return False
    try:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(
                address="local",  # a new instance, even where `ray start` left a cluster to join
                num_cpus=max(1, num_cpus),
                include_dashboard=False,
                log_to_driver=False,
                ignore_reinit_error=True,
                # Ray starts workers at nice 15; the actors do the teacher play, and at 15 they
                # starve behind any other job on a busy machine (the learner waits on them)
                _system_config={"worker_niceness": 0},
            )
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise PoldistError(f"cannot start or reach Ray{f' at {address!r}' if address else ''}: {e}") from e
    return True


class _TeacherPlayer:
    """The actor: one vector env, a teacher copy, a controller; plays chunks on request.

    Built from plain data only (dicts and CPU tensors) so that nothing unpicklable crosses
    processes. Everything in it runs on the CPU (the learner alone uses ``cfg.device``).
    """

    def __init__(
        self,
        spec: dict[str, Any],
        teacher_arch: dict[str, Any],
        teacher_state: dict[str, torch.Tensor],
        teacher_info: dict[str, Any],
        controller: Controller,
        num_envs: int,
        task_index: int,
        torch_threads: int,
    ):
        torch.set_num_threads(torch_threads)
        self.spec = EnvSpec.from_dict(spec)
        net = QNetwork(Architecture.from_dict(teacher_arch))
        net.load_state_dict(teacher_state)
        self.teacher = NetworkTeacher(
            net, self.spec, teacher_info["output_kind"], teacher_info["task"], teacher_info["name"]
        )
        memory = ReplayMemory(1, {"obs": ((1,), np.uint8)})  # replaced by each request's
        self.task = DistillTask(self.teacher, self.spec, memory, task_index)
        self.task.env = make_vector_env(self.spec, num_envs, 0)  # reset with its seed at the first request
        self.num_envs = num_envs
        self.controller = controller
        self.student: QNetwork | None = None
        self.rng = np.random.default_rng(0)

    def play(
        self,
        steps: int,
        updates: int,
        reset_seed: int | None = None,
        teacher_state: dict[str, torch.Tensor] | None = None,
        student: dict[str, Any] | None = None,
        controller: Controller | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Play ``steps`` vector steps, after taking any new seed, weights or controller sent along.

        Args:
            steps: vector steps to play.
            updates: the learner's student updates so far (the controller's schedule reads it).
            reset_seed: first request: reset the envs (env ``i``: ``reset_seed + i``) and the rng.
            teacher_state: new teacher weights.
            student: new student ``{"arch": Architecture dict, "state": state_dict}``.
            controller: a new controller.

        Returns:
            ``obs`` ``(steps, num_envs, C, H, W)`` uint8 and ``teacher_out`` ``(steps, num_envs, A)``
            float32: each observation and the teacher's output for it, in play order.
        """
        task = self.task
        if reset_seed is not None:
            task.reset(reset_seed)
            self.rng = np.random.default_rng(reset_seed)
        if teacher_state is not None:
            self.teacher.load_weights(teacher_state)
        if student is not None:
            arch = Architecture.from_dict(student["arch"])
            if self.student is None or self.student.arch != arch:
                self.student = QNetwork(arch)
            self.student.load_state_dict(student["state"])
        if controller is not None:
            self.controller = controller
        n = steps * self.num_envs
        fields = {
            "obs": (self.spec.obs_shape, np.uint8),
            "teacher_out": ((self.teacher.n_actions,), np.float32),
        }
        task.memory = ReplayMemory(n, fields)
        # the learner's own collect(): same NaN check, same controller call; rows are (step, env) ordered
        collect(task, self.controller, self.student, n, self.rng, updates)
        rows = task.memory.all_rows()
        return (
            rows["obs"].reshape(steps, self.num_envs, *self.spec.obs_shape),
            rows["teacher_out"].reshape(steps, self.num_envs, -1),
        )

    def student_state(self) -> dict[str, torch.Tensor] | None:
        """The actor's copy of the student's weights (None before any was sent); for tests."""
        return None if self.student is None else self.student.state_dict()

    def teacher_state(self) -> dict[str, torch.Tensor]:
        """The actor's copy of the teacher's weights; for tests."""
        return self.teacher.net.state_dict()


class _WeightSync:
    """Publishes one network's weights to Ray's object store, once per change.

    ``version`` counts publications; actors hold the version they were last sent. What is published
    is a CPU copy, wherever the network lives.
    """

    def __init__(self, ray: Any, with_arch: bool = False):
        self.ray, self.with_arch = ray, with_arch
        self.net: torch.nn.Module | None = None
        self.version = 0
        self.ref: Any = None
        self._source_version: int | None = None

    def publish(self, net: QNetwork, source_version: int) -> tuple[int, Any]:
        """``(version, object ref)`` of ``net``'s current weights, publishing them if they changed:
        if ``net`` is another network, or its owner's ``source_version`` differs from the last one."""
        if net is not self.net or source_version != self._source_version:
            state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
            payload: Any = state
            if self.with_arch:
                payload = {"arch": net.arch.to_dict(), "state": state}
            self.ref = self.ray.put(payload)
            self.net, self._source_version = net, source_version
            self.version += 1
        return self.version, self.ref


@dataclass
class _Slot:
    """One actor of a task, as the learner sees it."""

    handle: Any
    serial: int  # actors started for this task before this one (seeds, logs)
    teacher_version: int  # the versions the actor holds (or will, once its queued requests run)
    student_version: int = 0
    controller_version: int = 0
    started: bool = False  # its first request (with the env seed) was sent


class RayCollector:
    """Teacher play in Ray actors, ``cfg.ray_actors`` per task; see the module docstring.

    Args:
        cfg: ``ray_address`` (empty: a local Ray started here), ``ray_actors``, ``num_envs``,
            ``seed``, ``torch_threads``, and the controller settings.
        tasks: the learner's tasks (teacher, env spec, memory, head index); their teachers must be
            :class:`~poldist.teachers.NetworkTeacher` s (actors rebuild them from their networks).
        chunk: vector steps an actor plays per request.
        in_flight: outstanding requests per actor (the back-pressure bound above).
        max_failures: actors of one task that may die in a row, with no chunk delivered in
            between, before the run stops.
        warn_after_s: warn when no chunk arrived for this long (e.g. a cluster without free CPUs).

    Attributes:
        stats: ``chunks``, ``transitions``, ``replacements``, ``wait_seconds`` (learner blocked in
            ``ray.wait``), ``teacher_sends`` / ``student_sends`` (weights attached to requests).
    """

    def __init__(
        self,
        cfg: DistillConfig,
        tasks: list[DistillTask],
        *,
        chunk: int = DEFAULT_CHUNK,
        in_flight: int = DEFAULT_IN_FLIGHT,
        max_failures: int | None = None,
        warn_after_s: float = 60.0,
    ):
        if cfg.ray_actors < 1 or chunk < 1 or in_flight < 1:
            raise PoldistError("ray_actors, chunk and in_flight must be at least 1")
        for task in tasks:
            if not isinstance(task.teacher, NetworkTeacher):
                raise PoldistError(f"backend ray plays network teachers only; {task.teacher.name} is not one")
        self.ray = ray = _import_ray()
        self.cfg, self.tasks = cfg, tasks
        self.chunk, self.in_flight, self.warn_after_s = chunk, in_flight, warn_after_s
        self.max_failures = max_failures if max_failures is not None else max(3, 2 * cfg.ray_actors)
        total = cfg.ray_actors * len(tasks)
        self._owns_ray = init_ray(cfg.ray_address, num_cpus=min(os.cpu_count() or 1, total))
        # 1 CPU per actor where the cluster has them (Ray spreads actors over nodes); else equal
        # shares of what is free, so that more actors than cores still start (they time-share)
        free = ray.available_resources().get("CPU", 0.0)
        self._cpus = 1.0 if free >= total else math.floor(1e4 * free / total) / 1e4
        self._player = ray.remote(_TeacherPlayer)
        self._controller = make_controller(cfg)
        self._controller_version, self._controller_ref = 0, ray.put(self._controller)
        self._teacher_sync = [_WeightSync(ray) for _ in tasks]
        self._student_sync = _WeightSync(ray, with_arch=True)
        self._slots: list[list[_Slot]] = [[] for _ in tasks]
        self._pending: list[dict[Any, _Slot]] = [{} for _ in tasks]  # request ref -> its actor
        self._serials = [0] * len(tasks)
        self._failures = [0] * len(tasks)
        self._closed = False
        self.stats: dict[str, float] = dict.fromkeys(
            ("chunks", "transitions", "replacements", "teacher_sends", "student_sends"), 0
        )
        self.stats["wait_seconds"] = 0.0
        for task in tasks:
            for _ in range(cfg.ray_actors):  # started now: their start-up overlaps the learner's
                self._slots[task.index].append(self._start_actor(task))

    @property
    def actors(self) -> list[list[Any]]:
        """The live actor handles, one list per task (tests kill one with ``ray.kill``)."""
        return [[s.handle for s in slots] for slots in self._slots]

    def pending(self, task: int) -> list[Any]:
        """Task ``task``'s outstanding requests (object refs), oldest first."""
        return list(self._pending[task])

    def actor_student_state(self, task: int, actor: int) -> dict[str, torch.Tensor] | None:
        """Actor ``actor`` of task ``task``: its copy of the student's weights (after its queued requests)."""
        return self.ray.get(self._slots[task][actor].handle.student_state.remote())

    def actor_teacher_state(self, task: int, actor: int) -> dict[str, torch.Tensor]:
        """Actor ``actor`` of task ``task``: its copy of the teacher's weights (after its queued requests)."""
        return self.ray.get(self._slots[task][actor].handle.teacher_state.remote())

    def _publish_teacher(self, task: DistillTask) -> tuple[int, Any]:
        teacher = task.teacher
        assert isinstance(teacher, NetworkTeacher)  # checked when the collector was made
        return self._teacher_sync[task.index].publish(teacher.net, teacher.version)

    def _start_actor(self, task: DistillTask) -> _Slot:
        teacher = task.teacher
        assert isinstance(teacher, NetworkTeacher)  # checked when the collector was made
        version, ref = self._publish_teacher(task)
        info = {"output_kind": teacher.output_kind, "task": teacher.task, "name": teacher.name}
        handle = self._player.options(num_cpus=self._cpus, max_restarts=0).remote(
            task.spec.to_dict(),
            teacher.net.arch.to_dict(),
            ref,  # a top-level ref: Ray hands the actor the state_dict itself
            info,
            self._controller_ref,
            self.cfg.num_envs,
            task.index,
            self.cfg.torch_threads,
        )
        serial = self._serials[task.index]
        self._serials[task.index] += 1
        return _Slot(handle, serial, version, controller_version=self._controller_version)

    def _request(self, task: DistillTask, slot: _Slot, updates: int, student: Any) -> None:
        """Ask ``slot``'s actor for one chunk, with whatever it lacks (seed, weights, controller)."""
        kwargs: dict[str, Any] = {}
        if not slot.started:
            # distinct per actor (env i of an actor: seed + i), per task, and after a resume
            kwargs["reset_seed"] = run_env_seed(
                self.cfg.env_seeds, self.cfg.seed, "collect", task.index, updates, actor=slot.serial
            )
            slot.started = True
        t_version, t_ref = self._teacher_sync[task.index].version, self._teacher_sync[task.index].ref
        if slot.teacher_version != t_version:
            kwargs["teacher_state"], slot.teacher_version = t_ref, t_version
            self.stats["teacher_sends"] += 1
        if student is not None and slot.student_version != self._student_sync.version:
            kwargs["student"], slot.student_version = self._student_sync.ref, self._student_sync.version
            self.stats["student_sends"] += 1
        if slot.controller_version != self._controller_version:
            kwargs["controller"], slot.controller_version = self._controller_ref, self._controller_version
        ref = slot.handle.play.remote(self.chunk, updates, **kwargs)
        self._pending[task.index][ref] = slot

    def _top_up(self, task: DistillTask, updates: int, student: Any) -> None:
        """Give every actor of ``task`` ``in_flight`` outstanding requests."""
        pending = self._pending[task.index]
        for slot in self._slots[task.index]:
            for _ in range(self.in_flight - sum(s is slot for s in pending.values())):
                self._request(task, slot, updates, student)

    def _replace(self, task: DistillTask, dead: _Slot, error: BaseException) -> None:
        """Start a new actor in ``dead``'s place (a fresh seed); raise if actors keep dying."""
        slots = self._slots[task.index]
        if not any(s is dead for s in slots):
            return  # an older request of an actor already replaced
        self._failures[task.index] += 1
        if self._failures[task.index] > self.max_failures:
            raise PoldistError(
                f"Ray actors for {task.spec.env_id} keep dying ({self._failures[task.index]} in a row "
                f"without delivering play); last error: {type(error).__name__}: {error}"
            )
        try:
            self.ray.kill(dead.handle, no_restart=True)
        except Exception:  # already gone
            pass
        # its other requests will fail too: drop them now, their actor is gone
        pending = self._pending[task.index]
        for ref in [r for r, s in pending.items() if s is dead]:
            del pending[ref]
        new = self._start_actor(task)
        slots[slots.index(dead)] = new
        self.stats["replacements"] += 1
        warnings.warn(
            f"poldist ray: actor {dead.serial} of {task.spec.env_id} died ({type(error).__name__}); "
            f"started actor {new.serial} in its place",
            RuntimeWarning,
            stacklevel=3,
        )

    def _add(self, task: DistillTask, slot: _Slot, obs: np.ndarray, teacher_out: np.ndarray) -> None:
        """Add one chunk, ``obs`` ``(T, N, C, H, W)``, ``teacher_out`` ``(T, N, A)``, step by step."""
        # frame sharing (FrameStackMemory) follows this actor's env stream, not the previous chunk's
        task.memory.select_stream(("ray-actor", slot.serial))
        for t in range(obs.shape[0]):
            task.memory.add(obs=obs[t], teacher_out=teacher_out[t])

    def collect(
        self,
        task: DistillTask,
        controller: Controller,
        student: QNetwork,
        n_transitions: int,
        rng: np.random.Generator,
        updates: int = 0,
    ) -> None:
        """Add at least ``n_transitions`` teacher-labelled transitions (whole chunks) to ``task.memory``.

        ``updates``: student updates so far (controller schedules, seeds of new actors);
        ``rng`` is not used (actors have their own).
        """
        if self._closed:
            raise PoldistError("this RayCollector was closed")
        ray = self.ray
        if controller is not self._controller and controller != self._controller:
            self._controller = controller
            self._controller_version += 1
            self._controller_ref = ray.put(controller)
        self._publish_teacher(task)
        uses_student = not isinstance(controller, TeacherControl)
        if uses_student:  # the student's weights change by updates only: its version is their count
            self._student_sync.publish(student, updates)
        sent_student = student if uses_student else None
        self._top_up(task, updates, sent_student)
        pending = self._pending[task.index]
        done = 0
        while done < n_transitions:
            refs = list(pending)  # in request order
            # the oldest finished request first (ray.wait alone may keep returning one actor's)
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
            if not ready:
                start = time.perf_counter()
                ready, _ = ray.wait(refs, num_returns=1, timeout=self.warn_after_s)
                self.stats["wait_seconds"] += time.perf_counter() - start
            if not ready:
                warnings.warn(
                    f"poldist ray: no play from {task.spec.env_id}'s actors for {self.warn_after_s:.0f} s "
                    f"(each needs {self._cpus} CPU; does the cluster have them free?); still waiting",
                    RuntimeWarning,
                    stacklevel=2,
                )
                continue
            finished = set(ready)
            ref = next(r for r in refs if r in finished)
            slot = pending.pop(ref)
            try:
                obs, teacher_out = ray.get(ref)
            except ray.exceptions.RayActorError as e:
                self._replace(task, slot, e)
                self._top_up(task, updates, sent_student)
                continue
            except ray.exceptions.ObjectLostError:  # the result is gone, maybe not the actor: ask again
                self._request(task, slot, updates, sent_student)
                continue
            except ray.exceptions.RayTaskError as e:
                if isinstance(e.cause, PoldistError):  # e.g. non-finite teacher outputs
                    raise PoldistError(str(e.cause)) from None
                raise
            self._failures[task.index] = 0
            self._add(task, slot, obs, teacher_out)
            done += obs.shape[0] * obs.shape[1]
            self.stats["chunks"] += 1
            self.stats["transitions"] += obs.shape[0] * obs.shape[1]
            self._request(task, slot, updates, sent_student)  # with fresh weights, if any

    def close(self) -> None:
        """Kill the actors; shut Ray down if this collector started it. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for slots in self._slots:
            for slot in slots:
                try:
                    self.ray.kill(slot.handle, no_restart=True)
                except Exception:  # already dead
                    pass
        self._pending = [{} for _ in self.tasks]
        if self._owns_ray:
            self.ray.shutdown()
