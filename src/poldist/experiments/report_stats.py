"""The numbers behind RESULTS.md: raw records read and rescored, seed matrices, bootstrap intervals.

Per game, a cell is the mean percent of teacher over seeds with a 95% percentile-bootstrap CI over
seeds (:func:`poldist.evaluation.bootstrap_ci`). Aggregates over games (IQM, and the paper's
geometric mean of percent of teacher) use rliable's stratified bootstrap over runs
(:func:`aggregate_intervals`). Percent of teacher divides by the teacher's reference score where
it has one (:func:`rescore`). :class:`ReportContext` is what every section of the report reads.
"""

from __future__ import annotations

import csv
import json
import os
from collections import defaultdict
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from poldist.evaluation import bootstrap_ci, geometric_mean, percent_intervals, percent_of_teacher

GEO_FLOOR = 1.0  # percent: a zero score would make a geometric mean 0 whatever the other games do
BOOT_REPS = 2000


@dataclass
class ReportContext:
    """What the sections of RESULTS.md read: the results folder, the Markdown file being written
    (image links are relative to it), the rescored raw records of ``poldist reproduce``, and
    ``shared``: what an earlier section leaves for a later one (section 1's numbers for section 3)."""

    results: Path
    out: Path
    raw: list[dict[str, Any]]
    shared: dict[str, Any] = field(default_factory=dict)

    @property
    def plots(self) -> Path:
        """Where the figures go: ``<results>/plots``."""
        return self.results / "plots"

    @property
    def raw_dir(self) -> Path:
        """The raw files of ``poldist reproduce``: ``<results>/reproduce/raw``."""
        return self.results / "reproduce" / "raw"

    def link(self, path: Path) -> str:
        """``path`` relative to the Markdown file, as an image link wants it."""
        return os.path.relpath(path, self.out.parent).replace(os.sep, "/")


def load_raw(raw_dir: Path) -> list[dict[str, Any]]:
    """Every raw record in ``raw_dir`` (``*.json``), sorted by name."""
    return [json.loads(p.read_text()) for p in sorted(Path(raw_dir).glob("*.json"))]


def cell_name(record: dict[str, Any]) -> str:
    """The name of the cell a raw record belongs to (its file name without suffix)."""
    from poldist.experiments.reproduce import Cell

    return Cell(**{f.name: record[f.name] for f in fields(Cell) if f.name in record}).name


def experiment_records(
    raw: list[dict[str, Any]], experiment: str, protocol: str = ""
) -> list[dict[str, Any]]:
    """The raw records that are cells of ``experiment`` under ``protocol`` ("" legacy, "fresh"; a
    shared cell counts for each experiment)."""
    from poldist.experiments.reproduce import experiment_cells

    seeds = sorted({r["seed"] for r in raw})
    names = {c.name for c in experiment_cells(experiment, seeds, protocol=protocol)}
    return [r for r in raw if cell_name(r) in names]


def evals_by_step(rows: list[dict[str, Any]]) -> dict[int, float]:
    """Evaluation rows (``env_steps``, ``score``) as ``env step -> score``."""
    return {int(float(e["env_steps"])): float(e["score"]) for e in rows}


def cell_evals(record: dict[str, Any], raw_dir: Path) -> dict[int, float]:
    """A raw cell's evaluations, score by env step, from its ``.evals.csv`` (empty if none)."""
    evals = raw_dir / f"{cell_name(record)}.evals.csv"
    if not evals.exists():
        return {}
    with evals.open() as f:
        return evals_by_step(list(csv.DictReader(f)))


def seed_matrix(records: list[dict[str, Any]], games: list[str]) -> tuple[np.ndarray, list[int]]:
    """Percent of teacher as a ``(runs, games)`` array over the seeds every game has.

    rliable's stratified bootstrap needs the same number of runs per game, so seeds missing
    for any game are left out (and the count says so).
    """
    by = {(r["game"], r["seed"]): r["percent_of_teacher"] for r in records}
    seeds = sorted({s for _, s in by})
    common = [s for s in seeds if all((g, s) in by for g in games)]
    return np.array([[by[(g, s)] for g in games] for s in common], dtype=np.float64).reshape(
        len(common), len(games)
    ), common


def iqm(x: np.ndarray) -> float:
    """Interquartile mean of every entry of ``x``."""
    from scipy import stats

    return float(stats.trim_mean(x.reshape(-1), proportiontocut=0.25))


def floored_geomean(x: np.ndarray) -> float:
    """Geometric mean over games (columns) of the per-game means of ``x``, each at least
    :data:`GEO_FLOOR`."""
    per_game = np.maximum(x.mean(axis=0), GEO_FLOOR)
    return float(np.exp(np.log(per_game).mean()))


def aggregate_intervals(matrices: dict[str, np.ndarray], seed: int = 0) -> dict[str, dict[str, list[float]]]:
    """IQM and geometric mean (over games) of percent of teacher, with 95% CIs.

    Args:
        matrices: ``variant -> (runs, games)`` percent-of-teacher arrays.

    Returns:
        ``variant -> {"iqm": [point, low, high], "geomean": [point, low, high]}``, by rliable's
        stratified bootstrap (runs resampled within each game); with one run per game the
        interval is the point.
    """
    from rliable import library as rly

    usable = {k: v for k, v in matrices.items() if v.size}
    if not usable:
        return {}
    np.random.seed(seed)  # rliable draws from numpy's global generator; a report must not change
    points, intervals = rly.get_interval_estimates(
        usable, lambda x: np.array([iqm(x), floored_geomean(x)]), reps=BOOT_REPS
    )
    return {
        k: {
            "iqm": [float(points[k][0]), float(intervals[k][0, 0]), float(intervals[k][1, 0])],
            "geomean": [float(points[k][1]), float(intervals[k][0, 1]), float(intervals[k][1, 1])],
        }
        for k in usable
    }


def seed_cell(values: list[float]) -> str:
    """A table cell: the mean over seeds and its 95% bootstrap CI (``–`` without values)."""
    if not values:
        return "–"
    mean = float(np.mean(values))
    if len(values) == 1:
        return f"{mean:.1f} (1 seed)"
    lo, hi = bootstrap_ci(np.array(values))
    return f"{mean:.1f} [{lo:.1f}, {hi:.1f}]"


def aggregate_cell(v: list[float] | None) -> str:
    """A table cell of an aggregate ``[point, low, high]``: the point in bold, then the interval."""
    return "–" if v is None else f"**{v[0]:.1f}** [{v[1]:.1f}, {v[2]:.1f}]"


def reference_mean(teacher: str) -> float | None:
    """The mean of shipped teacher ``teacher``'s reference score, or ``None`` if it has none."""
    from poldist import zoo

    return zoo.reference_mean(teacher)


def rescore(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records with ``percent_of_teacher`` against the teacher's reference score (issue 18's
    yardstick) where it has one; the score they were made against stays as ``card_score``."""
    out = []
    for r in records:
        ref = reference_mean(r["teacher"])
        r = dict(r, card_score=r.get("card_score", r["teacher_score"]))
        if ref is not None:
            r.update(teacher_score=ref, percent_of_teacher=percent_of_teacher(r["student_score"], ref))
        out.append(r)
    return out


def rescore_multitask(per_seed: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Multi-task ``results.json`` contents with every ``<method>_percent`` against the reference score."""
    out = []
    for res in per_seed:
        if "per_game" not in res:
            out.append(res)
            continue
        per_game = {}
        for game, row in res["per_game"].items():
            ref = reference_mean(game)
            row = dict(row, card_score=row.get("card_score", row.get("teacher_score")))
            if ref is not None:  # methods with a raw score are rescored; a bare percent stays as it is
                row["teacher_score"] = ref
                for m in [k for k in row if f"{k}_percent" in row]:
                    row[f"{m}_percent"] = percent_of_teacher(row[m], ref)
            per_game[game] = row
        out.append(dict(res, per_game=per_game))
    return out


def multitask_geomeans(res: dict[str, Any]) -> dict[str, float]:
    """``method -> geometric mean percent`` of one multi-task ``results.json``, against the reference."""
    if not res.get("per_game"):  # older explorations: only the aggregate was kept
        return dict(res.get("geometric_mean_percent", {}))
    res = rescore_multitask([res])[0]
    methods = [k[: -len("_percent")] for k in next(iter(res["per_game"].values())) if k.endswith("_percent")]
    return {
        m: geometric_mean([max(row[f"{m}_percent"], GEO_FLOOR) for row in res["per_game"].values()])
        for m in methods
    }


# Study-style records (one run of one game: its returns, agreement and minutes) and their two-stage
# intervals, read by sections 3, 5b and 5c
MULTITASK_SIZE = "multi-task"  # the five-game student of scripts/multitask_minatar.py --recipe minatar


def reference_returns_of(records: list[dict[str, Any]]) -> dict[str, list[float]]:
    """``game -> reference returns`` of the shipped teachers the records name."""
    from poldist.zoo import reference_returns

    return {g: reference_returns(f"minatar/{g}") for g in sorted({r["game"] for r in records})}


def group_intervals(
    records: list[dict[str, Any]], references: dict[str, list[float]]
) -> dict[tuple[str, str], dict[str, Any]]:
    """``(variant, size) -> {"per_game": {game: PercentInterval}, "geomean": PercentInterval or None,
    "seeds": [seed, ...], "agreement": mean, "wall": mean train seconds, "cpu": mean train CPU seconds or None
    (a run recorded before CPU time was kept)}``; the geometric mean only where every game of the
    study has a run."""
    games = sorted({r["game"] for r in records})
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        groups[(r["variant"], r["size"])].append(r)
    out = {}
    for key, recs in groups.items():
        students: dict[str, list[list[float]]] = defaultdict(list)
        for r in sorted(recs, key=lambda r: r["seed"]):
            students[r["game"]].append(r["student_returns"])
        per_game, geo = percent_intervals(dict(students), {g: references[g] for g in students})
        out[key] = {
            "per_game": per_game,
            "geomean": geo if set(students) == set(games) else None,
            "seeds": sorted({r["seed"] for r in recs}),
            "agreement": float(np.mean([r["agreement"] for r in recs])),
            "wall": float(np.mean([r["train_wall_seconds"] for r in recs])),
            "cpu": mean_cpu_seconds(recs),
            "records": recs,
        }
    return out


def target_verdict(mean: float, ci_low: float, ci_high: float, target: float) -> str:
    """A target's verdict that says what the interval says, not only the point estimate.

    "met" only when the whole interval is at or above ``target``; a point estimate at or above it
    with the interval reaching below is "met by the point estimate" with the interval's low end.
    """
    if ci_low >= target:
        return "met (the whole interval at or above it)"
    if mean >= target:
        return f"met by the point estimate only (the interval reaches down to {ci_low:.1f})"
    reach = "the interval reaches it" if ci_high >= target else "the interval lies below it"
    return f"not met ({reach})"


def mean_cpu_seconds(records: list[dict[str, Any]]) -> float | None:
    """Mean training CPU seconds, or None unless every record has them."""
    cpu = [r.get("train_cpu_seconds") for r in records]
    return None if any(c is None for c in cpu) else float(np.mean(cpu))


def multitask_recipe_records(
    multitask_dir: Path, pattern: str = "recipe-seed*", variants: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """Study-style records (one per game) of multi-task students: for each
    ``<multitask_dir>/<pattern>/results.json`` and each method of ``variants`` (``method -> variant
    name``; default the recipe's KL student, ``{"multi_dist_kl": "recipe"}``), the per-game returns
    in ``<run>/summary.json`` (kept by ``scripts/multitask_minatar.py``). ``train_wall_seconds`` is
    the whole five-game run's."""
    records = []
    for res_path in sorted(Path(multitask_dir).glob(f"{pattern}/results.json")):
        students = json.loads(res_path.read_text()).get("students", {})
        for method, variant in (variants or {"multi_dist_kl": "recipe"}).items():
            student = students.get(method)
            summary_path = res_path.parent / student["run"] / "summary.json" if student else None
            if summary_path is None or not summary_path.exists():
                continue
            summary = json.loads(summary_path.read_text())
            for task in summary["tasks"]:
                records.append(
                    {
                        "variant": variant,
                        "size": MULTITASK_SIZE,
                        "game": task["teacher"].split("/")[-1],
                        "seed": summary["config"]["seed"],
                        "student_returns": task["student_returns"],
                        "agreement": task["agreement"],
                        "train_wall_seconds": summary["train_wall_seconds"],
                        "train_cpu_seconds": summary.get("train_cpu_seconds"),
                        "student_params": summary["student_params"],
                        "config": summary["config"],
                    }
                )
    return records
