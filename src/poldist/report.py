"""``poldist report``: RESULTS.md tables and PNG plots from the committed raw results.

Inputs (all optional; a missing one becomes a line saying how to make it):

- ``<results>/reproduce/raw/*.json``: one record per single-game run (``poldist reproduce``);
- ``<results>/multitask/results.json``: the multi-task table (``scripts/multitask_minatar.py``);
- ``<results>/online-*/online.csv``: online distillation runs (``poldist online``);
- ``<results>/bench.json``: the latest ``poldist bench`` output.

Per game, a cell is the mean percent of teacher over seeds with a 95% percentile-bootstrap CI over
seeds. Aggregates over games (IQM, and the paper's geometric mean of percent of teacher) use
rliable's stratified bootstrap over runs (:func:`aggregate_intervals`).
"""

from __future__ import annotations

import csv
import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from poldist.evaluation import bootstrap_ci, geometric_mean, percent_of_teacher

# The paper's Atari figures next to ours (PAPER.md); None where the paper gives a shape, not a number.
PAPER_LOSSES = (
    "Atari, 4 games, teacher-size students: KL (tau 0.01) best, at or above the teacher; "
    "NLL below it; MSE clearly worst (the paper's ordering: KL > NLL > MSE)."
)
PAPER_COMPRESSION = {"teacher": None, "net1": 108.3, "net2": 101.7, "net3": 83.9}  # 10 games, geo mean
PAPER_MULTITASK = {"multi_dist_kl": 116.9, "multi_dist_nll": 105.1, "multi_dqn": 83.5}  # 3 games
# What limits each ratio: from profiling the bench's sections (cProfile and per-part timings).
BENCH_LIMITS = """What limits each (read off the tables above, and a cProfile of sections 1-2):

- **Updates**: the library's update is the bare loop's (backward, convolution, RMSProp step) plus
  the uint8 minibatch gather from the replay memory and its conversion; the ratio is that overhead.
- **Collection**: `collect()` runs near the bare teacher-acting loop (`collect/teacher-acting`), far
  below random stepping: the teacher's forward pass per vector step, not the library, is the limit.
  More envs per vector env (`--num-envs`) amortise it. Ray actors on the same 2 cores as the learner
  cannot beat local play; they pay off with cores the learner does not use.
- **Inference**: at batch 1 per-call overhead dominates, so small students gain little under
  PyTorch and more under onnxruntime; at batch 256 compute dominates and the students' gain grows.
- **Time to quality**: distillation reaches 95% of the teacher within seconds of training; Double
  DQN on the same small network from scratch has 10x that time.
- **Memory**: Atari rows are dominated by the one stored frame (frame deduplication)."""
MULTITASK_SETUP = (
    "One student with the paper's multi-task network: the teacher's trunk (one 16-channel conv, 128 "
    "units) and per game a 128-unit hidden layer and an output layer (inputs zero-padded to 10 "
    "channels), distilled from the five shipped teachers (300,000 updates of batch "
    "256 in all, round robin over games, RMSProp lr 0.001, 500,000-transition memory per game), "
    "against the multi-task Double DQN: the same multi-head network trained on all five games "
    "jointly for the teachers' total env steps (19M). Scores over 100 episodes at epsilon 0.05."
)
GEO_FLOOR = 1.0  # percent: a zero score would make a geometric mean 0 whatever the other games do
BOOT_REPS = 2000
LOSS_ORDER = ("nll", "mse", "kl-tau1", "kl-tau0.1", "kl-tau0.01")
SIZE_ORDER = ("teacher", "net1", "net2", "net3")
CONTROL_ORDER = tuple(
    f"{loss}-tau0.01{suffix}" for loss in ("kl", "erd") for suffix in ("", "+student", "+mixed")
)
KICK_ORDER = ("dqn-lr0.0005", "kickstart-mse-lr0.0005", "dqn", "kickstart-kl-tau0.01", "kl-tau0.01")
KICK_PAIRS = (("kickstart-mse-lr0.0005", "dqn-lr0.0005"), ("kickstart-kl-tau0.01", "dqn"))  # same lr


def experiment_records(raw: list[dict[str, Any]], experiment: str) -> list[dict[str, Any]]:
    """The raw records that are cells of ``experiment`` (a shared cell counts for each)."""
    from poldist.reproduce import experiment_cells

    seeds = sorted({r["seed"] for r in raw})
    names = {c.name for c in experiment_cells(experiment, seeds)}
    return [r for r in raw if _cell_name(r) in names]


def load_raw(raw_dir: Path) -> list[dict[str, Any]]:
    """Every raw record in ``raw_dir`` (``*.json``), sorted by name."""
    return [json.loads(p.read_text()) for p in sorted(Path(raw_dir).glob("*.json"))]


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


def _iqm(x: np.ndarray) -> float:
    from scipy import stats

    return float(stats.trim_mean(x.reshape(-1), proportiontocut=0.25))


def _geo(x: np.ndarray) -> float:
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
        usable, lambda x: np.array([_iqm(x), _geo(x)]), reps=BOOT_REPS
    )
    return {
        k: {
            "iqm": [float(points[k][0]), float(intervals[k][0, 0]), float(intervals[k][1, 0])],
            "geomean": [float(points[k][1]), float(intervals[k][0, 1]), float(intervals[k][1, 1])],
        }
        for k in usable
    }


def _cell(values: list[float]) -> str:
    if not values:
        return "–"
    mean = float(np.mean(values))
    if len(values) == 1:
        return f"{mean:.1f} (1 seed)"
    lo, hi = bootstrap_ci(np.array(values))
    return f"{mean:.1f} [{lo:.1f}, {hi:.1f}]"


def _agg_cell(v: list[float] | None) -> str:
    return "–" if v is None else f"**{v[0]:.1f}** [{v[1]:.1f}, {v[2]:.1f}]"


def _md_table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _budget_line(records: list[dict[str, Any]]) -> str:
    r = records[0]
    c = r["config"]
    return (
        f"Budget per student: {r['updates']:,} updates of batch {r['batch_size']} "
        f"(RMSProp, lr {c['lr']:g}), about {r['transitions']:,} fresh teacher transitions "
        f"({c['learning_starts']:,} before learning, then {c['transitions_per_update']:g} per update; "
        f"memory {c['memory_size']:,}), teacher acting with epsilon {c['epsilon']:g}; students scored "
        f"over {c['final_eval_episodes']} episodes at epsilon 0.05 against the teacher's reference score."
    )


def single_game_section(
    records: list[dict[str, Any]], key: str, order: tuple[str, ...], plots: Path, title: str
) -> tuple[str, dict[str, Any]]:
    """Table (games x variants of ``key``) of percent of teacher, aggregates, and a bar plot."""
    games = sorted({r["game"] for r in records})
    variants = [v for v in order if any(r[key] == v for r in records)]
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        groups[r[key]].append(r)
    matrices, seeds = {}, {}
    for v in variants:
        matrices[v], seeds[v] = seed_matrix(groups[v], games)
    agg = aggregate_intervals(matrices)
    rows = []
    for g in games:
        row = [g, _fmt_score(records, g)]
        for v in variants:
            row.append(_cell([r["percent_of_teacher"] for r in groups[v] if r["game"] == g]))
        rows.append(row)
    rows.append(["**IQM**", ""] + [_agg_cell(agg.get(v, {}).get("iqm")) for v in variants])
    rows.append(["**geometric mean**", ""] + [_agg_cell(agg.get(v, {}).get("geomean")) for v in variants])
    # aggregates use the seeds that every game has: say how many, and over how many games
    rows.append(
        ["runs in aggregates", ""]
        + [f"{len(seeds[v])} seed{'s' * (len(seeds[v]) != 1)} x {len(games)} games" for v in variants]
    )
    headers = ["game", "teacher score"] + [_label(key, v, records) for v in variants]
    plot = _bar_plot(games, variants, groups, plots / f"{title}.png", title)
    per_game = {
        v: {g: float(np.mean([r["percent_of_teacher"] for r in groups[v] if r["game"] == g])) for g in games}
        for v in variants
    }
    data = {"variants": variants, "games": games, "aggregates": agg, "plot": plot, "per_game": per_game}
    return _md_table(headers, rows), data


def _ranking(prefix: str, data: dict[str, Any]) -> str:
    """The variants ordered by their geometric-mean point estimate, as measured."""
    agg = data["aggregates"]
    ranked = sorted((v for v in data["variants"] if v in agg), key=lambda v: -agg[v]["geomean"][0])
    if not ranked:
        return f"{prefix}: not every game has a run yet."
    name = {v: v.replace("-tau", " tau ") for v in ranked}
    text = f"{prefix} (the seeds so far): " + " > ".join(
        f"{name[v]} ({agg[v]['geomean'][0]:.1f}%)" for v in ranked
    )
    # which neighbours in the order can the seeds so far not tell apart (95% intervals overlap)?
    ties = [
        f"{name[a]} / {name[b]}"
        for a, b in zip(ranked, ranked[1:])
        if agg[a]["geomean"][1] <= agg[b]["geomean"][2]
    ]
    if ties:
        text += ". Not separated by the 95% intervals of the geometric mean: " + "; ".join(ties)
    return text + "."


def _gaps_note(path: Path, records: list[dict[str, Any]], data: dict[str, Any]) -> str:
    """What the teachers' Q-value gaps say about the temperature (``scripts/teacher_gaps.py``).

    Every comparison in the text is computed from ``records`` (the losses cells) and ``data``
    (their aggregates), so it stays true as seeds are added.
    """
    if not path.exists():
        return "Teacher Q-value gaps: run `python scripts/teacher_gaps.py` to add them here."
    gaps = {k.split("/")[-1]: v["median_gap"] for k, v in json.loads(path.read_text())["teachers"].items()}
    medians = ", ".join(f"{g} {v:.3f}" for g, v in gaps.items())
    widest = max(gaps, key=gaps.get)
    kl = [v for v in data["variants"] if v.startswith("kl-")]
    mean = {
        v: np.mean([r["percent_of_teacher"] for r in records if r["game"] == widest and r["variant"] == v])
        for v in kl
        if any(r["game"] == widest and r["variant"] == v for r in records)
    }
    best = max(mean, key=mean.get) if mean else None
    text = (
        "What we checked: the teachers' best two Q-values are close on MinAtar. Median gap between "
        "them on 20,000 teacher states (`python scripts/teacher_gaps.py`, raw in "
        f"`results/teacher_gaps.json`): {medians}. At tau 0.01 a gap of 0.03 is already a 20:1 target "
        "between two actions the teacher values almost equally."
    )
    if best:
        text += (
            f" On {widest}, the game with the largest median gap, the best KL temperature here is "
            f"{best.removeprefix('kl-tau')} ({mean[best]:.1f}%)."
        )
    agg = data["aggregates"]
    if "nll" in agg and "kl-tau1" in agg:
        nll, soft = agg["nll"]["geomean"][0], agg["kl-tau1"]["geomean"][0]
        text += (
            f" That the gaps explain the ranking is not established: NLL, an even sharper (one-hot) "
            f"target, reaches {nll:.1f}% against KL tau 1's {soft:.1f}% (geometric means)."
        )
    return text


def _short_budget_note(raw: list[dict[str, Any]], games: list[str]) -> str:
    """Compression at the standard budget, where runs exist: how much the longer budget matters."""
    short = [
        r
        for r in raw
        if not r.get("budget") and r["variant"] == "kl-tau0.01" and r.get("method", "distill") == "distill"
    ]
    parts = []
    for size in SIZE_ORDER:
        matrix, seeds = seed_matrix([r for r in short if r["student"] == size], games)
        if seeds:
            parts.append(f"{size} {_geo(matrix):.1f}% ({len(seeds)} seed{'s' * (len(seeds) > 1)})")
    if not parts:
        return ""
    r = next(r for r in short)
    return (
        f"The same students at the losses' budget ({r['updates']:,} updates; raw files without "
        f"`__40k`), geometric mean of percent of teacher: {', '.join(parts)}. The difference from "
        "the table above is what the longer budget buys: at 10k updates the small students' curves "
        "were still rising, so a short budget measures learning speed as much as capacity."
    )


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


def _fmt_score(records: list[dict[str, Any]], game: str) -> str:
    r = next(r for r in records if r["game"] == game)
    card = r.get("card_score", r["teacher_score"])
    return f"{r['teacher_score']:.2f} (card {card:.2f})" if card != r["teacher_score"] else f"{card:.2f}"


def _label(key: str, v: str, records: list[dict[str, Any]]) -> str:
    if key == "student":
        r = next(r for r in records if r["student"] == v)
        return f"{v} ({100 * r['compression']:.0f}%, {r['student_params']:,} params)"
    return v.replace("-tau", " tau ")


def _bar_plot(
    games: list[str], variants: list[str], groups: dict[str, list[dict[str, Any]]], path: Path, title: str
) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.8 / max(1, len(variants))
    for j, v in enumerate(variants):
        means, errs = [], [[], []]
        for g in games:
            vals = np.array([r["percent_of_teacher"] for r in groups[v] if r["game"] == g])
            m = float(vals.mean()) if len(vals) else np.nan
            lo, hi = bootstrap_ci(vals) if len(vals) > 1 else (m, m)
            means.append(m)
            errs[0].append(m - lo)
            errs[1].append(hi - m)
        x = np.arange(len(games)) + (j - (len(variants) - 1) / 2) * width
        ax.bar(x, means, width, yerr=errs, capsize=2, label=v)
    ax.axhline(100, color="k", lw=0.8, ls="--")
    ax.set_xticks(np.arange(len(games)), games)
    ax.set_ylabel("% of teacher score")
    ax.set_title(f"{title}: mean over seeds, 95% bootstrap CI")
    ax.legend(fontsize=8, ncol=len(variants))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def compression_curve(records: list[dict[str, Any]], data: dict[str, Any], path: Path) -> Path:
    """Percent of teacher against student parameter count: one line per game and the geo mean."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for g in data["games"]:
        pts = sorted((r["student_params"], r["percent_of_teacher"]) for r in records if r["game"] == g)
        by_params: dict[int, list[float]] = defaultdict(list)
        for p, v in pts:
            by_params[p].append(v)
        xs = sorted(by_params)
        ax.plot(xs, [np.mean(by_params[x]) for x in xs], marker="o", lw=1, alpha=0.6, label=g)
    geo = [
        (next(r["student_params"] for r in records if r["student"] == v), data["aggregates"].get(v))
        for v in data["variants"]
    ]
    geo = [(p, a["geomean"]) for p, a in geo if a]
    if geo:
        xs = [p for p, _ in geo]
        ax.errorbar(
            xs,
            [a[0] for _, a in geo],
            yerr=[[a[0] - a[1] for _, a in geo], [a[2] - a[0] for _, a in geo]],
            color="k",
            lw=2,
            marker="s",
            capsize=3,
            label="geometric mean (95% CI)",
        )
    ax.axhline(100, color="k", lw=0.8, ls="--")
    ax.set_xscale("log")
    ax.set_xlabel("student parameters")
    ax.set_ylabel("% of teacher score")
    ax.set_title("Compression (KL, tau 0.01)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def kickstart_curves(records: list[dict[str, Any]], raw_dir: Path, path: Path) -> Path:
    """Percent of teacher against env steps, one panel per game, one line per variant (seed mean).

    Env steps are the learner's own for DQN and kickstarting, and the teacher's transitions
    collected so far for distillation (its only contact with the env).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    games = sorted({r["game"] for r in records})
    colors = dict(
        zip(KICK_ORDER, ("tab:purple", "tab:red", "tab:blue", "tab:orange", "tab:green"))
    )  # same in every panel
    fig, axes = plt.subplots(1, len(games), figsize=(4 * len(games), 3.6), squeeze=False, sharex=True)
    for ax, g in zip(axes[0], games):
        for v in KICK_ORDER:
            curves: dict[float, list[float]] = defaultdict(list)
            for r in (r for r in records if r["game"] == g and r["variant"] == v):
                for step, score in _cell_evals(r, raw_dir).items():
                    curves[step].append(100 * score / r["teacher_score"])
            if curves:
                xs = sorted(curves)
                ax.plot(xs, [np.mean(curves[x]) for x in xs], marker="o", ms=3, color=colors[v])
        ax.axhline(100, color="k", lw=0.8, ls="--")
        ax.set_title(g)
        ax.set_xlabel("env steps")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("% of teacher score")
    handles = [plt.Line2D([], [], color=colors[v], marker="o", ms=3) for v in KICK_ORDER]
    labels = [v.replace("-tau", " tau ") for v in KICK_ORDER]
    fig.legend(handles, labels, loc="upper center", ncol=len(labels), fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _evals_by_step(rows: list[dict[str, Any]]) -> dict[int, float]:
    return {int(float(e["env_steps"])): float(e["score"]) for e in rows}


def _cell_evals(record: dict[str, Any], raw_dir: Path) -> dict[int, float]:
    """A raw cell's evaluations, score by env step, from its ``.evals.csv`` (empty if none)."""
    evals = raw_dir / f"{_cell_name(record)}.evals.csv"
    if not evals.exists():
        return {}
    with evals.open() as f:
        return _evals_by_step(list(csv.DictReader(f)))


def kickstart_ahead(records: list[dict[str, Any]], raw_dir: Path) -> str:
    """How often each kickstart variant's seed-mean curve is above its DQN's (same learning rate).

    Per game, only the seeds both variants have and the env steps every one of those runs
    evaluated at count. Returns a sentence, or "" when no pair has curves.
    """
    parts = []
    for kick, dqn in KICK_PAIRS:
        games = []
        for g in sorted({r["game"] for r in records}):
            by_seed = {
                v: {
                    r["seed"]: _cell_evals(r, raw_dir)
                    for r in records
                    if r["game"] == g and r["variant"] == v
                }
                for v in (kick, dqn)
            }
            seeds = sorted(set(by_seed[kick]) & set(by_seed[dqn]))
            runs = [by_seed[v][s] for v in (kick, dqn) for s in seeds]
            steps = sorted(set.intersection(*(set(c) for c in runs))) if runs else []
            if not steps:
                continue
            mean = {
                v: np.array([[by_seed[v][s][t] for t in steps] for s in seeds]).mean(0) for v in (kick, dqn)
            }
            ahead = int((mean[kick] > mean[dqn]).sum())
            games.append(f"{g} {ahead} of {len(steps)} ({len(seeds)} seed{'s' * (len(seeds) > 1)})")
        if games:
            parts.append(f"{kick} vs {dqn}: " + ", ".join(games))
    if not parts:
        return ""
    return (
        "Over the run: evaluations at which the kickstarted seed-mean score is above DQN's: "
        + "; ".join(parts)
        + "."
    )


def _weight_schedule(decay: float) -> str:
    """The kickstart weight's linear schedule in words; it reaches 0 at ``decay`` of the run."""
    if decay < 1:
        return f"falling to 0 over the first {decay:.0%} of the run"
    if decay == 1:
        return "falling to 0 over the whole run"
    return f"held nearly constant ({1 - 1 / decay:.0%} of its start at the end)"


def kickstart_check_section(folder: Path, raw: list[dict[str, Any]], raw_dir: Path) -> list[str]:
    """Lines for the kickstarting diagnosis (``scripts/kickstart_check.py`` results in ``folder``).

    One table per game, seed, run length and weight schedule; one row per variant: its loss,
    weight and learning rate and its score at (up to ten of) its evaluations. Runs as long as
    the kickstart experiment's also show that experiment's cells of the same game and seed
    (from ``raw`` / ``raw_dir``); below each table, the plain-distillation net1 student and the
    teacher for scale.
    """
    files = sorted(folder.glob("*.json")) if folder.is_dir() else []
    if not files:
        return []
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for f in files:
        r = json.loads(f.read_text())
        r["by_step"] = _evals_by_step(r["evals"])
        groups[(r["game"], r["config"]["seed"], r["config"]["total_steps"], r["decay"])].append(r)
    lines = [
        "**What we checked**, on one game: does the distillation term fight the TD loss (weight 100 "
        "makes the TD loss negligible), does the loss matter (KL tau 0.01 / MSE / NLL), or is the "
        "DQN's optimiser too slow for distillation (lr 5e-4)? Each row's exact `poldist train-teacher` "
        "command is in its JSON under `results/kickstart-check/`.",
        "",
    ]
    for (game, seed, total, decay), runs in sorted(groups.items()):
        for r in raw:  # the experiment's own cells of this length, for comparison
            if (r["game"], r["seed"], r["method"]) in {(game, seed, "dqn"), (game, seed, "kickstart")}:
                by_step = _cell_evals(r, raw_dir)
                if r["config"].get("total_steps") == total and by_step:
                    runs.append(
                        {"variant": f"{r['variant']} (section 5)", "config": r["config"], "by_step": by_step}
                    )
        # grouped by learning rate, DQN alone first, then by kickstart loss and weight
        runs.sort(key=lambda r: (r["config"]["lr"], bool(r["config"]["kickstart_teacher"]), r["variant"]))
        steps = sorted({s for r in runs for s in r["by_step"]})
        if len(steps) > 10:  # a readable width: ten evenly spaced evaluations, the last included
            steps = [steps[i] for i in sorted({round(k * (len(steps) - 1) / 9) for k in range(10)})]
        rows = []
        for r in runs:
            c = r["config"]
            kick = bool(c["kickstart_teacher"])
            rows.append(
                [r["variant"], c["kickstart_loss"] if kick else "-"]
                + [f"{c['kickstart_weight']:g}" if kick else "0", f"{c['lr']:g}"]
                + [f"{r['by_step'][s]:.2f}" if s in r["by_step"] else "" for s in steps]
            )
        variants = ",".join(r["variant"] for r in runs if "section" not in r["variant"])
        interval = runs[0]["config"]["eval_interval"]
        schedule = _weight_schedule(decay)
        lines += [
            f"{game}, seed {seed}, {total:,} env steps, kickstart weight {schedule}: "
            f"`python scripts/kickstart_check.py --game {game} --variants {variants} --steps {total} "
            f"--eval-interval {interval} --decay {decay:g} --seed {seed}`",
            "",
            _md_table(
                ["variant", "kickstart loss", "weight", "lr"] + [f"score at {s:,}" for s in steps], rows
            ),
            "",
        ]
        ref = [
            r
            for r in raw
            if (r["game"], r["seed"], r["student"], r["variant"], r.get("budget", ""))
            == (game, seed, "net1", "kl-tau0.01", "")
        ]
        if ref:
            r, c = ref[0], ref[0]["config"]
            lines += [
                f"For scale: plain distillation of the same net1 student (KL tau 0.01, {r['updates']:,} "
                f"updates of {r['batch_size']}, {c['optimizer']} lr {c['lr']:g}, seed {seed}) scores "
                f"{r['student_score']:.2f}; the teacher {r['teacher_score']:.2f}.",
                "",
            ]
    return lines


def _cell_name(record: dict[str, Any]) -> str:
    """The name of the cell a raw record belongs to (its file name without suffix)."""
    from dataclasses import fields

    from poldist.reproduce import Cell

    return Cell(**{f.name: record[f.name] for f in fields(Cell) if f.name in record}).name


def multitask_section(paths: list[Path]) -> tuple[str, dict[str, dict[str, Any]]]:
    """The multi-task table from ``results/multitask/seed*/results.json`` (one file per seed),
    and its aggregates (``method -> {"iqm"|"geomean": [point, low, high], "per_game": {game:
    mean percent}, "per_seed": [geometric mean percent of each seed]}``)."""
    per_seed = rescore_multitask([json.loads(p.read_text()) for p in paths])
    games = list(per_seed[0]["per_game"])
    methods = [  # a method shows once any seed has it (a seed's DQN may still be running)
        m
        for m in ("multi_dist_kl", "multi_dist_nll", "multi_dqn")
        if any(m in r["per_game"][games[0]] for r in per_seed)
    ]
    matrices = {}
    for m in methods:
        runs = [r for r in per_seed if all(m in r["per_game"][g] for g in games)]
        matrices[m] = np.array([[r["per_game"][g][f"{m}_percent"] for g in games] for r in runs])
    agg: dict[str, dict[str, Any]] = aggregate_intervals(matrices)
    for m in methods:
        agg[m]["per_game"] = {g.split("/")[-1]: float(matrices[m][:, i].mean()) for i, g in enumerate(games)}
        # per seed, as in the aggregates: a game below GEO_FLOOR counts as GEO_FLOOR
        agg[m]["per_seed"] = list(np.exp(np.log(np.maximum(matrices[m], GEO_FLOOR)).mean(axis=1)))
    rows = []
    for i, game in enumerate(games):
        t = per_seed[0]["per_game"][game]
        card = t.get("card_score", t["teacher_score"])
        row = [
            game,
            f"{t['teacher_score']:.2f}" + (f" (card {card:.2f})" if card != t["teacher_score"] else ""),
        ]
        for m in methods:
            scores = [r["per_game"][game][m] for r in per_seed if m in r["per_game"][game]]
            pct = list(matrices[m][:, i])
            ci = "" if len(pct) < 2 else " [{:.1f}, {:.1f}]".format(*bootstrap_ci(np.array(pct)))
            row.append(f"{np.mean(scores):.2f} ({np.mean(pct):.1f}%{ci})")
        rows.append(row)
    rows.append(["**IQM**", ""] + [_agg_cell(agg.get(m, {}).get("iqm")) for m in methods])
    rows.append(["**geometric mean**", ""] + [_agg_cell(agg.get(m, {}).get("geomean")) for m in methods])
    rows.append(["seeds", ""] + [str(len(matrices[m])) for m in methods])
    rows.append(["paper (Atari, 3 games)", ""] + [f"{PAPER_MULTITASK[m]}%" for m in methods])
    headers = ["game", "teachers"] + [m.replace("_", "-") + ": score (% of teacher)" for m in methods]
    return _md_table(headers, rows), agg


def _multitask_checks(agg: dict[str, dict[str, Any]], losses: dict[str, Any] | None, folder: Path) -> str:
    """What we checked where the multi-task shape differs from the paper's (students below their
    teachers, NLL not clearly above the DQN): multi-task against single-task distillation with the
    same loss and tau (section 1), the seed spread, and the linear-heads exploration in ``folder``.
    Every number comes from ``agg`` (the multi-task aggregates), ``losses`` (section 1's data) and
    the exploration's results.json, so the text follows the results."""
    lines = [
        "**What we checked.** In the paper (Atari, 3 games) both students pass their teachers and the "
        "multi-task DQN; here the students stay below their teachers."
    ]
    pairs = (("multi_dist_kl", "kl-tau0.01"), ("multi_dist_nll", "nll"))
    if losses is not None and all(m in agg and v in losses["aggregates"] for m, v in pairs):
        parts, readings = [], []
        for m, v in pairs:
            name, single = m.replace("_", "-"), losses["aggregates"][v]["geomean"][0]
            games = ", ".join(
                f"{g} {agg[m]['per_game'][g]:.1f} vs {losses['per_game'][v][g]:.1f}"
                for g in losses["games"]
                if g in agg[m]["per_game"]
            )
            parts.append(
                f"{name} {agg[m]['geomean'][0]:.1f}% against single-game {v} {single:.1f}% ({games})"
            )
            gap = agg[m]["geomean"][0] - single
            if abs(gap) < 3:  # within the seeds' spread: sharing the network costs nothing visible
                readings.append(
                    f"{name} is within 3 points of single-game {v}, so its shortfall is that of "
                    "single-game distillation on MinAtar (section 1), not interference between games"
                )
            else:
                readings.append(
                    f"{name} is {abs(gap):.1f} points {'above' if gap > 0 else 'below'} single-game {v}"
                )
        lines.append(
            "Multi-task against single-game distillation with the same loss on the same teachers "
            "(section 1: teacher-size students, its own budget; per game, multi-task vs "
            f"single-game percent): {'; '.join(parts)}. Reading: {'; '.join(readings)}."
        )
    soft = folder / "explore-kl-tau0.1-hh128-seed0" / "results.json"
    if soft.exists() and "multi_dist_kl" in agg:
        geo = multitask_geomeans(json.loads(soft.read_text()))["multi_dist_kl"]
        lines.append(
            f"A softer target, KL tau 0.1 with the same network (one seed, explorations below), "
            f"reached {geo:.1f}% against tau 0.01's {agg['multi_dist_kl']['geomean'][0]:.1f}%."
        )
    if "multi_dqn" in agg and len(agg["multi_dqn"]["per_seed"]) > 1:
        spread = ", ".join(
            f"{m.replace('_', '-')} " + ", ".join(f"{x:.1f}" for x in agg[m]["per_seed"])
            for m in ("multi_dist_kl", "multi_dist_nll", "multi_dqn")
            if m in agg
        )
        lines.append(
            f"Geometric mean per seed: {spread}. The multi-task DQN is a strong baseline here: the "
            "same network with the 128-unit per-game layer, trained by Double DQN for the teachers' "
            "total env steps."
        )
    linear = folder / "explore-linear-heads-seed0" / "results.json"
    if linear.exists():
        geo = multitask_geomeans(json.loads(linear.read_text()))
        if {"multi_dist_kl", "multi_dqn"} <= geo.keys() and {"multi_dist_kl", "multi_dqn"} <= agg.keys():
            lines.append(
                f"With linear heads (one seed, explorations below) the DQN reached {geo['multi_dqn']:.1f}% "
                f"against the KL student's {geo['multi_dist_kl']:.1f}%: the per-game layer took the "
                f"DQN from {geo['multi_dqn']:.1f}% to {agg['multi_dqn']['geomean'][0]:.1f}% and the KL "
                f"student from {geo['multi_dist_kl']:.1f}% to {agg['multi_dist_kl']['geomean'][0]:.1f}%."
            )
    return " ".join(lines)


def _multitask_target(agg: dict[str, dict[str, Any]]) -> str:
    """The target (students >= 95% of the teachers and above the multi-task DQN), as measured."""
    dqn = agg.get("multi_dqn", {}).get("geomean")
    lines = []
    for m in ("multi_dist_kl", "multi_dist_nll"):
        if m not in agg:
            continue
        geo = agg[m]["geomean"][0]
        verdict = "met" if geo >= 95 else "not met"
        vs = (
            ""
            if dqn is None
            else f"; {'above' if geo > dqn[0] else 'not above'} the multi-task DQN ({dqn[0]:.1f}%)"
        )
        lines.append(f"{m.replace('_', '-')} {geo:.1f}%: >= 95% {verdict}{vs}")
    return (
        "Target (student >= 95% of the teachers' geometric mean, above the multi-task DQN): "
        + "; ".join(lines)
        + "."
    )


def _multitask_explorations(folder: Path) -> list[str]:
    """One line per exploratory multi-task run (``explore-*``: one seed, another setting)."""
    lines = []
    for path in sorted(folder.glob("explore-*/results.json")):
        res = rescore_multitask([json.loads(path.read_text())])[0]
        for m, geo in multitask_geomeans(res).items():
            games = ", ".join(
                f"{g.split('/')[-1]} {r[f'{m}_percent']:.1f}%" for g, r in res["per_game"].items()
            )
            student = res.get("students", {}).get(m, {})
            tau, hh = student.get("tau", 0.01), student.get("head_hidden", 0)
            size = student.get("student", "teacher")
            size_flag = f" --student {size}" if size != "teacher" else ""
            # newer results record their command; older ones (students only) are rebuilt from settings
            cmd = res.get("command") or (
                f"python scripts/multitask_minatar.py --skip-dqn --losses {m.split('_')[-1]} --tau {tau:g}"
                f" --head-hidden {hh}{size_flag} --out results/multitask/{path.parent.name}"
            )
            layer = f"{hh}-unit per-game layer" if hh else "linear heads"
            setting = f"{m}, {layer}" if m == "multi_dqn" else f"{m}, tau {tau:g}, {layer}"
            if size != "teacher":
                setting += f", student {size} ({student['params']:,} params)"
            lines.append(f"- Exploration ({setting}): **{geo:.1f}%** geometric mean ({games}); `{cmd}`")
    return lines + ([""] if lines else [])


def _online_rows(csv_path: Path) -> list[dict[str, float]]:
    with open(csv_path) as f:
        return [{k: float(v) for k, v in r.items()} for r in csv.DictReader(f)]


def _online_seed(csv_path: Path) -> int:
    return int(json.loads((csv_path.parent / "config.json").read_text())["seed"])


def online_section(csv_paths: list[Path]) -> str:
    """Teacher and student score at the start, middle and end of each seed's run."""
    rows = []
    for path in csv_paths:
        r = _online_rows(path)
        for point in (r[0], r[len(r) // 2], r[-1]):
            rows.append(
                [
                    str(_online_seed(path)),
                    f"{int(point['teacher_env_steps']):,}",
                    f"{point['teacher_score']:.2f}",
                    f"{point['student_score']:.2f}",
                ]
            )
    return _md_table(["seed", "teacher env steps", "teacher score", "student score"], rows)


def online_tracking(csv_paths: list[Path]) -> str:
    """How closely the student follows: its score over the teacher's at the same points.

    Points in the first 10% of training (both near zero, a ratio of noise) are left out; the
    ratio is of the summed scores, so a point where the teacher scores 0 does not divide by 0.
    """
    parts = []
    for path in csv_paths:
        r = _online_rows(path)
        late = [p for p in r if p["teacher_env_steps"] > 0.1 * r[-1]["teacher_env_steps"]]
        teacher = sum(p["teacher_score"] for p in late)
        student = sum(p["student_score"] for p in late)
        ahead = sum(p["student_score"] >= p["teacher_score"] for p in late)
        ratio = f"{100 * student / teacher:.0f}%" if teacher > 0 else "n/a"
        parts.append(
            f"seed {_online_seed(path)}: {ratio} of the teacher's score summed over the {len(late)} points "
            f"after the first 10% of training, at or above it at {ahead} of them"
        )
    return (
        "Paper: the student follows the learning teacher closely throughout training (a figure, no "
        "numbers). Here: " + "; ".join(parts) + "."
    )


def online_plot(csv_paths: list[Path], path: Path) -> Path:
    """Teacher and student score against teacher env steps: each seed thin, their mean bold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    runs = [_online_rows(p) for p in csv_paths]
    n = min(len(r) for r in runs)
    x = [row["teacher_env_steps"] for row in runs[0][:n]]
    for who, color in (("teacher", "k"), ("student", "tab:blue")):
        ys = np.array([[row[f"{who}_score"] for row in r[:n]] for r in runs])
        for y in ys:
            ax.plot(x, y, color=color, lw=0.7, alpha=0.35)
        ax.plot(x, ys.mean(axis=0), color=color, lw=2, label=f"{who} (mean of {len(runs)} seeds)")
    ax.set_xlabel("teacher env steps")
    ax.set_ylabel("score (epsilon 0.05)")
    ax.set_title("Online distillation: the student follows the learning teacher")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


STATUS_SEEDS = (0, 1, 2)


def status_table(results: Path) -> str:
    """Which runs exist, per experiment and seed, and the command that makes the rest.

    Counts cells of :func:`poldist.reproduce.experiment_cells` with a raw file under
    ``<results>/reproduce/raw``, the multi-task methods (of three) present in
    ``<results>/multitask/seed<S>/results.json``, and online seeds with a ``summary.json``.
    """
    from poldist.reproduce import EXPERIMENTS, experiment_cells

    rows = []
    for name in EXPERIMENTS:
        counts = []
        for seed in STATUS_SEEDS:
            cells = experiment_cells(name, [seed])
            done = sum((results / "reproduce" / "raw" / f"{c.name}.json").exists() for c in cells)
            counts.append((done, len(cells)))
        rows.append((name, counts, f"poldist reproduce {name} --seeds 0,1,2"))
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
    return _md_table(["experiment"] + [f"seed {s}" for s in STATUS_SEEDS] + ["to finish"], table)


def study_section(results: Path, plots: Path, link: Any) -> list[str]:
    """Section 5b: the study of what holds students back (``scripts/study_minatar.py``)."""
    from poldist.study_report import (
        group_intervals,
        load_study,
        near_tie_table,
        reference_returns_of,
        study_curves,
        study_table,
    )

    raw_dir = results / "study" / "raw"
    parts = ["## 5b. What holds students back: one change at a time (tuning seed 0)", ""]
    records = load_study(raw_dir)
    if not records:
        return parts + ["No raw results yet: `python scripts/study_minatar.py --list`.", ""]
    refs = reference_returns_of(records)
    groups = group_intervals(records, refs)
    games = [g for g in ("asterix", "breakout", "freeway", "seaquest", "space_invaders") if g in refs]
    base = records[0]["config"]
    parts += [
        "Every row is the base recipe with one change (column `change`). Base: KL at tau "
        f"{base['tau']:g}, {base['optimizer']} lr {base['lr']:g}, batch {base['batch_size']}, "
        f"{base['updates']:,} updates, {base['transitions_per_update']:g} fresh teacher transitions per "
        f"update into a {base['memory_size']:,}-transition memory, teacher acting at epsilon "
        f"{base['epsilon']:g}. Percent of the teacher's reference score (1,000 episodes on env seeds no "
        f"run uses), scored over {base['final_eval_episodes']} episodes per run; [95% interval] of a "
        "two-stage bootstrap (seeds, then episodes within each seed, and the reference episodes), so "
        "a single seed's interval covers episode noise only. In brackets after the geometric mean: "
        "the change against the net2 base. `min/run`: training minutes of one core per run on this "
        "machine (other jobs ran beside it). Seed 0 is the tuning set: the recipe chosen here is "
        "reported on other seeds.",
        "",
        study_table(groups, games),
        "",
    ]
    for size in sorted({r["size"] for r in records}):
        if sum(1 for (_, s) in groups if s == size) > 1:
            curve = study_curves(groups, raw_dir, refs, plots / f"study_{size}.png", size)
            parts += [f"![study {size}]({link(curve)})", ""]
    ties = near_tie_table(groups)
    if ties:
        parts += [
            "Where base students disagree with their teacher: the share of fresh teacher states in each "
            "bin of the teacher's gap between its two best Q-values, and the student's greedy agreement "
            "in that bin; `Q regret`: the mean Q-value the teacher loses by the student's action.",
            "",
            ties,
            "",
        ]
    return parts + ["Command per row: in each raw file (`results/study/raw/*.json`, `command`).", ""]


def write_report(results: Path, out: Path) -> Path:
    """Write ``out`` (RESULTS.md) and ``<results>/plots/*.png`` from the raw results."""
    results, out = Path(results), Path(out)
    plots = results / "plots"
    plots.mkdir(parents=True, exist_ok=True)

    def link(path: Path) -> str:  # images relative to the Markdown file
        return os.path.relpath(path, out.parent).replace(os.sep, "/")

    parts = [
        "# Results",
        "",
        "Made by `poldist report` from the raw files under `results/`; every row names the command "
        "that makes it. Percent of teacher: the student's mean score over the teacher's reference "
        "score (`poldist reference-score`: 1,000 episodes at epsilon 0.05 on env seeds that no "
        "training, selection or student evaluation uses; the shipped teacher's 100-episode model-card "
        "score, which the runs of sections 1-5 were first reported against, is shown beside it). "
        "Sections 1-5 below were run before that yardstick (50-100 final episodes, neighbouring seeds "
        "sharing env seeds); section 5b is the first under it. Per-game cells: mean over seeds "
        "[95% percentile-bootstrap CI over seeds]. IQM and geometric mean over games: rliable's "
        f"stratified bootstrap ({BOOT_REPS} resamples; a game below {GEO_FLOOR:g}% counts as "
        f"{GEO_FLOOR:g}% in the geometric mean).",
        "",
        "Runs so far (cells with a raw result, per seed; every command resumes and skips finished "
        "runs). The kickstart experiment lists its main pair and distillation (15 cells per seed) "
        "before the first design (10 per seed).",
        "",
        status_table(results),
        "",
    ]
    raw = rescore(load_raw(results / "reproduce" / "raw"))
    losses = experiment_records(raw, "losses")
    losses_data = None  # section 1's per-game numbers, compared with the multi-task students
    parts += ["## 1. Losses (teacher-size students, all five MinAtar games)", ""]
    if losses:
        table, data = single_game_section(losses, "variant", LOSS_ORDER, plots, "losses")
        losses_data = data
        parts += [
            _budget_line(losses),
            "",
            table,
            "",
            f"![losses]({link(data['plot'])})",
            "",
            f"Paper: {PAPER_LOSSES}",
            "",
            _ranking("Here, by geometric mean", data),
            "",
            _gaps_note(results / "teacher_gaps.json", losses, data),
            "",
            "Command: `poldist reproduce losses --seeds 0,1,2`",
            "",
        ]
    else:
        parts += ["No raw results yet: `poldist reproduce losses --seeds 0,1,2`.", ""]

    comp = experiment_records(raw, "compression")
    parts += ["## 2. Compression (KL, tau 0.01)", ""]
    if comp:
        table, data = single_game_section(comp, "student", SIZE_ORDER, plots, "compression")
        curve = compression_curve(comp, data, plots / "compression_curve.png")
        paper = ", ".join(f"{k} {v}%" for k, v in PAPER_COMPRESSION.items() if v is not None)
        parts += [
            _budget_line(comp),
            "",
            table,
            "",
            f"Paper (Atari, 10 games, geometric mean of percent of teacher): {paper}.",
            "",
            _short_budget_note(raw, data["games"]),
            "",
            f"![compression]({link(data['plot'])}) ![compression curve]({link(curve)})",
            "",
            "Command: `poldist reproduce compression --seeds 0,1,2`",
            "",
        ]
    else:
        parts += ["No raw results yet: `poldist reproduce compression --seeds 0,1,2`.", ""]

    parts += ["## 3. Multi-task (one student, five MinAtar games)", ""]
    mt = sorted((results / "multitask").glob("seed*/results.json"))
    if mt:
        seeds = ",".join(p.parent.name.removeprefix("seed") for p in mt)
        table, agg = multitask_section(mt)
        curves = sorted(mt[0].parent.glob("*/curve.png"))
        parts += [
            MULTITASK_SETUP,
            "",
            table,
            "",
            _multitask_target(agg),
            "",
            _multitask_checks(agg, losses_data, results / "multitask"),
            "",
            *(f"![{c.parent.name}]({link(c)})" for c in curves),
            *([""] if curves else []),
            *_multitask_explorations(results / "multitask"),
            "Command, per seed S: "
            f"`python scripts/multitask_minatar.py --seed S --out results/multitask/seedS` (here: {seeds})",
            "",
        ]
    else:
        parts += [
            MULTITASK_SETUP,
            "",
            "No results of this setting yet: `python scripts/multitask_minatar.py --seed S "
            "--out results/multitask/seedS`.",
            "",
            *_multitask_explorations(results / "multitask"),
        ]

    parts += ["## 4. Online distillation", ""]
    online = sorted(results.glob("online/*/online.csv"))
    if online:
        plot = online_plot(online, plots / "online.png")
        cfg = json.loads((online[0].parent / "config.json").read_text())
        parts += [
            f"{cfg['env_id']}: a {cfg['student']} student distilled from a Double-DQN teacher while it "
            f"trains ({cfg['total_steps']:,} env steps; {cfg['updates_per_interval']:,} student updates "
            f"after each {cfg['interval']:,} teacher steps, on a {cfg['memory_size']:,}-transition memory "
            f"of the latest teacher-labelled play); both scored over {cfg['eval_episodes']} episodes at "
            "each point.",
            "",
            online_section(online),
            "",
            f"![online]({link(plot)})",
            "",
            online_tracking(online),
            "",
            f"Command: `poldist reproduce online --seeds {','.join(str(_online_seed(c)) for c in online)}`",
            "",
        ]
    else:
        parts += ["No results yet: `poldist reproduce online --seeds 0,1,2`.", ""]
    parts += ["## 5. Beyond the paper: who acts, and what is matched", ""]
    ctl = experiment_records(raw, "control")
    if any(r["control"] != "teacher" or r["loss"] == "erd" for r in ctl):
        table, data = single_game_section(ctl, "variant", CONTROL_ORDER, plots, "control")
        parts += [
            _budget_line(ctl),
            "",
            "Teacher-driven (the paper), student-driven (`+student`: the student acts, the teacher "
            "labels) and mixed control (`+mixed`: DAgger, the teacher acts with probability beta, "
            "falling linearly from 1 to 0 over the first half of the updates), with the paper's KL and "
            "entropy-regularised distillation (`erd`, reverse KL, Czarnecki et al. 2019), at equal "
            "teacher-label budgets. Agreement and score are both measured as in sections 1 and 2.",
            "",
            table,
            "",
            f"![control]({link(data['plot'])})",
            "",
            _ranking("What wins here, by geometric mean", data),
            "",
            "Command: `poldist reproduce control --seeds 0,1,2`",
            "",
        ]
    else:
        parts += ["No raw results yet: `poldist reproduce control --seeds 0,1,2`.", ""]
    kick = experiment_records(raw, "kickstart")
    parts += ["### Kickstarting", ""]
    if any(r["method"] != "distill" for r in kick):
        table, data = single_game_section(kick, "variant", KICK_ORDER, plots, "kickstart")
        curves = kickstart_curves(kick, results / "reproduce" / "raw", plots / "kickstart_curves.png")
        env_steps = sorted({r["transitions"] for r in kick if r["method"] != "distill"})
        lrs = sorted({f"{r['variant']} {r['config']['lr']:g}" for r in kick if r["method"] != "distill"})
        parts += [
            f"net1 students (25% of the teacher): Double DQN from scratch and kickstarted Double DQN "
            f"({', '.join(f'{s:,}' for s in env_steps)} env steps; the distillation term's weight falls "
            f"from 1 to 0 over the first half; Adam learning rates: {', '.join(lrs)}) against plain "
            f"distillation (its own budget of teacher transitions, sections 1-2). `kickstart-mse` "
            f"matches the teacher's Q-values; `kickstart-kl` (the first design) "
            f"its softmax(Q / 0.01). Compare each kickstart variant with the DQN at its own learning rate.",
            "",
            table,
            "",
            f"![kickstart]({link(data['plot'])})",
            "",
            f"![kickstart over env steps]({link(curves)})",
            "",
            _ranking("What wins here, by geometric mean", data),
            "",
            *([ahead, ""] if (ahead := kickstart_ahead(kick, results / "reproduce" / "raw")) else []),
            "Command: `poldist reproduce kickstart --seeds 0,1,2`",
            "",
            *kickstart_check_section(results / "kickstart-check", raw, results / "reproduce" / "raw"),
        ]
    else:
        parts += ["No raw results yet: `poldist reproduce kickstart --seeds 0,1,2`.", ""]

    parts += study_section(results, plots, link)
    parts += ["## 6. Speed and memory (`poldist bench`)", ""]
    bench_json = results / "bench.json"
    if bench_json.exists():
        from poldist.bench import report_text

        parts += [
            "Latest committed output of `poldist bench --json results/bench.json` (each ratio measured "
            "in one run on the machine named; other jobs running at the same time depress both sides "
            "of a ratio alike, not the ratio).",
            "",
            "```",
            report_text(json.loads(bench_json.read_text())),
            "```",
            "",
            BENCH_LIMITS,
            "",
        ]
    else:
        parts += ["No results yet: `poldist bench --json results/bench.json`.", ""]
    out.write_text("\n".join(parts))
    return out
