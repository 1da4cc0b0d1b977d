"""Plots people would rather look at than read, all of the package's figures in one place.

:func:`plot_learning_curve` (a run's student score against the teacher's level: ``poldist
distill``, the demo, model cards) and the figures of RESULTS.md that ``poldist report`` draws
from numbers its sections computed (:mod:`poldist.experiments`). Online distillation's own
run figure (``online.png``) is :func:`poldist.online.plot_online`."""

from __future__ import annotations

import textwrap
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.ticker
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from poldist.evaluation import bootstrap_ci  # noqa: E402
from poldist.runs import EvalLog  # noqa: E402


def plot_learning_curve(
    evals_csv: str | Path,
    out_png: str | Path,
    *,
    teacher_scores: list[float] | None = None,
    task_names: list[str] | None = None,
    x: str = "updates",
    title: str = "",
    label: str = "student",
    marks: Sequence[float] = (),
    marks_label: str = "",
) -> Path:
    """Student score (mean and 95% CI band) against ``x``, one panel per task.

    Args:
        evals_csv: an :class:`~poldist.runs.EvalLog` file.
        out_png: where to write the figure.
        teacher_scores: per task, drawn as a dashed horizontal line.
        task_names: panel titles.
        x: the column for the horizontal axis (``updates`` or ``env_steps``).
        label: the legend name of the curve (e.g. ``multi-task DQN``).
        marks: values of ``x`` drawn as dotted vertical lines (e.g. where a warm start began),
            named ``marks_label`` in the legend.
    """
    rows = EvalLog.read(evals_csv)
    tasks = sorted({int(r.get("task", 0)) for r in rows}) or [0]
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 3.6), squeeze=False)
    for ax, t in zip(axes[0], tasks):
        rs = [r for r in rows if int(r.get("task", 0)) == t]
        xs = [r[x] for r in rs]
        ax.plot(xs, [r["score"] for r in rs], marker="o", ms=3, label=label)
        ax.fill_between(xs, [r["ci_low"] for r in rs], [r["ci_high"] for r in rs], alpha=0.25)
        if teacher_scores is not None and t < len(teacher_scores):
            ax.axhline(teacher_scores[t], color="k", ls="--", label=f"teacher ({teacher_scores[t]:.2f})")
        for i, m in enumerate(marks):
            ax.axvline(m, color="grey", ls=":", label=marks_label if i == 0 and marks_label else None)
        ax.xaxis.set_major_formatter(matplotlib.ticker.EngFormatter(sep=""))  # 500k, 1M: no overlaps
        ax.set_xlabel(x.replace("_", " "))
        ax.set_ylabel("score (epsilon 0.05)")
        ax.set_title(task_names[t] if task_names and t < len(task_names) else title, fontsize="medium")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
    fig.tight_layout()
    out_png = Path(out_png)
    fig.savefig(out_png, dpi=120)
    plt.close(fig)
    return out_png


def bar_plot(
    games: list[str], variants: list[str], groups: dict[str, list[dict[str, Any]]], path: Path, title: str
) -> Path:
    """Percent of teacher per game, one bar per variant: mean over seeds with a 95% bootstrap CI.

    ``groups``: ``variant -> records`` (each with ``game`` and ``percent_of_teacher``).
    """
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


def kickstart_curves(
    records: list[dict[str, Any]],
    evals_of: Callable[[dict[str, Any]], dict[int, float]],
    path: Path,
    order: Sequence[str],
) -> Path:
    """Percent of teacher against env steps, one panel per game, one line per variant (seed mean).

    Env steps are the learner's own for DQN and kickstarting, and the teacher's transitions
    collected so far for distillation (its only contact with the env). ``evals_of``: a record's
    evaluations, score by env step; ``order``: the variants, in the legend's order (up to five).
    """
    games = sorted({r["game"] for r in records})
    colors = dict(
        zip(order, ("tab:purple", "tab:red", "tab:blue", "tab:orange", "tab:green"))
    )  # same in every panel
    fig, axes = plt.subplots(1, len(games), figsize=(4 * len(games), 3.6), squeeze=False, sharex=True)
    for ax, g in zip(axes[0], games):
        for v in order:
            curves: dict[float, list[float]] = defaultdict(list)
            for r in (r for r in records if r["game"] == g and r["variant"] == v):
                for step, score in evals_of(r).items():
                    curves[step].append(100 * score / r["teacher_score"])
            if curves:
                xs = sorted(curves)
                ax.plot(xs, [np.mean(curves[x]) for x in xs], marker="o", ms=3, color=colors[v])
        ax.axhline(100, color="k", lw=0.8, ls="--")
        ax.set_title(g)
        ax.set_xlabel("env steps")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("% of teacher score")
    handles = [plt.Line2D([], [], color=colors[v], marker="o", ms=3) for v in order]
    labels = [v.replace("-tau", " tau ") for v in order]
    fig.legend(handles, labels, loc="upper center", ncol=len(labels), fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def online_plot(runs: list[list[dict[str, float]]], path: Path) -> Path:
    """Teacher and student score against teacher env steps: each seed thin, their mean bold.

    ``runs``: per seed, the rows of its ``online.csv`` (``teacher_env_steps``, ``teacher_score``,
    ``student_score``).
    """
    fig, ax = plt.subplots(figsize=(6.5, 4))
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


def study_curves(
    curves: dict[str, dict[str, list[dict[int, float]]]], games: list[str], path: Path, title: str
) -> Path:
    """Learning curves: percent of the reference score against updates, one panel per game, one
    line per variant (mean over seeds, at the updates every seed has).

    ``curves``: ``variant -> game -> [per seed: {updates: percent}]``, variants in legend order.
    """
    width = max(3.2 * len(games), 5.0)  # one panel alone still has room for its title and legend
    fig, axes = plt.subplots(1, len(games), figsize=(width, 3.4), squeeze=False)
    for variant, per_game in curves.items():
        for ax, game in zip(axes[0], games):
            runs = per_game.get(game)
            if not runs:
                continue
            steps = sorted(set.intersection(*(set(c) for c in runs)))
            ax.plot(steps, [np.mean([c[x] for c in runs]) for x in steps], lw=1.2, label=variant)
    from matplotlib.ticker import FuncFormatter

    for ax, game in zip(axes[0], games):
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x / 1000:.0f}k"))
        ax.axhline(100, color="k", lw=0.8, ls="--")
        ax.set_title(game, fontsize=9)
        ax.set_xlabel("updates", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0][0].set_ylabel("% of reference score")
    axes[0][-1].legend(fontsize=6, loc="best")
    fig.suptitle(textwrap.fill(title, width=int(15 * width)), fontsize=9)  # ~15 characters an inch
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
