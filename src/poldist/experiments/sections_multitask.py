"""RESULTS.md section 3: one multi-task student for five MinAtar games (``scripts/multitask_minatar.py``).

Reads ``<results>/multitask/seed*/results.json`` (the main setting, one file per seed) and
``<results>/multitask/explore-*/results.json`` (explorations: one seed, another setting). Each
results file records its students' settings (``students``: per method its ``tau``,
``head_hidden`` and ``student`` size); explorations are found by those settings, not by their
folder names.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from poldist.evaluation import bootstrap_ci
from poldist.experiments.report_stats import (
    GEO_FLOOR,
    MULTITASK_SIZE,
    ReportContext,
    aggregate_cell,
    aggregate_intervals,
    group_intervals,
    multitask_geomeans,
    multitask_recipe_records,
    reference_returns_of,
    rescore_multitask,
    target_verdict,
)
from poldist.tables import md_table

PAPER_MULTITASK = {"multi_dist_kl": 116.9, "multi_dist_nll": 105.1, "multi_dqn": 83.5}  # 3 games
MULTITASK_SETUP = (
    "One student with the paper's multi-task network: the teacher's trunk (one 16-channel conv, 128 "
    "units) and per game a 128-unit hidden layer and an output layer (inputs zero-padded to 10 "
    "channels), distilled from the five shipped teachers (300,000 updates of batch "
    "256 in all, round robin over games, RMSProp lr 0.001, 500,000-transition memory per game), "
    "against the multi-task Double DQN: the same multi-head network trained on all five games "
    "jointly for the teachers' total env steps (19M). Scores over 100 episodes at epsilon 0.05."
)


# what older results left out
DEFAULT_SETTING = {"tau": 0.01, "head_hidden": 0, "student": "teacher", "recipe": "", "tau_gap": 0.0}


def student_setting(res: dict[str, Any], method: str) -> dict[str, Any] | None:
    """The recorded setting (``tau``, ``head_hidden``, ``student``) of ``method`` in one
    ``results.json``, with :data:`DEFAULT_SETTING` for what it does not record; ``None`` if the
    file records no such method."""
    recorded = res.get("students", {}).get(method)
    return None if recorded is None else {k: recorded.get(k, v) for k, v in DEFAULT_SETTING.items()}


def main_setting(folder: Path) -> dict[str, Any]:
    """The main setting's KL student (``seed*/results.json`` in ``folder``, the first seed that
    records it), else :data:`DEFAULT_SETTING`."""
    for path in sorted(folder.glob("seed*/results.json")):
        setting = student_setting(json.loads(path.read_text()), "multi_dist_kl")
        if setting is not None:
            return setting
    return dict(DEFAULT_SETTING)


def find_exploration(folder: Path, want: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The first exploration (``explore-*/results.json`` in ``folder``, by name) that records every
    method of ``want`` with the settings given there (``method -> {setting: value}``), or ``None``."""
    for path in sorted(folder.glob("explore-*/results.json")):
        res = json.loads(path.read_text())
        settings = {m: student_setting(res, m) for m in want}
        if all(s is not None and all(s[k] == v for k, v in want[m].items()) for m, s in settings.items()):
            return res
    return None


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
    rows.append(["**IQM**", ""] + [aggregate_cell(agg.get(m, {}).get("iqm")) for m in methods])
    rows.append(["**geometric mean**", ""] + [aggregate_cell(agg.get(m, {}).get("geomean")) for m in methods])
    rows.append(["seeds", ""] + [str(len(matrices[m])) for m in methods])
    rows.append(["paper (Atari, 3 games)", ""] + [f"{PAPER_MULTITASK[m]}%" for m in methods])
    headers = ["game", "teachers"] + [m.replace("_", "-") + ": score (% of teacher)" for m in methods]
    return md_table(headers, rows), agg


def _multitask_checks(agg: dict[str, dict[str, Any]], losses: dict[str, Any] | None, folder: Path) -> str:
    """What we checked where the multi-task shape differs from the paper's (students below their
    teachers, NLL not clearly above the DQN): multi-task against single-task distillation with the
    same loss and tau (section 1), the seed spread, and two explorations in ``folder`` found by
    their recorded settings (:func:`find_exploration`): the main KL student at tau 0.1, and the
    main setting with linear heads. Every number comes from ``agg`` (the multi-task aggregates),
    ``losses`` (section 1's data) and the explorations' results.json, so the text follows the
    results."""
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
    main = main_setting(folder)
    # a softer target on the same network: the main KL student's setting at tau 0.1
    soft = find_exploration(folder, {"multi_dist_kl": {**main, "tau": 0.1}})
    if soft is not None and "multi_dist_kl" in agg:
        geo = multitask_geomeans(soft)["multi_dist_kl"]
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
    # the main setting with linear heads (no per-game layer), for the KL student and the DQN
    linear = find_exploration(
        folder, {"multi_dist_kl": {**main, "head_hidden": 0}, "multi_dqn": {"head_hidden": 0}}
    )
    if linear is not None:
        geo = multitask_geomeans(linear)
        if {"multi_dist_kl", "multi_dqn"} <= geo.keys() and {"multi_dist_kl", "multi_dqn"} <= agg.keys():
            lines.append(
                f"With linear heads (one seed, explorations below) the DQN reached {geo['multi_dqn']:.1f}% "
                f"against the KL student's {geo['multi_dist_kl']:.1f}%: the per-game layer took the "
                f"DQN from {geo['multi_dqn']:.1f}% to {agg['multi_dqn']['geomean'][0]:.1f}% and the KL "
                f"student from {geo['multi_dist_kl']:.1f}% to {agg['multi_dist_kl']['geomean'][0]:.1f}%."
            )
    return " ".join(lines)


def _multitask_target(agg: dict[str, dict[str, Any]]) -> str:
    """Issue 18's target, as the intervals say it (:func:`target_verdict`): students at or above
    100% of the teachers, and above the multi-task DQN with the intervals apart."""
    dqn = agg.get("multi_dqn", {}).get("geomean")
    lines = []
    for m in ("multi_dist_kl", "multi_dist_nll"):
        if m not in agg:
            continue
        geo, lo, hi = agg[m]["geomean"]
        vs = ""
        if dqn is not None:
            if lo > dqn[2]:
                how = "above it, the intervals apart"
            elif geo > dqn[0]:
                how = "above it by the point estimate, the intervals overlapping"
            else:
                how = "not above it"
            vs = f"; against the multi-task DQN's {dqn[0]:.1f}% [{dqn[1]:.1f}, {dqn[2]:.1f}]: {how}"
        lines.append(
            f"{m.replace('_', '-')} {geo:.1f}% [{lo:.1f}, {hi:.1f}]: {target_verdict(geo, lo, hi, 100.0)}{vs}"
        )
    return (
        "Target (issue 18: the student at or above 100% of the teachers' geometric mean, and above the "
        "multi-task DQN with the intervals apart): " + "; ".join(lines) + "."
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
            recorded = student_setting(res, m) or DEFAULT_SETTING
            tau, hh, size = recorded["tau"], recorded["head_hidden"], recorded["student"]
            size_flag = f" --student {size}" if size != "teacher" else ""
            # newer results record their command; older ones (students only) are rebuilt from settings
            cmd = res.get("command") or (
                f"python scripts/multitask_minatar.py --skip-dqn --losses {m.split('_')[-1]} --tau {tau:g}"
                f" --head-hidden {hh}{size_flag} --out results/multitask/{path.parent.name}"
            )
            layer = f"{hh}-unit per-game layer" if hh else "linear heads"
            if recorded["tau_gap"]:
                temperature = f"tau {recorded['tau_gap']:g}x each teacher's median top-2 gap"
            else:
                temperature = f"tau {tau:g}"
            if recorded["recipe"]:
                temperature = f"the {recorded['recipe']} recipe, {temperature}"
            setting = f"{m}, {layer}" if m == "multi_dqn" else f"{m}, {temperature}, {layer}"
            if size != "teacher":
                setting += f", student {size} ({student['params']:,} params)"
            lines.append(f"- Exploration ({setting}): **{geo:.1f}%** geometric mean ({games}); `{cmd}`")
    return lines + ([""] if lines else [])


FRESH_COMMAND = (
    "python scripts/multitask_minatar.py --skip-dqn --head-hidden 128 --env-seeds disjoint "
    "--final-episodes 200 --seed S --out results/multitask/fresh-seedS"
)
FRESH_VARIANTS = {"multi_dist_kl": "multi-dist-kl", "multi_dist_nll": "multi-dist-nll"}


def fresh_multitask_lines(folder: Path, dqn: dict[str, Any] | None) -> list[str]:
    """The main setting's students under the fresh protocol (``<folder>/fresh-seed*``: disjoint env
    seeds, 200 final episodes), per game and geometric mean with two-stage intervals, against the
    multi-task DQN's legacy aggregates ``dqn`` (``{"geomean": [point, low, high], "per_game":
    {game: percent}}``, rescored against the reference scores), or the command that makes them."""
    records = multitask_recipe_records(folder, "fresh-seed*", FRESH_VARIANTS)
    if not records:
        return [
            f"Not yet run under the fresh protocol (each seed on env seeds of its own, 200 final "
            f"episodes, two-stage intervals): `{FRESH_COMMAND}` for S = 0, 1, 2. The tables below are "
            "legacy.",
            "",
        ]
    refs = reference_returns_of(records)
    groups = group_intervals(records, refs)
    games = sorted(refs)
    variants = [v for v in FRESH_VARIANTS.values() if (v, MULTITASK_SIZE) in groups]
    rows = []
    for game in games:
        row = [game, f"{np.mean(refs[game]):.2f}"]
        for v in variants:
            iv = groups[(v, MULTITASK_SIZE)]["per_game"].get(game)
            row.append("–" if iv is None else f"{iv.mean:.1f} [{iv.ci_low:.1f}, {iv.ci_high:.1f}]")
        row.append("–" if dqn is None else f"{dqn['per_game'].get(game, float('nan')):.1f}")
        rows.append(row)
    geo_row = ["**geometric mean**", ""]
    for v in variants:
        geo = groups[(v, MULTITASK_SIZE)]["geomean"]
        geo_row.append("–" if geo is None else f"**{geo.mean:.1f}** [{geo.ci_low:.1f}, {geo.ci_high:.1f}]")
    geo_row.append("–" if dqn is None else aggregate_cell(dqn["geomean"]))
    rows.append(geo_row)
    rows.append(
        ["seeds", ""]
        + [", ".join(map(str, groups[(v, MULTITASK_SIZE)]["seeds"])) for v in variants]
        + ["legacy"]
    )
    headers = ["game", "teacher reference"] + variants + ["multi-dqn (legacy, rescored)"]
    lines = [
        "Fresh protocol (each seed on env seeds of its own, 200 final episodes; students: mean [95% "
        "interval] of the two-stage bootstrap over seeds, episodes and the reference episodes; the "
        "multi-task DQN: its legacy runs rescored, rliable's interval over seeds). Command, per seed "
        f"S: `{FRESH_COMMAND}`.",
        "",
        md_table(headers, rows),
        "",
    ]
    verdicts = []
    for v in variants:
        geo = groups[(v, MULTITASK_SIZE)]["geomean"]
        if geo is None or dqn is None:
            continue
        apart = geo.ci_low > dqn["geomean"][2]
        verdict = target_verdict(geo.mean, geo.ci_low, geo.ci_high, 100)
        verdicts.append(
            f"{v} {geo.mean:.1f}% [{geo.ci_low:.1f}, {geo.ci_high:.1f}] against the teachers' 100: "
            f"{verdict}; against the DQN's {dqn['geomean'][0]:.1f}% "
            f"({'above it, the intervals apart' if apart else 'intervals overlapping'})"
        )
    if verdicts:
        lines += [
            "Target (>= 100% of the teachers, above the DQN with intervals apart): "
            + "; ".join(verdicts)
            + ".",
            "",
        ]
    return lines + ["Before the yardstick, for the record (legacy protocol):", ""]


def multitask_lines(ctx: ReportContext) -> list[str]:
    """Section 3: the setup, the fresh-protocol table (or the command that makes it), then the legacy
    table over seeds, the target, what we checked, the explorations."""
    folder = ctx.results / "multitask"
    mt = sorted(folder.glob("seed*/results.json"))
    if not mt:
        return [
            MULTITASK_SETUP,
            "",
            "No results of this setting yet: `python scripts/multitask_minatar.py --seed S "
            "--out results/multitask/seedS`.",
            "",
            *_multitask_explorations(folder),
        ]
    seeds = ",".join(p.parent.name.removeprefix("seed") for p in mt)
    table, agg = multitask_section(mt)
    curves = sorted(mt[0].parent.glob("*/curve.png"))
    return [
        MULTITASK_SETUP,
        "",
        *fresh_multitask_lines(folder, agg.get("multi_dqn")),
        table,
        "",
        _multitask_target(agg),
        "",
        _multitask_checks(agg, ctx.shared.get("losses"), folder),
        "",
        *(f"![{c.parent.name}]({ctx.link(c)})" for c in curves),
        *([""] if curves else []),
        *_multitask_explorations(folder),
        "Command, per seed S: "
        f"`python scripts/multitask_minatar.py --seed S --out results/multitask/seedS` (here: {seeds})",
        "",
    ]
