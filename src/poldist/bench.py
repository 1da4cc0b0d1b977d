"""The library's benchmark, run in one go on the current machine.

``python -m poldist.bench [--quick] [--no-atari] [--json PATH]`` prints one plain-text table per
section and writes every raw number, the machine and the date as JSON. Each section is a ratio of
two rates measured in the same run, so that a loaded machine depresses both sides alike:

1. **update efficiency**: distillation updates/s as :class:`~poldist.distillation.Distiller` does
   them (``memory.sample`` + ``torch.as_tensor`` + :func:`~poldist.distillation.distill_step`, KL
   loss) against a bare PyTorch loop of the same network, batch and RMSprop on tensors made once.
2. **collection efficiency**: teacher-labelled transitions/s of
   :func:`~poldist.distillation.collect` against stepping the same vector env with random actions
   (and against a bare loop that steps it with the teacher's greedy actions).
3. **inference**: actions/s of the teacher and the students, PyTorch and onnxruntime.
4. **time to quality**: training seconds for a net2 student to reach 95% of its teacher by
   distillation, against Double DQN from scratch on the same network.
5. **memory**: bytes per stored transition of the distillation replay memory, and the size of the
   paper's 540,000-transition memory.

The full run takes about 2 to 3 minutes on 2 CPU cores (at most about 8 when distillation misses
its target and the DQN runs to its 300 s cap); ``--quick`` (tests) about 10 s, and only checks
the plumbing. Everything runs on one torch thread, the library's default
(``torch_threads=1`` of the configs).

``--device`` (default ``auto``: CUDA, else MPS, else CPU) puts the networks of sections 1 to 4 on
that device, both sides of each ratio alike: minibatches and observations go there as the library
sends them; replay memories, env stepping, onnxruntime and the Ray actors stay on the CPU. Off the
CPU, each timed call ends by waiting for the device, so queued kernels are not left out.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import importlib.util
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import torch
import torch.nn.functional as F

from poldist import dqn as dqn_module
from poldist.checkpoints import save_model
from poldist.cli import format_table
from poldist.distillation import (
    DistillConfig,
    Distiller,
    DistillTask,
    TeacherControl,
    _optimizer,
    build_tasks,
    collect,
    distill_step,
    make_student,
)
from poldist.dqn import DQNConfig, train_dqn
from poldist.envs import MINATAR_GAMES, EnvSpec, make_env_spec, make_vector_env
from poldist.errors import PoldistError
from poldist.evaluation import evaluate
from poldist.losses import make_loss
from poldist.networks import (
    QNetwork,
    count_parameters,
    nature_dqn,
    resolve_device,
    student_architecture,
    to_device,
)
from poldist.runs import machine_info
from poldist.teachers import ZOO, NetworkTeacher, load_teacher
from poldist.zoo import reference_returns

SECTIONS = ("update", "collection", "inference", "time_to_quality", "memory", "dqn_atari")
SIZES = ("net1", "net2", "net3")
ATARI_ID = "ALE/Breakout-v5"
MINATAR_TEACHER = "minatar/breakout"
PAPER_MEMORY = 540_000  # transitions in the paper's distillation replay memory
ATARI_MEMORY_TARGET_GB = 5.0
UPDATE_TARGET = 0.7
TTQ_TARGET = 10.0
DQN_TARGET = 1.5  # issue 19: Atari teacher training at 1.5x CleanRL's dqn_atari.py as measured (1 thread)


@dataclass(frozen=True)
class Budget:
    """How long each measurement runs; :data:`FULL` for the real run, :data:`QUICK` for tests."""

    seconds: float  # per timed measurement
    rounds: int  # library and baseline alternate this many times; the median round is reported
    fill: int  # teacher transitions in the memory sampled by the update benchmark
    inference_seconds: float
    memory_rows_minatar: int
    memory_rows_atari: int
    ttq_chunk: int  # distillation updates between evaluations
    ttq_learning_starts: int
    ttq_eval_episodes: int
    ttq_distill_max_s: float  # give up distilling after this much training time
    ttq_dqn_max_s: float  # cap on the DQN's training time, whatever 10x the distillation is
    dqn_total_steps: int
    dqn_learning_starts: int
    dqn_eval_interval: int
    dqn_buffer_size: int
    atari_dqn_steps: int = 6_000  # section 6: agent steps timed after learning starts, per run
    atari_dqn_learning_starts: int = 3_000
    atari_dqn_repeats: int = 2
    atari_dqn_memory_rows: int = 50_000  # transitions in the peak-memory runs


FULL = Budget(
    seconds=1.0,
    rounds=3,
    fill=10_000,
    inference_seconds=0.5,
    memory_rows_minatar=5_000,
    memory_rows_atari=5_000,
    ttq_chunk=1_000,
    ttq_learning_starts=DistillConfig.learning_starts,
    ttq_eval_episodes=50,  # 20 episodes let seed luck set the target (a 20-episode teacher: 7 to 14)
    ttq_distill_max_s=60.0,
    ttq_dqn_max_s=300.0,
    dqn_total_steps=DQNConfig.total_steps,
    dqn_learning_starts=DQNConfig.learning_starts,
    dqn_eval_interval=10_000,
    dqn_buffer_size=DQNConfig.buffer_size,
)
QUICK = Budget(
    seconds=0.15,
    rounds=1,
    fill=1_000,
    inference_seconds=0.05,
    memory_rows_minatar=400,
    memory_rows_atari=400,
    ttq_chunk=100,
    ttq_learning_starts=500,
    ttq_eval_episodes=2,
    ttq_distill_max_s=0.5,
    ttq_dqn_max_s=2.0,
    dqn_total_steps=3_000,
    dqn_learning_starts=1_000,
    dqn_eval_interval=1_000,
    dqn_buffer_size=5_000,
    atari_dqn_steps=40,
    atari_dqn_learning_starts=40,
    atari_dqn_repeats=1,
    atari_dqn_memory_rows=200,
)


# --------------------------------------------------------------------------- timing helpers

CPU = torch.device("cpu")


def synchronize(device: torch.device) -> None:
    """Wait for the work queued on ``device`` (nothing to wait for on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def rate(fn: Callable[[], Any], items: int, seconds: float, warmup: int = 3) -> float:
    """Items per second of ``fn`` (one call does ``items`` items), timed for ``seconds`` after a warm-up."""
    for _ in range(warmup):
        fn()
    calls, start = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return items * calls / elapsed


def paired_rates(
    fns: dict[str, tuple[Callable[[], Any], int]], seconds: float, rounds: int
) -> dict[str, dict[str, Any]]:
    """Rates of several ``(fn, items)``, alternated for ``rounds`` rounds: median and every round.

    Alternating puts the library and its baseline under the same background load.
    """
    per: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, (fn, items) in fns.items():
            per[name].append(rate(fn, items, seconds))
    return {name: {"median": statistics.median(r), "rounds": r} for name, r in per.items()}


def _onnx_missing() -> str | None:
    """Why ONNX rows cannot be measured (a missing optional package), or None."""
    missing = [m for m in ("onnx", "onnxscript", "onnxruntime") if importlib.util.find_spec(m) is None]
    return (
        f"onnx rows skipped: {', '.join(missing)} not installed (pip install 'poldist[deploy]')"
        if missing
        else None
    )


def _atari_missing() -> str | None:
    return None if importlib.util.find_spec("ale_py") is not None else "Atari skipped: ale-py not importable"


def random_atari_teacher(seed: int = 0) -> NetworkTeacher:
    """A Nature-DQN teacher with random weights on ``ALE/Breakout-v5`` (speed does not depend on weights)."""
    spec = make_env_spec(ATARI_ID)
    torch.manual_seed(seed)
    return NetworkTeacher(QNetwork(nature_dqn(spec.n_actions, spec.obs_shape[0])), spec, "q", 0, "nature-dqn")


def _filled_task(cfg: DistillConfig, teachers: list[NetworkTeacher] | None, n: int, seed: int) -> DistillTask:
    """The first task ``build_tasks`` makes for ``cfg``, its memory filled with ``n`` teacher transitions."""
    task = build_tasks(cfg, teachers)[0]
    task.start(cfg.num_envs, seed)
    student = make_student(cfg, [task])
    collect(task, TeacherControl(cfg.epsilon), student, n, np.random.default_rng(seed))
    return task


# --------------------------------------------------------------------------- 1. update efficiency


def _update_row(
    task: DistillTask,
    size: str,
    batch_size: int,
    tau: float,
    budget: Budget,
    seed: int,
    device: torch.device = CPU,
) -> dict[str, Any]:
    """Library and bare-loop updates/s of one student size and batch on ``task``'s filled memory.

    Both networks on ``device``: the library samples the host memory and moves each minibatch
    there; the bare loop's tensors are made there once.
    """
    cfg = DistillConfig(teacher=MINATAR_TEACHER, student=size, batch_size=batch_size, seed=seed)
    torch.manual_seed(seed)
    student = make_student(cfg, [task]).to(device)
    optimizer = _optimizer(cfg, student.parameters())  # as Distiller makes it
    loss_fn = make_loss(cfg.loss, tau)
    rng = np.random.default_rng(seed)

    def library_update() -> None:
        # the body of Distiller.run's loop, collection and logging aside
        batch = task.memory.sample(cfg.batch_size, rng)
        obs, teacher_out = to_device(batch["obs"], device), to_device(batch["teacher_out"], device)
        loss = distill_step(student, optimizer, loss_fn, obs, teacher_out, 0)
        if not np.isfinite(loss):
            raise RuntimeError(f"library loss became {loss}")

    bare_net = copy.deepcopy(student)  # same weights, its own optimizer state
    bare_opt = torch.optim.RMSprop(bare_net.parameters(), lr=cfg.lr, alpha=0.95, eps=1e-6)
    _check_same_optimizer(optimizer, bare_opt)
    c, h, w = task.spec.obs_shape
    obs_t = torch.randint(0, 2, (batch_size, c, h, w), dtype=torch.uint8).to(device)
    target_t = torch.randn(batch_size, task.teacher.n_actions).to(device)

    def bare_update() -> None:
        log_p_s = F.log_softmax(bare_net(obs_t), dim=1)
        log_p_t = F.log_softmax(target_t / tau, dim=1)
        loss = F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True)
        bare_opt.zero_grad(set_to_none=True)
        loss.backward()
        bare_opt.step()
        if device.type != "cpu":  # the library's loss.item() waits for the device; so does this
            synchronize(device)

    r = paired_rates(
        {"library": (library_update, 1), "bare": (bare_update, 1)}, budget.seconds, budget.rounds
    )
    lib, bare = r["library"]["median"], r["bare"]["median"]
    return {
        "env_id": task.spec.env_id,
        "device": str(device),
        "student": size,
        "params": count_parameters(student),
        "batch": batch_size,
        "library_updates_per_s": lib,
        "bare_updates_per_s": bare,
        "ratio": lib / bare,
        "library_rounds": r["library"]["rounds"],
        "bare_rounds": r["bare"]["rounds"],
    }


def bench_update(budget: Budget, seed: int = 0, device: torch.device = CPU) -> dict[str, Any]:
    """Distillation updates/s as ``Distiller.run`` does them against a bare PyTorch loop.

    MinAtar Breakout, the shipped teacher's transitions in memory; students net2 and
    teacher-sized, batches 32 and 256, KL loss, RMSprop; networks on ``device``.
    """
    base = DistillConfig(teacher=MINATAR_TEACHER, loss="kl", seed=seed)
    task = _filled_task(base, None, budget.fill, seed)
    task.env.close()
    tau = base.tau or task.teacher.default_tau
    rows = [
        _update_row(task, size, batch_size, tau, budget, seed, device)
        for size in ("net2", "teacher")
        for batch_size in (32, 256)
    ]
    return {
        "target_ratio": UPDATE_TARGET,
        "loss": "kl",
        "tau": tau,
        "optimizer": "rmsprop",
        "memory_rows": task.memory.size,
        "rows": rows,
    }


def _check_same_optimizer(a: torch.optim.Optimizer, b: torch.optim.Optimizer) -> None:
    """Refuse to compare against a baseline whose optimizer differs from the library's."""
    keys = ("lr", "alpha", "eps", "momentum", "weight_decay", "centered")
    if type(a) is not type(b) or any(a.param_groups[0].get(k) != b.param_groups[0].get(k) for k in keys):
        raise RuntimeError(f"bare loop's optimizer {b} differs from the library's {a}")


# --------------------------------------------------------------------------- 2. collection efficiency


def _collection_row(
    label: str,
    cfg: DistillConfig,
    teacher: NetworkTeacher | None,
    budget: Budget,
    seed: int,
    device: torch.device = CPU,
) -> dict[str, Any]:
    """``collect()`` against random-action and teacher-acting bare loops, each on its own vector env.

    The teacher (and the student ``collect`` is given) on ``device``: each vector step's
    observations go there and the outputs or actions come back, in the library and the bare
    teacher-acting loop alike.
    """
    task = _filled_task(cfg, [teacher] if teacher else None, 0, seed)
    task.teacher.net.to(device)
    student = make_student(cfg, [task]).to(device)
    controller = TeacherControl(cfg.epsilon)
    rng = np.random.default_rng(seed)
    n = cfg.num_envs

    def library_collect() -> None:
        collect(task, controller, student, n, rng)  # one vector step: n transitions

    spec = task.spec
    bare_env = make_vector_env(spec, n, seed + 1)
    bare_env.reset(seed=seed + 1)

    def bare_step() -> None:
        bare_env.step(rng.integers(0, spec.n_actions, n))

    act_env = make_vector_env(spec, n, seed + 2)
    state = {"obs": act_env.reset(seed=seed + 2)[0]}
    net = task.teacher.net

    def bare_teacher_step() -> None:
        # the least a teacher-acting loop must do: one forward pass and one env step
        with torch.inference_mode():
            actions = net(to_device(state["obs"], device)).argmax(1).cpu().numpy()
        state["obs"] = act_env.step(actions)[0]

    try:
        r = paired_rates(
            {
                "collect": (library_collect, n),
                "bare_random": (bare_step, n),
                "bare_teacher": (bare_teacher_step, n),
            },
            budget.seconds,
            budget.rounds,
        )
    finally:
        for env in (task.env, bare_env, act_env):
            env.close()
    lib, bare, bare_t = (r[k]["median"] for k in ("collect", "bare_random", "bare_teacher"))
    return {
        "env_id": spec.env_id,
        "device": str(device),
        "teacher": label,
        "num_envs": n,
        "memory_class": type(task.memory).__name__,
        "collect_transitions_per_s": lib,
        "bare_random_steps_per_s": bare,
        "bare_teacher_steps_per_s": bare_t,
        "ratio": lib / bare,
        "ratio_vs_bare_teacher": lib / bare_t,
        "rounds": {k: v["rounds"] for k, v in r.items()},
    }


def _ray_missing() -> str | None:
    return (
        None
        if importlib.util.find_spec("ray") is not None
        else "ray rows skipped: ray not installed (pip install 'poldist[ray]')"
    )


def bench_ray_collection(budget: Budget, seed: int = 0, actors: Sequence[int] = (1, 2)) -> dict[str, Any]:
    """Transitions/s that reach the learner's memory: the local backend against Ray actors.

    MinAtar Breakout, shipped teacher, teacher-driven, 8 envs per actor, on a local Ray (started
    here unless one is running). Each call takes one chunk's worth (``DEFAULT_CHUNK`` vector steps
    of 8 envs), so the local side is :func:`~poldist.distillation.collect` of the same size; a
    Ray side's rate includes the learner waiting for actors and adding chunks to the memory. Its
    warm-up first takes the chunks the actors played while the other sides were timed.
    """
    from poldist.ray_backend import DEFAULT_CHUNK, DEFAULT_IN_FLIGHT, RayCollector, init_ray

    started = init_ray("", num_cpus=min(2, os.cpu_count() or 1))
    collectors: list[RayCollector] = []
    try:
        base = DistillConfig(teacher=MINATAR_TEACHER, memory_size=20_000, seed=seed)
        task = _filled_task(base, None, 0, seed)
        student = make_student(base, [task])
        controller = TeacherControl(base.epsilon)
        rng = np.random.default_rng(seed)
        n = DEFAULT_CHUNK * base.num_envs
        fns: dict[str, tuple[Callable[[], Any], int]] = {
            "local": (lambda: collect(task, controller, student, n, rng), 1)
        }
        for k in actors:
            c = RayCollector(DistillConfig(teacher=MINATAR_TEACHER, ray_actors=k, seed=seed), [task])
            collectors.append(c)
            fns[f"ray_{k}"] = (lambda c=c: c.collect(task, controller, student, n, rng), k)
        per: dict[str, list[float]] = {name: [] for name in fns}
        for _ in range(budget.rounds):  # alternated, as paired_rates, with a warm-up per side
            for name, (fn, k) in fns.items():
                per[name].append(rate(fn, n, budget.seconds, warmup=k * DEFAULT_IN_FLIGHT + 1))
        task.env.close()
    finally:
        for c in collectors:
            c.close()
        if started:
            import ray

            ray.shutdown()
    local = statistics.median(per["local"])
    rows = [{"backend": "local", "actors": 0, "transitions_per_s": local, "ratio_vs_local": 1.0}]
    for k in actors:
        r = statistics.median(per[f"ray_{k}"])
        rows.append({"backend": "ray", "actors": k, "transitions_per_s": r, "ratio_vs_local": r / local})
    for row, rounds in zip(rows, per.values()):
        row.update(env_id=task.spec.env_id, num_envs=base.num_envs, chunk_steps=DEFAULT_CHUNK, rounds=rounds)
    return {"rows": rows}


def bench_collection(
    budget: Budget, atari: bool, seed: int = 0, ray_rows: bool = True, device: torch.device = CPU
) -> dict[str, Any]:
    """Teacher-labelled transitions/s of ``collect()`` against bare vector-env stepping, 8 envs,
    the teacher on ``device``; with ``ray_rows``, also the Ray backend with 1 and 2 local actors
    (:func:`bench_ray_collection`; its actors and its local side on the CPU)."""
    rows = [
        _collection_row(MINATAR_TEACHER, DistillConfig(teacher=MINATAR_TEACHER), None, budget, seed, device)
    ]
    notes = []
    skip = "Atari skipped: --no-atari" if not atari else _atari_missing()
    if skip:
        notes.append(skip)
    else:
        teacher = random_atari_teacher(seed)
        # a small memory: only the rows the timing writes are touched
        cfg = DistillConfig(teacher="", memory_size=20_000)
        rows.append(_collection_row("nature-dqn (random weights)", cfg, teacher, budget, seed, device))
    result: dict[str, Any] = {"rows": rows, "notes": notes}
    ray_skip = "ray rows skipped: --quick (Ray starts in seconds)" if not ray_rows else _ray_missing()
    if ray_skip:
        notes.append(ray_skip)
    else:
        result["ray_rows"] = bench_ray_collection(budget, seed)["rows"]
        if device.type != "cpu":
            notes.append("ray rows on the CPU: Ray actors always are, and so is their local baseline")
    return result


# --------------------------------------------------------------------------- 3. inference


def inference_models(atari: bool) -> list[tuple[str, str, QNetwork, EnvSpec]]:
    """``(name, role, network, env spec)`` of each network to time; role ``teacher`` or a size name.

    The shipped MinAtar Breakout teacher and students of it (random weights: speed does not
    depend on them); with ``atari``, the Nature-DQN network and its students on 84x84 frames.
    """
    teacher = load_teacher(MINATAR_TEACHER)
    out = [("minatar/breakout teacher", "teacher", teacher.net, teacher.env)]
    for size in SIZES:
        net = QNetwork(student_architecture(teacher.net.arch, size))
        out.append((f"minatar {size}", size, net, teacher.env))
    if atari:
        spec = make_env_spec(ATARI_ID)
        arch = nature_dqn(spec.n_actions)
        out.append(("atari nature (teacher)", "teacher", QNetwork(arch), spec))
        for size in SIZES:
            out.append((f"atari {size}", size, QNetwork(student_architecture(arch, size)), spec))
    return out


def bench_inference(
    threads: int = 1,
    seconds: float = 0.5,
    atari: bool = True,
    batches: tuple[int, ...] = (1, 256),
    onnx: bool = True,
    device: torch.device = CPU,
) -> dict[str, Any]:
    """Actions/s from a numpy uint8 batch to numpy actions, PyTorch against onnxruntime.

    PyTorch: ``net(to_device(obs, device)).argmax(1)`` back to numpy, under
    ``torch.inference_mode``, the network on ``device``; onnxruntime (always the CPU):
    :meth:`poldist.deploy.OnnxPolicy.act` on the exported model. Both get ``threads`` CPU threads.
    One row per (network, batch), with each network's speed relative to its domain's teacher at
    the same batch and backend. On the CPU, PyTorch's and onnxruntime's actions are checked equal.
    """
    notes = []
    if device.type != "cpu":
        notes.append(f"torch rows on {device}, onnxruntime rows on the CPU")
    if atari and _atari_missing():
        notes.append(_atari_missing())
        atari = False
    why_not = _onnx_missing() if onnx else "onnx rows skipped: not asked for"
    if why_not:
        notes.append(why_not)
    if not why_not:  # optional dependencies: imported only when present
        from poldist.deploy import OnnxPolicy
        from poldist.export import export_onnx
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    rows: list[dict[str, Any]] = []
    teacher_rates: dict[tuple[str, int], dict[str, Any]] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for i, (name, role, net, spec) in enumerate(inference_models(atari)):
                net.eval().to(device)
                policy = None
                if not why_not:
                    save_model(Path(tmp) / f"m{i}", net, spec)
                    onnx_path = export_onnx(Path(tmp) / f"m{i}", Path(tmp) / f"m{i}.onnx")
                    policy = OnnxPolicy(onnx_path, threads=threads)
                high = 2 if net.arch.obs_scale == 1.0 else 256  # MinAtar {0, 1} grids, Atari pixels
                for batch in batches:
                    obs = rng.integers(0, high, (batch, *net.arch.obs_shape), dtype=np.uint8)

                    def torch_act(net: QNetwork = net, obs: np.ndarray = obs) -> np.ndarray:
                        with torch.inference_mode():
                            return net(to_device(obs, device)).argmax(1).cpu().numpy()

                    row: dict[str, Any] = {
                        "model": name,
                        "domain": spec.domain,
                        "role": role,
                        "device": str(device),
                        "params": count_parameters(net),
                        "batch": batch,
                        "torch_actions_per_s": rate(torch_act, batch, seconds),
                        "onnxruntime_actions_per_s": None,
                        "onnx_over_torch": None,
                    }
                    if policy is not None:
                        if device.type == "cpu":  # other devices' kernels may break near-ties otherwise
                            np.testing.assert_array_equal(torch_act(), policy.act(obs))
                        o = rate(lambda p=policy, x=obs: p.act(x), batch, seconds)
                        row.update(
                            onnxruntime_actions_per_s=o, onnx_over_torch=o / row["torch_actions_per_s"]
                        )
                    if role == "teacher":
                        teacher_rates[spec.domain, batch] = row
                    ref = teacher_rates[spec.domain, batch]
                    row["torch_over_teacher"] = row["torch_actions_per_s"] / ref["torch_actions_per_s"]
                    if policy is not None:
                        row["onnx_over_teacher"] = (
                            row["onnxruntime_actions_per_s"] / ref["onnxruntime_actions_per_s"]
                        )
                    rows.append(row)
    finally:
        torch.set_num_threads(previous)
    return {"threads": threads, "seconds_per_measurement": seconds, "rows": rows, "notes": notes}


def inference_table(rows: list[dict[str, Any]]) -> str:
    """The inference rows as a plain-text table."""

    def num(x: float | None, fmt: str = "{:,.0f}") -> str:
        return "-" if x is None else fmt.format(x)

    return format_table(
        ["model", "params", "batch", "torch act/s", "onnxrt act/s", "onnxrt/torch", "vs teacher (torch)"],
        [
            [
                r["model"],
                r["params"],
                r["batch"],
                num(r["torch_actions_per_s"]),
                num(r["onnxruntime_actions_per_s"]),
                num(r["onnx_over_torch"], "{:.2f}x"),
                f"{r['torch_over_teacher']:.2f}x",
            ]
            for r in rows
        ],
    )


# --------------------------------------------------------------------------- 4. time to quality


def teacher_card_score(name: str = MINATAR_TEACHER) -> float:
    """The shipped teacher's score from its model card (100 episodes at epsilon 0.05)."""
    return float(json.loads((ZOO / name / "card.json").read_text())["eval"]["mean"])


def bench_time_to_quality(
    budget: Budget, workdir: Path, seed: int = 0, device: torch.device = CPU
) -> dict[str, Any]:
    """Training seconds to 95% of the teacher: distillation into net2 against Double DQN on net2,
    both on ``device``.

    The bar is 95% of the teacher's reference score (1,000 episodes on reserved env seeds, the
    yardstick of percent-of-teacher everywhere); the teacher scored with the very evaluation the
    student and the DQN get (``eval_episodes`` episodes, seed ``seed + 10**6``, epsilon 0.05) and
    its model card's score are recorded alongside.
    Evaluation time is excluded on both sides.
    """
    cfg = DistillConfig(
        teacher=MINATAR_TEACHER,
        student="net2",
        loss="kl",
        batch_size=256,
        lr=1e-3,
        learning_starts=budget.ttq_learning_starts,
        updates=10**9,  # never the last update: Distiller.run then neither evaluates nor checkpoints
        eval_interval=10**9,  # we evaluate between the timed chunks ourselves
        checkpoint_interval=10**9,
        eval_episodes=budget.ttq_eval_episodes,
        seed=seed,
        device=str(device),
    )
    eval_seed = cfg.seed + 10**6  # Distiller's and train_dqn's evaluation seed
    distiller = Distiller(cfg, workdir / "distill")
    teacher = distiller.tasks[0].teacher
    card = teacher_card_score()
    paired = evaluate(
        teacher,
        distiller.tasks[0].spec,
        cfg.eval_episodes,
        epsilon=0.05,
        seed=eval_seed,
        device=teacher.device,
    ).mean
    teacher_score = float(np.mean(reference_returns(MINATAR_TEACHER)))  # the yardstick (issue 18)
    target = 0.95 * teacher_score
    curve: list[dict[str, float]] = []
    train_s, reached = 0.0, False
    try:
        while train_s < budget.ttq_distill_max_s:
            start = time.perf_counter()
            distiller.run(distiller.updates + budget.ttq_chunk, show_progress=False)
            train_s += time.perf_counter() - start
            distiller_eval = distiller.evaluate_student(cfg.eval_episodes, eval_seed)[0].mean
            curve.append({"updates": distiller.updates, "train_seconds": train_s, "score": distiller_eval})
            if distiller_eval >= target:
                reached = True
                break
    finally:
        for task in distiller.tasks:
            task.env.close()
        distiller.writer.close()
    distill = {
        "reached": reached,
        "train_seconds": train_s,
        "updates": distiller.updates,
        "updates_per_s_incl_collection": distiller.updates / train_s,
        "best_score": max(p["score"] for p in curve),
        "final_score": curve[-1]["score"],
        "params": count_parameters(distiller.student),
        "curve": curve,
    }

    # Double DQN from scratch on the same network, stopped at the target or at 10x the distillation time
    cap = min(TTQ_TARGET * train_s, budget.ttq_dqn_max_s)
    dcfg = DQNConfig(
        env_id=teacher.env.env_id,
        network="net2",
        seed=seed,
        total_steps=budget.dqn_total_steps,
        learning_starts=budget.dqn_learning_starts,
        buffer_size=budget.dqn_buffer_size,
        eval_interval=budget.dqn_eval_interval,
        eval_episodes=cfg.eval_episodes,
        checkpoint_interval=10**12,  # no periodic checkpoints (writing the memory is not training)
        device=str(device),
    )
    clock: dict[str, float] = {"start": 0.0, "eval": 0.0}
    dqn_curve: list[dict[str, float]] = []
    dqn_reached = False
    real_evaluate = dqn_module.evaluate

    def timed_evaluate(*args: Any, **kwargs: Any) -> Any:
        # train_dqn's wall clock counts its evaluations; time them to take them out
        t0 = time.perf_counter()
        try:
            return real_evaluate(*args, **kwargs)
        finally:
            clock["eval"] += time.perf_counter() - t0

    def on_start(_run_dir: Path) -> None:
        clock["start"] = time.perf_counter()

    def on_eval(step: int, _net: QNetwork, results: list) -> bool:
        nonlocal dqn_reached
        t = time.perf_counter() - clock["start"] - clock["eval"]
        dqn_curve.append({"env_steps": step, "train_seconds": t, "score": results[0].mean})
        dqn_reached = results[0].mean >= target
        return dqn_reached or t >= cap

    with mock.patch.object(dqn_module, "evaluate", timed_evaluate):
        summary = train_dqn(dcfg, workdir / "dqn", on_start=on_start, on_eval=on_eval)
    dqn_s = dqn_curve[-1]["train_seconds"]
    dqn = {
        "reached": dqn_reached,
        "train_seconds": dqn_s,
        "time_cap_seconds": cap,
        "env_steps": summary["env_steps"],
        "updates": summary["updates"],
        "best_score": max(p["score"] for p in dqn_curve),
        "final_score": dqn_curve[-1]["score"],
        "curve": dqn_curve,
    }
    return {
        "env_id": teacher.env.env_id,
        "network": "net2",
        "teacher_score": teacher_score,
        "teacher_score_source": "reference score (1,000 episodes on reserved env seeds)",
        "teacher_paired_score": paired,
        "teacher_paired_source": f"as the student: {cfg.eval_episodes} episodes, seed {eval_seed}",
        "teacher_card_score": card,
        "target_fraction": 0.95,
        "target_score": target,
        "distillation": distill,
        "dqn": dqn,
        # a lower bound while the DQN has not reached the target; undefined if distillation did not
        "ratio": dqn_s / train_s,
        "ratio_is_lower_bound": reached and not dqn_reached,
        "ratio_valid": reached,
        "target_ratio": TTQ_TARGET,
        "config": {"distill_chunk_updates": budget.ttq_chunk, "dqn_eval_interval": dcfg.eval_interval},
    }


# --------------------------------------------------------------------------- 5. memory


def bench_memory(budget: Budget, atari: bool, seed: int = 0) -> dict[str, Any]:
    """Bytes per transition of the memory ``build_tasks`` makes, filled by ``collect()`` to capacity."""
    rows, notes = [], []
    jobs: list[tuple[DistillConfig, list[NetworkTeacher] | None]] = []
    for game in MINATAR_GAMES:
        cfg = DistillConfig(teacher=f"minatar/{game}", memory_size=budget.memory_rows_minatar)
        jobs.append((cfg, None))
    skip = "Atari skipped: --no-atari" if not atari else _atari_missing()
    if skip:
        notes.append(skip)
    else:
        jobs.append(
            (DistillConfig(teacher="", memory_size=budget.memory_rows_atari), [random_atari_teacher(seed)])
        )
    for cfg, teachers in jobs:
        # one step more than the capacity: the ring has wrapped, as a memory in use has
        task = _filled_task(cfg, teachers, cfg.memory_size + cfg.num_envs, seed)
        task.env.close()
        per_row = task.memory.nbytes_per_row()
        rows.append(
            {
                "env_id": task.spec.env_id,
                "memory_class": type(task.memory).__name__,
                "obs_shape": list(task.spec.obs_shape),
                "n_actions": task.teacher.n_actions,
                "rows": len(task.memory),
                "capacity": cfg.memory_size,
                "bytes_per_transition": per_row,
                "paper_memory_gb": PAPER_MEMORY * per_row / 1e9,
                "default_memory_gb": DistillConfig.memory_size * per_row / 1e9,
            }
        )
    return {
        "paper_memory_transitions": PAPER_MEMORY,
        "default_memory_transitions": DistillConfig.memory_size,
        "atari_target_gb": ATARI_MEMORY_TARGET_GB,
        "rows": rows,
        "notes": notes,
    }


# --------------------------------------------------------------------------- tables


def _print_section(title: str, body: str, notes: Sequence[str] = ()) -> None:
    print(f"\n== {title} ==\n{body}", flush=True)
    for note in notes:
        print(f"note: {note}", flush=True)


def _update_table(res: dict[str, Any]) -> str:
    return format_table(
        ["env", "student", "params", "batch", "library upd/s", "bare torch upd/s", "library/bare"],
        [
            [
                r["env_id"],
                r["student"],
                r["params"],
                r["batch"],
                round(r["library_updates_per_s"]),
                round(r["bare_updates_per_s"]),
                f"{r['ratio']:.2f}",
            ]
            for r in res["rows"]
        ],
    )


def _collection_table(res: dict[str, Any]) -> str:
    return format_table(
        [
            "env",
            "teacher",
            "envs",
            "collect() trans/s",
            "random steps/s",
            "collect/random",
            "teacher-acting steps/s",
            "collect/teacher-acting",
        ],
        [
            [
                r["env_id"],
                r["teacher"],
                r["num_envs"],
                round(r["collect_transitions_per_s"]),
                round(r["bare_random_steps_per_s"]),
                f"{r['ratio']:.2f}",
                round(r["bare_teacher_steps_per_s"]),
                f"{r['ratio_vs_bare_teacher']:.2f}",
            ]
            for r in res["rows"]
        ],
    ) + _ray_table(res.get("ray_rows", []))


def _ray_table(rows: list[dict[str, Any]]) -> str:
    """The Ray backend against the local one (empty when not measured)."""
    if not rows:
        return ""
    table = format_table(
        ["env", "backend", "actors", "envs/actor", "chunk (steps)", "trans/s to memory", "ray/local"],
        [
            [
                r["env_id"],
                r["backend"],
                r["actors"] or "-",
                r["num_envs"],
                r["chunk_steps"],
                round(r["transitions_per_s"]),
                f"{r['ratio_vs_local']:.2f}",
            ]
            for r in rows
        ],
    )
    return "\n\nteacher play in Ray actors (local Ray, teacher-driven):\n" + table


def _ttq_table(res: dict[str, Any]) -> str:
    d, q = res["distillation"], res["dqn"]
    table = format_table(
        ["method", "network", "reached target", "train seconds", "updates", "best score", "last score"],
        [
            [
                "distillation (KL)",
                res["network"],
                "yes" if d["reached"] else "no",
                d["train_seconds"],
                d["updates"],
                d["best_score"],
                d["final_score"],
            ],
            [
                "Double DQN",
                res["network"],
                "yes" if q["reached"] else "no",
                q["train_seconds"],
                q["updates"],
                q["best_score"],
                q["final_score"],
            ],
        ],
    )
    lines = [
        table,
        f"teacher {res['teacher_score']:.2f} ({res['teacher_score_source']}; model card: "
        f"{res['teacher_card_score']:.2f}), target {res['target_score']:.2f} (95%)",
    ]
    if not res["ratio_valid"]:
        lines.append("distillation did not reach the target within its budget: no ratio")
    elif res["ratio_is_lower_bound"]:
        lines.append(
            f"DQN did not reach the target in {q['train_seconds']:.1f} s "
            f"(cap {q['time_cap_seconds']:.1f} s): distillation is more than {res['ratio']:.1f}x faster "
            f"(best DQN score {q['best_score']:.2f})"
        )
    else:
        lines.append(f"distillation is {res['ratio']:.1f}x faster than DQN")
    return "\n".join(lines)


def _memory_table(res: dict[str, Any]) -> str:
    return format_table(
        ["env", "memory class", "obs shape", "bytes/transition", "rows", "540k (GB)", "100k (GB)"],
        [
            [
                r["env_id"],
                r["memory_class"],
                "x".join(map(str, r["obs_shape"])),
                r["bytes_per_transition"],
                r["rows"],
                f"{r['paper_memory_gb']:.3f}",
                f"{r['default_memory_gb']:.3f}",
            ]
            for r in res["rows"]
        ],
    )


def _summary(result: dict[str, Any]) -> list[list[Any]]:
    """One line per headline ratio: value, target, met."""
    out: list[list[Any]] = []
    if "update_efficiency" in result:
        worst = min(result["update_efficiency"]["rows"], key=lambda r: r["ratio"])
        v = worst["ratio"]
        out.append(
            [
                "update: library/bare (worst)",
                f"{v:.2f}",
                f">= {UPDATE_TARGET}",
                "yes" if v >= UPDATE_TARGET else "no",
            ]
        )
    if "collection_efficiency" in result:
        for r in result["collection_efficiency"]["rows"]:
            out.append([f"collection {r['env_id']}: collect/random", f"{r['ratio']:.2f}", "-", "-"])
    if "inference" in result:
        for r in result["inference"]["rows"]:
            if r["role"] == "net2" and r["batch"] == 1:
                out.append(
                    [
                        f"inference {r['domain']} net2/teacher, batch 1",
                        f"{r['torch_over_teacher']:.2f}x",
                        "-",
                        "-",
                    ]
                )
    if "time_to_quality" in result:
        t = result["time_to_quality"]
        if t["ratio_valid"]:
            v = f"{'>' if t['ratio_is_lower_bound'] else ''}{t['ratio']:.1f}x"
            met = "yes" if t["ratio"] >= TTQ_TARGET else ("not shown" if t["ratio_is_lower_bound"] else "no")
        else:
            v, met = "n/a", "not measured"
        out.append(["time to 95%: DQN/distillation", v, f">= {TTQ_TARGET:.0f}x", met])
    if "memory" in result:
        for r in result["memory"]["rows"]:
            if r["env_id"].startswith("ALE/"):
                gb = r["paper_memory_gb"]
                out.append(
                    [
                        "memory: Atari 540k transitions (GB)",
                        f"{gb:.2f}",
                        f"< {ATARI_MEMORY_TARGET_GB}",
                        "yes" if gb < ATARI_MEMORY_TARGET_GB else "no",
                    ]
                )
    if "dqn_atari" in result:
        d = result["dqn_atari"]
        out.append(["Atari DQN steps/s: poldist/bare, 1 thread each", f"{d['ratio_1_thread']:.2f}", "-", "-"])
        v = d["ratio_2_threads_vs_bare_1"]
        out.append(
            [
                "Atari DQN steps/s: poldist 2 threads/bare 1",
                f"{v:.2f}",
                f">= {DQN_TARGET}",
                _met(v, DQN_TARGET),
            ]
        )
    return out


def _met(value: float, target: float) -> str:
    return "yes" if value >= target else "no"


# --------------------------------------------------------------------------- entry points


def run_bench(
    quick: bool = False,
    atari: bool = True,
    out_json: Path | None = None,
    *,
    sections: Sequence[str] | None = None,
    seed: int = 0,
    device: str | torch.device = "auto",
) -> dict[str, Any]:
    """Run the benchmark sections, print a table for each, and return (and write) every number.

    Args:
        quick: tiny budgets that only check the plumbing (tests); numbers are not meaningful.
        atari: include the Atari rows (skipped with a note when ale-py is missing).
        out_json: where to write the JSON (parents created); None: not written.
        sections: a subset of :data:`SECTIONS` (profiling one section); default all.
        seed: seeds of envs, networks and samplers.
        device: where the networks run (:func:`~poldist.networks.resolve_device`: ``auto``,
            ``cpu``, ``cuda``, ``mps``); checked before anything runs.

    Returns:
        ``{"date", "machine", "device", "quick", "atari", "wall_seconds", "notes", <section>: {...}}`` with
        sections ``update_efficiency``, ``collection_efficiency``, ``inference``,
        ``time_to_quality``, ``memory``.
    """
    dev = resolve_device(device)
    chosen = tuple(SECTIONS if sections is None else sections)
    unknown = set(chosen) - set(SECTIONS)
    if unknown:
        raise ValueError(f"unknown sections {sorted(unknown)}: choose from {list(SECTIONS)}")
    budget = QUICK if quick else FULL
    atari_note = _atari_missing() if atari else None
    atari = atari and atari_note is None
    threads_before = torch.get_num_threads()
    torch.set_num_threads(1)  # the library's default (torch_threads=1); both sides of each ratio alike
    start = time.perf_counter()
    result: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "device": str(dev),
        "quick": quick,
        "atari": atari,
        "notes": [atari_note] if atari_note else [],
    }
    m = result["machine"]
    print(
        f"poldist bench{' --quick' if quick else ''}: {m['cpu_model']}, {m['cpu_count']} cores, "
        f"torch {m['torch_version']} on {m['torch_threads']} thread(s), networks on {dev}, load average "
        f"{', '.join(f'{x:.2f}' for x in m.get('load_average_1_5_15min', []))}",
        flush=True,
    )
    try:
        if "update" in chosen:
            res = result["update_efficiency"] = bench_update(budget, seed, dev)
            _print_section(
                f"1. update efficiency (target library/bare >= {UPDATE_TARGET})", _update_table(res)
            )
        if "collection" in chosen:
            res = result["collection_efficiency"] = bench_collection(budget, atari, seed, not quick, dev)
            _print_section("2. collection efficiency", _collection_table(res), res["notes"])
        if "inference" in chosen:
            res = result["inference"] = bench_inference(1, budget.inference_seconds, atari, device=dev)
            _print_section("3. inference (1 thread)", inference_table(res["rows"]), res["notes"])
        if "time_to_quality" in chosen:
            with tempfile.TemporaryDirectory(prefix="poldist-bench-") as tmp:
                res = result["time_to_quality"] = bench_time_to_quality(budget, Path(tmp), seed, dev)
            _print_section("4. time to 95% of the teacher (training time only)", _ttq_table(res))
        if "memory" in chosen:
            res = result["memory"] = bench_memory(budget, atari, seed)
            _print_section("5. replay memory", _memory_table(res), res["notes"])
        if "dqn_atari" in chosen and atari and dev.type == "cpu":
            from poldist.bench_dqn import bench_dqn_atari, dqn_atari_table

            res = result["dqn_atari"] = bench_dqn_atari(
                budget.atari_dqn_steps,
                budget.atari_dqn_learning_starts,
                budget.atari_dqn_repeats,
                budget.atari_dqn_memory_rows,
            )
            _print_section(
                "6. Atari Double DQN (Pong): poldist train-teacher against a bare CleanRL-style loop",
                dqn_atari_table(res),
            )
    finally:
        torch.set_num_threads(threads_before)
    result["wall_seconds"] = time.perf_counter() - start
    if hasattr(os, "getloadavg"):
        result["machine"]["load_average_at_end"] = list(os.getloadavg())
    summary = _summary(result)
    if summary:
        _print_section("summary", format_table(["ratio", "value", "target", "met"], summary))
    print(f"\n{result['wall_seconds']:.0f} s in all", flush=True)
    if out_json is not None:
        out_json = Path(out_json)
        out_json.parent.mkdir(parents=True, exist_ok=True)
        out_json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"raw numbers: {out_json}", flush=True)
    return result


def report_text(result: dict[str, Any]) -> str:
    """The tables :func:`run_bench` printed, rebuilt from its JSON result (for RESULTS.md)."""
    m = result["machine"]
    on = f", networks on {result['device']}" if "device" in result else ""  # absent in older JSON
    parts = [
        f"{result['date']}: {m['cpu_model']}, {m['cpu_count']} cores, torch {m['torch_version']} on "
        f"{m['torch_threads']} thread(s){on}, load average at start "
        + ", ".join(f"{x:.2f}" for x in m.get("load_average_1_5_15min", []))
    ]
    sections = [
        (
            "update_efficiency",
            f"1. update efficiency (target library/bare >= {UPDATE_TARGET})",
            _update_table,
        ),
        ("collection_efficiency", "2. collection efficiency", _collection_table),
        ("inference", "3. inference (1 thread)", lambda r: inference_table(r["rows"])),
        ("time_to_quality", "4. time to 95% of the teacher (training time only)", _ttq_table),
        ("memory", "5. replay memory", _memory_table),
    ]
    for key, title, table in sections:
        if key in result:
            parts.append(f"== {title} ==\n{table(result[key])}")
            parts += [f"note: {n}" for n in result[key].get("notes", [])]
    summary = _summary(result)
    if summary:
        parts.append("== summary ==\n" + format_table(["ratio", "value", "target", "met"], summary))
    parts.append(f"{result['wall_seconds']:.0f} s in all")
    return "\n\n".join(parts)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The benchmark's flags (for ``python -m poldist.bench`` and a ``poldist bench`` subcommand)."""
    parser.add_argument("--quick", action="store_true", help="tiny budgets: check the plumbing (tests)")
    parser.add_argument("--no-atari", dest="atari", action="store_false", help="skip the Atari rows")
    parser.add_argument(
        "--json", type=Path, default=Path("runs/bench.json"), help="raw numbers (default: %(default)s)"
    )
    parser.add_argument(
        "--device",
        default="auto",
        help="where the networks run: auto (CUDA if available, else MPS, else CPU) | cpu | cuda "
        "(or cuda:N) | mps; env stepping, replay memories, onnxruntime and Ray actors stay on the CPU "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--only",
        default="",
        help=f"comma-separated sections to run (profiling), from {','.join(SECTIONS)}; default all",
    )


def run_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """Run the benchmark from parsed :func:`add_arguments` flags."""
    only = [s.strip() for s in args.only.split(",") if s.strip()] or None
    return run_bench(
        quick=args.quick, atari=args.atari, out_json=args.json, sections=only, device=args.device
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m poldist.bench [--quick] [--no-atari] [--json PATH] [--only SECTIONS] [--device D]``."""
    parser = argparse.ArgumentParser(prog="python -m poldist.bench", description=__doc__.splitlines()[0])
    add_arguments(parser)
    try:
        run_from_args(parser.parse_args(argv))
    except PoldistError as e:  # e.g. --device cuda without CUDA: one line, as the poldist command
        print(f"python -m poldist.bench: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
