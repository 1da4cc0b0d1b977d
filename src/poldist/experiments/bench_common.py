"""What every section of the benchmark shares: budgets, targets, timing helpers, optional parts.

See :mod:`poldist.experiments.bench` for what is measured and how."""

from __future__ import annotations

import importlib.util
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from poldist.collection import DistillTask, TeacherControl, collect
from poldist.distillation import DistillConfig, base_architecture, build_tasks, make_student
from poldist.dqn import DQNConfig
from poldist.envs import make_env_spec
from poldist.networks import QNetwork, nature_dqn
from poldist.recipes import RECIPES
from poldist.teachers import NetworkTeacher

SIZES = ("net1", "net2", "net3")
ATARI_ID = "ALE/Breakout-v5"
MINATAR_TEACHER = "minatar/breakout"
PAPER_MEMORY = 540_000  # transitions in the paper's distillation replay memory
ATARI_MEMORY_TARGET_GB = 5.0
UPDATE_TARGET = 0.7
TTQ_TARGET = 10.0
COLLECTION_TARGETS = {"minatar": 0.5, "atari": 0.6}  # issue 22: collect/random, default settings
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
    # section 2: many short alternated rounds, its ratios the median of each round's own ratio
    # (this machine's speed drifts by tens of percent within seconds; adjacent timings share it)
    collection_seconds: float = 0.4
    collection_rounds: int = 9


FULL = Budget(
    seconds=1.0,
    rounds=3,
    fill=10_000,
    inference_seconds=0.5,
    memory_rows_minatar=5_000,
    memory_rows_atari=5_000,
    ttq_chunk=1_000,
    ttq_learning_starts=RECIPES["minatar"]["learning_starts"],
    ttq_eval_episodes=50,  # 20 episodes let seed luck set the target (a 20-episode teacher: 7 to 14)
    ttq_distill_max_s=180.0,
    ttq_dqn_max_s=1200.0,  # 10x what distillation takes, so that a 10x ratio can be shown
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
    collection_seconds=0.15,
    collection_rounds=1,
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


def paired_ratio(num: Sequence[float], den: Sequence[float]) -> float:
    """The median over rounds of ``num[i] / den[i]``: each round's rates were timed back to back
    (:func:`paired_rates`), so a drift of the machine's speed between rounds cancels in its ratio."""
    return statistics.median(n / d for n, d in zip(num, den, strict=True))


def onnx_missing() -> str | None:
    """Why ONNX rows cannot be measured (a missing optional package), or None."""
    missing = [m for m in ("onnx", "onnxscript", "onnxruntime") if importlib.util.find_spec(m) is None]
    return (
        f"onnx rows skipped: {', '.join(missing)} not installed (pip install 'poldist[deploy]')"
        if missing
        else None
    )


def atari_missing() -> str | None:
    """Why Atari rows cannot be measured (ale-py missing), or None."""
    return None if importlib.util.find_spec("ale_py") is not None else "Atari skipped: ale-py not importable"


def random_atari_teacher(seed: int = 0) -> NetworkTeacher:
    """A Nature-DQN teacher with random weights on ``ALE/Breakout-v5`` (speed does not depend on weights)."""
    spec = make_env_spec(ATARI_ID)
    torch.manual_seed(seed)
    return NetworkTeacher(QNetwork(nature_dqn(spec.n_actions, spec.obs_shape[0])), spec, "q", 0, "nature-dqn")


def filled_task(
    cfg: DistillConfig, teachers: list[NetworkTeacher] | None, n: int, seed: int, groups: int = 1
) -> DistillTask:
    """The first task ``build_tasks`` makes for ``cfg``, its memory filled with ``n`` teacher
    transitions, its envs in ``groups`` pipelined groups (:meth:`DistillTask.start`)."""
    task = build_tasks(cfg, teachers)[0]
    task.start(cfg.num_envs, seed, groups)
    student = make_student(cfg, [task], base_architecture([task]))
    collect(task, TeacherControl(cfg.epsilon), student, n, np.random.default_rng(seed))
    return task
