"""Benchmark section 5, memory: bytes per stored transition of the distillation replay memory, and
the size of the paper's 540,000-transition memory."""

from __future__ import annotations

from typing import Any

from poldist.distillation import DistillConfig
from poldist.envs import MINATAR_GAMES
from poldist.experiments.bench_common import (
    ATARI_MEMORY_TARGET_GB,
    PAPER_MEMORY,
    Budget,
    atari_missing,
    filled_task,
    random_atari_teacher,
)
from poldist.tables import format_table
from poldist.teachers import NetworkTeacher


def bench_memory(budget: Budget, atari: bool, seed: int = 0) -> dict[str, Any]:
    """Bytes per transition of the memory ``build_tasks`` makes, filled by ``collect()`` to capacity."""
    rows, notes = [], []
    jobs: list[tuple[DistillConfig, list[NetworkTeacher] | None]] = []
    for game in MINATAR_GAMES:
        cfg = DistillConfig(teacher=f"minatar/{game}", memory_size=budget.memory_rows_minatar)
        jobs.append((cfg, None))
    skip = "Atari skipped: --no-atari" if not atari else atari_missing()
    if skip:
        notes.append(skip)
    else:
        jobs.append(
            (DistillConfig(teacher="", memory_size=budget.memory_rows_atari), [random_atari_teacher(seed)])
        )
    for cfg, teachers in jobs:
        # one step more than the capacity: the ring has wrapped, as a memory in use has
        task = filled_task(cfg, teachers, cfg.memory_size + cfg.num_envs, seed)
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


def memory_table(res: dict[str, Any]) -> str:
    """Section 5's rows as a plain-text table."""
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
