"""One experiment cell: a distillation run and the raw record the report reads.

Used by ``scripts/study_minatar.py`` (RESULTS.md 5b, 5c) and ``scripts/atari_students.py`` (the
Atari section). A cell whose raw record exists is done; an interrupted one resumes from its run
directory's checkpoint; the raw record is written last, so it exists only for a finished run.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

from poldist.distillation import DistillConfig, distill
from poldist.evaluation import percent_of_teacher
from poldist.runs import resume_or_clear, write_json

# what a record keeps of the summary's per-task entry (besides the score and its episodes)
TASK_FIELDS = ("agreement", "regret", "gap_edges", "gap_shares", "agreement_by_gap", "tau", "transitions")


def curve_path(raw: Path) -> Path:
    """The learning curve (``.evals.csv``) kept beside the raw record ``raw`` (``.json``)."""
    return Path(raw).with_suffix(".evals.csv")


def distill_cell(
    cfg: DistillConfig, run: Path, raw: Path, fields: dict[str, Any], reference: float | None = None
) -> dict[str, Any]:
    """Run (or resume, or skip if ``raw`` exists) one single-teacher distillation; write its record.

    Args:
        cfg: the run's config (one teacher).
        run: its run directory (scratch: checkpoints, the student).
        raw: the record's path (``.json``); the learning curve goes beside it as ``.evals.csv``.
        fields: the cell's own fields (its identity, the command that reruns it, ...), first in
            the record.
        reference: the teacher's reference score, if known: the record's ``reference_score`` and
            ``percent_of_reference`` (the paper's plain percent; the report recomputes it).

    Returns:
        The record: ``fields``, then the final score with every episode's return
        (``student_returns``), agreement with the teacher, parameter counts, wall times, the
        machine and the config.
    """
    if raw.exists():
        return json.loads(raw.read_text())
    summary = distill(cfg, run, resume=resume_or_clear(run))
    task = summary["tasks"][0]
    record = {
        **fields,
        "student_score": task["student_score"],
        "student_ci": task["student_ci"],
        "student_returns": task["student_returns"],
        "reference_score": float("nan") if reference is None else reference,
        "percent_of_reference": percent_of_teacher(
            task["student_score"], float("nan") if reference is None else reference
        ),
        **{k: task[k] for k in TASK_FIELDS},
        "student_params": summary["student_params"],
        "teacher_params": summary["teacher_params"],
        "updates": summary["updates"],
        "train_wall_seconds": summary["train_wall_seconds"],
        "train_cpu_seconds": summary.get("train_cpu_seconds"),
        "wall_seconds": summary["wall_seconds"],
        "machine": summary["machine"],
        "config": asdict(cfg),
    }
    raw.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(run / "evals.csv", curve_path(raw))
    write_json(raw, record)
    return record
