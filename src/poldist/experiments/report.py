"""``poldist report``: RESULTS.md tables and PNG plots from the committed raw results.

Inputs (all optional; a missing one becomes a line saying how to make it):

- ``<results>/reproduce/raw/*.json``: one record per single-game run (``poldist reproduce``);
- ``<results>/multitask/*/results.json``: the multi-task runs (``scripts/multitask_minatar.py``);
- ``<results>/online/*/online.csv``: online distillation runs (``poldist reproduce online``);
- ``<results>/study/raw/*.json``: the study of what holds students back (``scripts/study_minatar.py``);
- ``<results>/bench.json``: the latest ``poldist bench`` output.

RESULTS.md is an introduction with a table of the runs done so far, then one part per entry of
:data:`SECTIONS`, each a title and the lines its builder makes from a :class:`ReportContext`.
The numbers come from :mod:`~poldist.experiments.report_stats`, the figures from
:mod:`poldist.plotting`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from poldist.experiments.report_stats import BOOT_REPS, GEO_FLOOR, ReportContext, load_raw, rescore
from poldist.experiments.sections_atari import atari_lines
from poldist.experiments.sections_multitask import multitask_lines
from poldist.experiments.sections_other import bench_lines, online_lines
from poldist.experiments.sections_single_game import (
    compression_lines,
    control_lines,
    kickstart_lines,
    losses_lines,
)
from poldist.experiments.study_report import recipe_lines, study_lines
from poldist.tables import md_table


@dataclass(frozen=True)
class Section:
    """One part of RESULTS.md: a Markdown heading and the function that writes what follows it."""

    title: str
    lines: Callable[[ReportContext], list[str]]

    def render(self, ctx: ReportContext) -> list[str]:
        """The heading, a blank line, then the builder's lines."""
        return [self.title, "", *self.lines(ctx)]


# In the order of RESULTS.md; a builder may leave numbers in ctx.shared for a later one.
SECTIONS: tuple[Section, ...] = (
    Section("## 1. Losses (teacher-size students, all five MinAtar games)", losses_lines),
    Section("## 2. Compression (KL, tau 0.01)", compression_lines),
    Section("## 3. Multi-task (one student, five MinAtar games)", multitask_lines),
    Section("## 4. Online distillation", online_lines),
    Section("## 5. Beyond the paper: who acts, and what is matched", control_lines),
    Section("### Kickstarting", kickstart_lines),
    Section("## 5b. What holds students back: one change at a time (tuning seed 0)", study_lines),
    Section("## 5c. The MinAtar recipe on fresh seeds", recipe_lines),
    Section("## 6. Speed and memory (`poldist bench`)", bench_lines),
    Section("## 7. Atari: a teacher trained here, students at the paper's sizes", atari_lines),
)

STATUS_SEEDS = (0, 1, 2)


def status_table(results: Path) -> str:
    """Which runs exist, per experiment and seed, and the command that makes the rest.

    Counts cells of :func:`poldist.experiments.reproduce.experiment_cells` with a raw file under
    ``<results>/reproduce/raw``, the multi-task methods (of three) present in
    ``<results>/multitask/seed<S>/results.json``, and online seeds with a ``summary.json``.
    """
    from poldist.experiments.reproduce import EXPERIMENTS, FRESH_EXPERIMENTS, experiment_cells

    rows = []
    for name, protocol in [*((n, "fresh") for n in FRESH_EXPERIMENTS), *((n, "") for n in EXPERIMENTS)]:
        counts = []
        for seed in STATUS_SEEDS:
            cells = experiment_cells(name, [seed], protocol=protocol)
            done = sum((results / "reproduce" / "raw" / f"{c.name}.json").exists() for c in cells)
            counts.append((done, len(cells)))
        flag = "" if protocol == "fresh" or name not in FRESH_EXPERIMENTS else " --protocol legacy"
        label = f"{name} ({'fresh' if protocol else 'legacy'})"
        rows.append((label, counts, f"poldist reproduce {name} --seeds 0,1,2{flag}"))
    multi = []
    for seed in STATUS_SEEDS:
        path = results / "multitask" / f"seed{seed}" / "results.json"
        methods = json.loads(path.read_text())["per_game"] if path.exists() else {}
        have = set(next(iter(methods.values()), {}))
        multi.append((len(have & {"multi_dist_kl", "multi_dist_nll", "multi_dqn"}), 3))
    rows.append(
        ("multi-task", multi, "python scripts/multitask_minatar.py --seed S --out results/multitask/seedS")
    )
    online = [
        (int((results / "online" / f"breakout-seed{s}" / "summary.json").exists()), 1) for s in STATUS_SEEDS
    ]
    rows.append(("online", online, "poldist reproduce online --seeds 0,1,2"))
    table = [
        [name]
        + [f"{d}/{n}" + (" done" if d == n else "") for d, n in counts]
        + ["-" if all(d == n for d, n in counts) else f"`{cmd}`"]
        for name, counts, cmd in rows
    ]
    return md_table(["experiment"] + [f"seed {s}" for s in STATUS_SEEDS] + ["to finish"], table)


def introduction(results: Path) -> list[str]:
    """RESULTS.md's heading, how to read its numbers, and :func:`status_table`."""
    return [
        "# Results",
        "",
        "Made by `poldist report` from the raw files under `results/`; every row names the command "
        "that makes it. Percent of teacher: the student's mean score over the teacher's reference "
        "score (`poldist reference-score`: 1,000 episodes at epsilon 0.05 on env seeds that no "
        "training, selection or student evaluation uses; the shipped teacher's 100-episode model-card "
        "score, which the runs of sections 1-5 were first reported against, is shown beside it). "
        "Two protocols: `fresh` (every seed on env seeds of its own, 200 final episodes, intervals of "
        "a two-stage bootstrap over seeds and episodes) and `legacy` (50-100 final episodes, "
        "neighbouring seeds sharing env seeds, per-game cells [95% percentile-bootstrap CI over "
        "seeds]). Sections 1-2 say which one their main table used; sections 3 (its multi-task DQN "
        "and first students), 4 and 5 are legacy; 5b, 5c and 7 fresh. IQM over games, and the "
        "geometric mean of legacy tables: rliable's stratified bootstrap over seeds"
        f" ({BOOT_REPS} resamples; a game below {GEO_FLOOR:g}% counts as "
        f"{GEO_FLOOR:g}% in the geometric mean).",
        "",
        "Runs so far (cells with a raw result, per seed; every command resumes and skips finished "
        "runs). The kickstart experiment lists its main pair and distillation (15 cells per seed) "
        "before the first design (10 per seed).",
        "",
        status_table(results),
        "",
    ]


def write_report(results: Path, out: Path) -> Path:
    """Write ``out`` (RESULTS.md) and ``<results>/plots/*.png`` from the raw results."""
    results, out = Path(results), Path(out)
    ctx = ReportContext(results, out, raw=rescore(load_raw(results / "reproduce" / "raw")))
    ctx.plots.mkdir(parents=True, exist_ok=True)
    parts = introduction(results)
    for section in SECTIONS:
        parts += section.render(ctx)
    out.write_text("\n".join(parts))
    return out
