"""The paper's single-game experiments on MinAtar, one command each, raw results per seed.

``poldist reproduce losses`` and ``poldist reproduce compression`` distil every shipped MinAtar
teacher into students (one run per game, variant and seed) and write one raw JSON per run into
``<results>/raw/`` (with the run's ``evals.csv`` beside it); ``poldist report`` turns them into
RESULTS.md. Every run of an experiment gets the same budget (:data:`BUDGET`: updates, batch,
teacher transitions), stated in the report. Runs already done are skipped, and an interrupted
run resumes from its checkpoint, so a command can be rerun until everything is there. A run's
identity is its cell (game, student, loss, temperature, seed): the KL(0.01) teacher-size student
is shared by the losses and the compression experiments.

Scores are percent of the teacher's score on its model card (100 episodes, epsilon 0.05), so
every cell has the same denominator; the student is scored with the same epsilon.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from poldist.distillation import DistillConfig, distill
from poldist.errors import PoldistError
from poldist.evaluation import percent_of_teacher
from poldist.runs import write_json
from poldist.teachers import ZOO

GAMES = ("asterix", "breakout", "freeway", "seaquest", "space_invaders")

# One budget for every student of the single-game experiments: 10k updates of 256 samples
# (2.56M samples) on 210k fresh teacher transitions (10k before learning + 20 per update).
BUDGET = DistillConfig(
    updates=10_000,
    batch_size=256,
    lr=1e-3,
    optimizer="rmsprop",
    transitions_per_update=20.0,
    learning_starts=10_000,
    memory_size=200_000,
    eval_interval=2_500,
    eval_episodes=10,
    final_eval_episodes=50,
    evaluate_teacher=False,  # the denominator is the model card's score
    agreement_states=5_000,
    checkpoint_interval=2_500,
)


@dataclass(frozen=True)
class Cell:
    """One run: a student of ``student`` size distilled from ``minatar/<game>`` with a loss."""

    game: str
    student: str = "teacher"
    loss: str = "kl"
    tau: float = 0.01
    seed: int = 0

    @property
    def variant(self) -> str:
        """``kl-tau0.01``, ``nll`` or ``mse``."""
        return f"kl-tau{self.tau:g}" if self.loss == "kl" else self.loss

    @property
    def name(self) -> str:
        """File-safe identity, e.g. ``breakout__net2__kl-tau0.01__seed0``."""
        return f"{self.game}__{self.student}__{self.variant}__seed{self.seed}"

    def config(self, budget: DistillConfig = BUDGET) -> DistillConfig:
        """The distillation config of this cell under ``budget``."""
        return replace(
            budget,
            teacher=f"minatar/{self.game}",
            student=self.student,
            loss=self.loss,
            tau=self.tau if self.loss == "kl" else 0.0,
            seed=self.seed,
        )


LOSS_VARIANTS = (("nll", 0.0), ("mse", 0.0), ("kl", 0.01), ("kl", 0.1), ("kl", 1.0))
SIZES = ("teacher", "net1", "net2", "net3")


def experiment_cells(name: str, seeds: list[int], games: list[str] | None = None) -> list[Cell]:
    """The cells of experiment ``name`` (``losses`` or ``compression``), seed-major order.

    Seed-major: the first seed of every cell is done before any second seed, so a partial
    run already covers the whole table.
    """
    games = list(games or GAMES)
    unknown = sorted(set(games) - set(GAMES))
    if unknown:
        raise PoldistError(f"unknown games {unknown}: choose from {list(GAMES)}")
    if name == "losses":
        per_seed = [(g, "teacher", loss, tau) for g in games for loss, tau in LOSS_VARIANTS]
    elif name == "compression":
        per_seed = [(g, size, "kl", 0.01) for g in games for size in SIZES]
    else:
        raise PoldistError(f"unknown experiment {name!r}: choose losses or compression")
    return [Cell(g, s, loss, tau, seed) for seed in seeds for g, s, loss, tau in per_seed]


def teacher_card(game: str) -> dict[str, Any]:
    """The shipped teacher's model card (``card.json``) of ``minatar/<game>``."""
    return json.loads((ZOO / "minatar" / game / "card.json").read_text())


def run_cell(cell: Cell, runs: Path, results: Path, budget: DistillConfig = BUDGET) -> dict[str, Any]:
    """Run (or resume, or skip if done) one cell; write ``<results>/raw/<cell.name>.json``.

    Returns:
        The raw record: the cell, the teacher's card score, the student's score, percent of
        teacher, greedy agreement, parameter counts, the budget and wall time.
    """
    raw = results / "raw" / f"{cell.name}.json"
    if raw.exists():
        return json.loads(raw.read_text())
    run = runs / cell.name
    cfg = cell.config(budget)
    summary = distill(cfg, run, resume=(run / "state" / "meta.json").exists())
    task = summary["tasks"][0]
    card = teacher_card(cell.game)
    record = {
        **asdict(cell),
        "variant": cell.variant,
        "teacher": cfg.teacher,
        "teacher_score": card["eval"]["mean"],
        "student_score": task["student_score"],
        "student_ci": task["student_ci"],
        "percent_of_teacher": percent_of_teacher(task["student_score"], card["eval"]["mean"]),
        "agreement": task["agreement"],
        "transitions": task["transitions"],
        "student_params": summary["student_params"],
        "teacher_params": summary["teacher_params"],
        "compression": summary["compression"],
        "updates": summary["updates"],
        "batch_size": cfg.batch_size,
        "train_wall_seconds": summary["train_wall_seconds"],
        "config": asdict(cfg),
        "command": cell_command(cell),
    }
    raw.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(run / "evals.csv", raw.with_suffix(".evals.csv"))
    write_json(raw, record)  # last: a raw file exists only for a finished run
    return record


def cell_command(cell: Cell) -> str:
    """The command that reruns this cell (with its experiment's other variants of the game)."""
    exp = "losses" if cell.student == "teacher" else "compression"
    return f"poldist reproduce {exp} --games {cell.game} --seeds {cell.seed}"


def run_experiment(
    name: str,
    seeds: list[int],
    *,
    games: list[str] | None = None,
    runs: str | Path = "runs/reproduce",
    results: str | Path = "results/reproduce",
    shard: tuple[int, int] = (0, 1),
    budget: DistillConfig = BUDGET,
) -> list[dict[str, Any]]:
    """Run every cell of experiment ``name`` (skipping finished ones); return their records.

    ``shard=(i, n)`` runs only cells ``i, i+n, i+2n, ...``: start ``n`` processes with
    ``i = 0..n-1`` to use ``n`` cores.
    """
    i, n = shard
    if not 0 <= i < n:
        raise PoldistError(f"shard {i}/{n}: need 0 <= i < n")
    cells = experiment_cells(name, seeds, games)
    records = []
    for k, cell in enumerate(cells):
        if k % n == i:
            print(f"[{k + 1}/{len(cells)}] {cell.name}", flush=True)
            records.append(run_cell(cell, Path(runs), Path(results), budget))
    return records
