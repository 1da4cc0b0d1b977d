"""Plots people would rather look at than read: learning curves against the teacher's level."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

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
) -> Path:
    """Student score (mean and 95% CI band) against ``x``, one panel per task.

    Args:
        evals_csv: an :class:`~poldist.runs.EvalLog` file.
        out_png: where to write the figure.
        teacher_scores: per task, drawn as a dashed horizontal line.
        task_names: panel titles.
        x: the column for the horizontal axis (``updates`` or ``env_steps``).
        label: the legend name of the curve (e.g. ``multi-task DQN``).
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
        ax.set_xlabel(x.replace("_", " "))
        ax.set_ylabel("score (epsilon 0.05)")
        ax.set_title(task_names[t] if task_names and t < len(task_names) else title)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
    fig.tight_layout()
    out_png = Path(out_png)
    fig.savefig(out_png, dpi=120)
    plt.close(fig)
    return out_png
