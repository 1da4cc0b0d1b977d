"""RESULTS.md sections 1, 2 and 5: the single-game experiments of ``poldist reproduce``.

Losses (section 1), compression (section 2), who acts and what is matched (section 5) and
kickstarting (its subsection, with ``scripts/kickstart_check.py``'s diagnosis): per experiment a
table of games x variants of percent of teacher with aggregates, a bar plot, and text whose every
comparison is computed from the records, so it stays true as seeds are added.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from poldist.errors import PoldistError
from poldist.evaluation import PercentInterval, percent_intervals
from poldist.experiments.report_stats import (
    ReportContext,
    aggregate_cell,
    aggregate_intervals,
    cell_evals,
    evals_by_step,
    experiment_records,
    floored_geomean,
    seed_cell,
    seed_matrix,
)
from poldist.plotting import bar_plot, compression_curve, kickstart_curves
from poldist.tables import md_table
from poldist.zoo import reference_returns

# The paper's Atari figures next to ours (PAPER.md); None where the paper gives a shape, not a number.
PAPER_LOSSES = (
    "Atari, 4 games, teacher-size students: KL (tau 0.01) best, at or above the teacher; "
    "NLL below it; MSE clearly worst (the paper's ordering: KL > NLL > MSE)."
)
PAPER_COMPRESSION = {"teacher": None, "net1": 108.3, "net2": 101.7, "net3": 83.9}  # 10 games, geo mean
LOSS_ORDER = ("nll", "mse", "kl-tau1", "kl-tau0.1", "kl-tau0.01")
SIZE_ORDER = ("teacher", "net1", "net2", "net3")
CONTROL_ORDER = tuple(
    f"{loss}-tau0.01{suffix}" for loss in ("kl", "erd") for suffix in ("", "+student", "+mixed")
)
KICK_ORDER = ("dqn-lr0.0005", "kickstart-mse-lr0.0005", "dqn", "kickstart-kl-tau0.01", "kl-tau0.01")
KICK_PAIRS = (("kickstart-mse-lr0.0005", "dqn-lr0.0005"), ("kickstart-kl-tau0.01", "dqn"))  # same lr


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
    """Table (games x variants of ``key``) of percent of teacher, aggregates, and a bar plot.

    Where every run recorded its episode returns (the fresh protocol), per-game cells and the
    geometric mean carry the two-stage interval (:func:`two_stage_intervals`); otherwise per-game
    cells are percentile intervals over seeds and the geometric mean rliable's. IQM: rliable's.
    """
    games = sorted({r["game"] for r in records})
    variants = [v for v in order if any(r[key] == v for r in records)]
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        groups[r[key]].append(r)
    matrices, seeds = {}, {}
    for v in variants:
        matrices[v], seeds[v] = seed_matrix(groups[v], games)
    agg = aggregate_intervals(matrices)
    two_stage = {v: two_stage_intervals(groups[v], games) for v in variants}
    for v, iv in two_stage.items():
        if iv is not None:  # the ranking and the notes read agg: give them the two-stage interval
            agg.setdefault(v, {})["geomean"] = [iv[1].mean, iv[1].ci_low, iv[1].ci_high]
    rows = []
    for g in games:
        row = [g, _fmt_score(records, g)]
        for v in variants:
            if two_stage[v] is not None:
                cell = two_stage[v][0][g]
                row.append(f"{cell.mean:.1f} [{cell.ci_low:.1f}, {cell.ci_high:.1f}]")
            else:
                row.append(seed_cell([r["percent_of_teacher"] for r in groups[v] if r["game"] == g]))
        rows.append(row)
    rows.append(["**IQM**", ""] + [aggregate_cell(agg.get(v, {}).get("iqm")) for v in variants])
    rows.append(
        ["**geometric mean**", ""] + [aggregate_cell(agg.get(v, {}).get("geomean")) for v in variants]
    )
    # aggregates use the seeds that every game has: say how many, and over how many games
    rows.append(
        ["runs in aggregates", ""]
        + [f"{len(seeds[v])} seed{'s' * (len(seeds[v]) != 1)} x {len(games)} games" for v in variants]
    )
    headers = ["game", "teacher score"] + [_label(key, v, records) for v in variants]
    plot = bar_plot(games, variants, groups, plots / f"{title}.png", title)
    per_game = {
        v: {g: float(np.mean([r["percent_of_teacher"] for r in groups[v] if r["game"] == g])) for g in games}
        for v in variants
    }
    data = {
        "variants": variants,
        "games": games,
        "aggregates": agg,
        "plot": plot,
        "per_game": per_game,
        "two_stage": all(iv is not None for iv in two_stage.values()),
    }
    return md_table(headers, rows), data


def two_stage_intervals(
    records: list[dict[str, Any]], games: list[str]
) -> tuple[dict[str, PercentInterval], PercentInterval] | None:
    """Percent of teacher per game and its geometric mean over ``games``, with the two-stage
    bootstrap's intervals (seeds, then episodes within each, and the teacher's reference episodes:
    :func:`poldist.evaluation.percent_intervals`), or ``None`` unless every game has runs that
    recorded their episode returns and a teacher with a reference score."""
    students: dict[str, list[list[float]]] = defaultdict(list)
    references: dict[str, list[float]] = {}
    for r in sorted(records, key=lambda r: r["seed"]):
        if not r.get("student_returns"):
            return None
        students[r["game"]].append(r["student_returns"])
        if r["game"] not in references:
            try:
                references[r["game"]] = reference_returns(r["teacher"])
            except PoldistError:
                return None
    if sorted(students) != sorted(games):
        return None
    return percent_intervals(dict(students), references)


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


def _short_budget_note(raw: list[dict[str, Any]], games: list[str], protocol: str = "") -> str:
    """Compression at the standard budget under ``protocol``, where runs exist: how much the longer
    budget matters."""
    short = [
        r
        for r in raw
        if not r.get("budget")
        and r["variant"] == "kl-tau0.01"
        and r.get("method", "distill") == "distill"
        and r.get("protocol", "") == protocol
    ]
    parts = []
    for size in SIZE_ORDER:
        matrix, seeds = seed_matrix([r for r in short if r["student"] == size], games)
        if seeds:
            parts.append(f"{size} {floored_geomean(matrix):.1f}% ({len(seeds)} seed{'s' * (len(seeds) > 1)})")
    if not parts:
        return ""
    r = next(r for r in short)
    return (
        f"The same students at the losses' budget ({r['updates']:,} updates; raw files without "
        f"`__40k`), geometric mean of percent of teacher: {', '.join(parts)}. The difference from "
        "the table above is what the longer budget buys: at 10k updates the small students' curves "
        "were still rising, so a short budget measures learning speed as much as capacity."
    )


def _fmt_score(records: list[dict[str, Any]], game: str) -> str:
    r = next(r for r in records if r["game"] == game)
    card = r.get("card_score", r["teacher_score"])
    return f"{r['teacher_score']:.2f} (card {card:.2f})" if card != r["teacher_score"] else f"{card:.2f}"


def _label(key: str, v: str, records: list[dict[str, Any]]) -> str:
    if key == "student":
        r = next(r for r in records if r["student"] == v)
        return f"{v} ({100 * r['compression']:.0f}%, {r['student_params']:,} params)"
    return v.replace("-tau", " tau ")


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
                    r["seed"]: cell_evals(r, raw_dir) for r in records if r["game"] == g and r["variant"] == v
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
        r["by_step"] = evals_by_step(r["evals"])
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
                by_step = cell_evals(r, raw_dir)
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
            md_table(
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


def _missing(experiment: str) -> list[str]:
    return [f"No raw results yet: `poldist reproduce {experiment} --seeds 0,1,2`.", ""]


def _protocol_records(
    ctx: ReportContext, experiment: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(main, legacy)`` records of ``experiment``: the fresh protocol's runs are the main table
    once any exist, and the legacy runs then follow as a record of how it was first measured."""
    fresh = experiment_records(ctx.raw, experiment, "fresh")
    legacy = experiment_records(ctx.raw, experiment)
    return (fresh, legacy) if fresh else (legacy, [])


def _protocol_line(records: list[dict[str, Any]], experiment: str) -> str:
    """How the main table was measured, and the command that completes or redoes it."""
    seeds = ", ".join(str(s) for s in sorted({r["seed"] for r in records}))
    if records[0].get("protocol") == "fresh":
        return (
            f"Fresh protocol (seeds {seeds}): every seed on env seeds of its own; per-game cells and the "
            "geometric mean: mean [95% interval] of the two-stage bootstrap (seeds, then episodes within "
            "each, and the teacher's reference episodes); IQM: rliable's bootstrap over seeds. Command: "
            f"`poldist reproduce {experiment} --seeds 0,1,2` (`--protocol fresh`, the default)."
        )
    return (
        f"Legacy protocol (seeds {seeds}; run before issue 18's yardstick): neighbouring seeds share 7 "
        "of their 8 env seeds, and per-game cells are percentile intervals over the seeds alone. "
        f"Command: `poldist reproduce {experiment} --seeds 0,1,2 --protocol legacy`; under the fresh "
        f"protocol: `poldist reproduce {experiment} --seeds 0,1,2`."
    )


def _legacy_lines(
    legacy: list[dict[str, Any]], key: str, order: tuple[str, ...], ctx: ReportContext, title: str
) -> list[str]:
    """The legacy table under a fresh one: how the experiment was first measured."""
    if not legacy:
        return []
    table, _ = single_game_section(legacy, key, order, ctx.plots, f"{title}_legacy")
    return ["Before the yardstick, for the record: " + _protocol_line(legacy, title), "", table, ""]


def losses_lines(ctx: ReportContext) -> list[str]:
    """Section 1: NLL, MSE and KL at three temperatures on teacher-size students. Leaves its
    numbers in ``ctx.shared["losses"]`` for the multi-task section."""
    losses, legacy = _protocol_records(ctx, "losses")
    if not losses:
        return _missing("losses")
    table, data = single_game_section(losses, "variant", LOSS_ORDER, ctx.plots, "losses")
    ctx.shared["losses"] = data
    return [
        _budget_line(losses),
        "",
        _protocol_line(losses, "losses"),
        "",
        table,
        "",
        f"![losses]({ctx.link(data['plot'])})",
        "",
        f"Paper: {PAPER_LOSSES}",
        "",
        _ranking("Here, by geometric mean", data),
        "",
        _gaps_note(ctx.results / "teacher_gaps.json", losses, data),
        "",
        *_legacy_lines(legacy, "variant", LOSS_ORDER, ctx, "losses"),
    ]


def compression_lines(ctx: ReportContext) -> list[str]:
    """Section 2: KL students at 100/25/7/4% of the teacher, against the paper's figures."""
    comp, legacy = _protocol_records(ctx, "compression")
    if not comp:
        return _missing("compression")
    table, data = single_game_section(comp, "student", SIZE_ORDER, ctx.plots, "compression")
    curve = compression_curve(comp, data, ctx.plots / "compression_curve.png")
    paper = ", ".join(f"{k} {v}%" for k, v in PAPER_COMPRESSION.items() if v is not None)
    return [
        _budget_line(comp),
        "",
        _protocol_line(comp, "compression"),
        "",
        table,
        "",
        f"Paper (Atari, 10 games, geometric mean of percent of teacher): {paper}.",
        "",
        "These are the paper's settings (the teacher acting, KL at tau 0.01). The MinAtar recipe "
        "that section 5b chose on the tuning seed, `poldist distill`'s default for MinAtar "
        "teachers, at the same four parameter budgets (net2 and net3 with the recipe's own trunks) "
        "on fresh seeds: section 5c.",
        "",
        _short_budget_note(ctx.raw, data["games"], comp[0].get("protocol", "")),
        "",
        f"![compression]({ctx.link(data['plot'])}) ![compression curve]({ctx.link(curve)})",
        "",
        *_legacy_lines(legacy, "student", SIZE_ORDER, ctx, "compression"),
    ]


def control_lines(ctx: ReportContext) -> list[str]:
    """Section 5: teacher-, student-driven and mixed control, KL and entropy-regularised."""
    ctl = experiment_records(ctx.raw, "control")
    if not any(r["control"] != "teacher" or r["loss"] == "erd" for r in ctl):
        return _missing("control")
    table, data = single_game_section(ctl, "variant", CONTROL_ORDER, ctx.plots, "control")
    return [
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
        f"![control]({ctx.link(data['plot'])})",
        "",
        _ranking("What wins here, by geometric mean", data),
        "",
        "Command: `poldist reproduce control --seeds 0,1,2`",
        "",
    ]


def kickstart_lines(ctx: ReportContext) -> list[str]:
    """Section 5's kickstarting: DQN from scratch and kickstarted DQN against distillation, and
    the diagnosis of ``<results>/kickstart-check``."""
    kick = experiment_records(ctx.raw, "kickstart")
    if not any(r["method"] != "distill" for r in kick):
        return _missing("kickstart")
    table, data = single_game_section(kick, "variant", KICK_ORDER, ctx.plots, "kickstart")
    curves = kickstart_curves(
        kick, lambda r: cell_evals(r, ctx.raw_dir), ctx.plots / "kickstart_curves.png", KICK_ORDER
    )
    env_steps = sorted({r["transitions"] for r in kick if r["method"] != "distill"})
    lrs = sorted({f"{r['variant']} {r['config']['lr']:g}" for r in kick if r["method"] != "distill"})
    ahead = kickstart_ahead(kick, ctx.raw_dir)
    return [
        f"net1 students (25% of the teacher): Double DQN from scratch and kickstarted Double DQN "
        f"({', '.join(f'{s:,}' for s in env_steps)} env steps; the distillation term's weight falls "
        f"from 1 to 0 over the first half; Adam learning rates: {', '.join(lrs)}) against plain "
        f"distillation (its own budget of teacher transitions, sections 1-2). `kickstart-mse` "
        f"matches the teacher's Q-values; `kickstart-kl` (the first design) "
        f"its softmax(Q / 0.01). Compare each kickstart variant with the DQN at its own learning rate.",
        "",
        table,
        "",
        f"![kickstart]({ctx.link(data['plot'])})",
        "",
        f"![kickstart over env steps]({ctx.link(curves)})",
        "",
        _ranking("What wins here, by geometric mean", data),
        "",
        *([ahead, ""] if ahead else []),
        "Command: `poldist reproduce kickstart --seeds 0,1,2`",
        "",
        *kickstart_check_section(ctx.results / "kickstart-check", ctx.raw, ctx.raw_dir),
    ]
