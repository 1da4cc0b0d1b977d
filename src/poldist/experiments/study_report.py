"""RESULTS.md section 5b: what holds MinAtar students back (``scripts/study_minatar.py``).

Reads ``<results>/study/raw/*.json`` (one record per run: variant, student size, game, seed, every
final episode's return, agreement with the teacher by top-2 gap) and the ``.evals.csv`` learning
curve beside each. Percent of teacher divides by the teacher's reference score (1,000 episodes on
env seeds no run uses; :func:`poldist.zoo.reference_score`), with the two-stage bootstrap of
:func:`poldist.evaluation.percent_intervals`: seeds, then episodes within each, and the teacher's
reference episodes, so one seed still gets an interval from its episodes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from poldist.experiments.cells import curve_path
from poldist.experiments.report_stats import (
    MULTITASK_SIZE,
    ReportContext,
    group_intervals,
    multitask_recipe_records,
    reference_returns_of,
    target_verdict,
)
from poldist.plotting import study_curves
from poldist.runs import EvalLog

GAME_ORDER = ("asterix", "breakout", "freeway", "seaquest", "space_invaders")


def load_study(raw_dir: Path) -> list[dict[str, Any]]:
    """Every study record in ``raw_dir``, sorted by file name, each with ``curve_file``: the path of
    its learning curve (which may be missing)."""
    return [
        {**json.loads(p.read_text()), "curve_file": curve_path(p)}
        for p in sorted(Path(raw_dir).glob("*.json"))
    ]


def minutes_cells(wall: float, cpu: float | None) -> list[str]:
    """The wall and CPU minutes-per-run cells of a table row, from mean seconds (CPU: None, "–")."""
    return [f"{wall / 60:.1f}", "–" if cpu is None else f"{cpu / 60:.1f}"]


def _pct(iv: Any) -> str:
    return "–" if iv is None else f"{iv.mean:.1f} [{iv.ci_low:.0f}, {iv.ci_high:.0f}]"


def study_table(groups: dict[tuple[str, str], dict[str, Any]], games: list[str]) -> str:
    """Markdown: one row per (variant, size), percent of teacher per game and geometric mean."""
    headers = ["variant", "change", "student", *games, "geometric mean", "seeds", "agreement", *MINUTES]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    base = groups.get(("base", "net2"))
    for (variant, size), g in sorted(groups.items(), key=lambda kv: _order(kv[0])):
        change = change_of(g["records"][0])
        cells = [_pct(g["per_game"].get(game)) for game in games]
        geo = g["geomean"]
        geo_cell = "–" if geo is None else f"**{geo.mean:.1f}** [{geo.ci_low:.1f}, {geo.ci_high:.1f}]"
        if base is not None and geo is not None and base["geomean"] is not None and g is not base:
            geo_cell += f" ({geo.mean - base['geomean'].mean:+.1f})"
        row = [variant, change, f"{size} ({g['records'][0]['student_params']:,})", *cells, geo_cell]
        row += [", ".join(map(str, g["seeds"])), f"{g['agreement']:.3f}", *minutes_cells(g["wall"], g["cpu"])]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def _game_rank(game: str) -> tuple[int, str]:
    return (GAME_ORDER.index(game) if game in GAME_ORDER else len(GAME_ORDER), game)


def _order(key: tuple[str, str]) -> tuple[int, str, str]:
    variant, size = key
    return (0 if variant == "base" else 1, size, variant)


def near_tie_table(groups: dict[tuple[str, str], dict[str, Any]], variant: str = "base") -> str:
    """Markdown: per game, the share of states in each top-2-gap bin and the student's agreement there
    (mean over the ``variant`` runs of every size), and the mean Q regret."""
    recs = [r for (v, _), g in groups.items() if v == variant for r in g["records"]]
    if not recs:
        return ""
    edges = recs[0]["gap_edges"]
    bins = [f"{edges[i]}-{edges[i + 1]}" for i in range(len(edges) - 1)]
    headers = ["game", "student", *[f"gap {b}: share / agreement" for b in bins], "agreement", "Q regret"]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for r in sorted(recs, key=lambda r: (_game_rank(r["game"]), r["size"])):
        cells = [
            f"{s:.2f} / {'–' if a is None else f'{a:.2f}'}"
            for s, a in zip(r["gap_shares"], r["agreement_by_gap"])
        ]
        lines.append(
            "| "
            + " | ".join([r["game"], r["size"], *cells, f"{r['agreement']:.3f}", f"{r['regret']:.4f}"])
            + " |"
        )
    return "\n".join(lines)


def study_curve_data(
    groups: dict[tuple[str, str], dict[str, Any]],
    references: dict[str, list[float]],
    size: str = "net2",
) -> dict[str, dict[str, list[dict[int, float]]]]:
    """``variant -> game -> [per seed: {updates: percent of the reference score}]`` of student
    ``size``, from each run's ``.evals.csv`` (``curve_file``); variants in the table's order."""
    out: dict[str, dict[str, list[dict[int, float]]]] = {}
    for (variant, s), g in sorted(groups.items(), key=lambda kv: _order(kv[0])):
        if s != size:
            continue
        per_game = out.setdefault(variant, {})
        for game in [g for g in GAME_ORDER if g in references]:
            ref = float(np.mean(references[game]))
            curves = []
            for r in g["records"]:
                if r["game"] != game:
                    continue
                if r["curve_file"].exists():
                    rows = EvalLog.read(r["curve_file"])
                    curves.append({int(row["updates"]): 100 * row["score"] / ref for row in rows})
            if curves:
                per_game[game] = curves
    return out


TUNING_SEED = 0  # the first tuning seed (Atari's only)
# MinAtar's tuning set: seed 0 chose the recipe; seed 4 checks a change to it on a second seed
TUNING_SEEDS = (0, 4)
SIZE_RANK = (
    "teacher",
    "net1",
    "net1-c16",
    "net2",
    "net2-c8",
    "net2-c16",
    "net2-s2",
    "net2-2c",
    "net2-s2k4",
    "net2-2ck4",
    "net3",
    "net3-c8",
    "net3-c16",
    "net3-s2",
    "net3-2c",
    "net3-s2k4",
    "net3-2ck4",
    MULTITASK_SIZE,
)
MINUTES = ["wall min/run", "CPU min/run"]
# What two variants are now that the recipe steps 16 envs (issue 22), not the 8 it had when their
# cells ran: the raw files keep the text they ran under, the tables say what each is today
CHANGE_NOW = {
    "recipe": "the minatar recipe at 8 envs (poldist distill's MinAtar default until issue 22)",
    "recipe-envs16": "the minatar recipe, 16 envs instead of 8 (poldist distill's MinAtar default)",
}


def change_of(record: dict[str, Any]) -> str:
    """What ``record``'s variant changes (its ``change``, or :data:`CHANGE_NOW`'s for the variant)."""
    return CHANGE_NOW.get(record.get("variant", ""), record.get("change", ""))


# The issue 18 targets: geometric mean of percent of the reference score over the five games
RECIPE_TARGETS = {"teacher": 100.0, "net1": 100.0, "net2": 100.0, "net3": 95.0, MULTITASK_SIZE: 100.0}


def _size_family(size: str) -> str:
    """``net2-c8`` -> ``net2``: the compression level a study size belongs to."""
    return size if size == MULTITASK_SIZE else size.split("-")[0]


def recipe_table(groups: dict[tuple[str, str], dict[str, Any]], games: list[str]) -> str:
    """Markdown: one row per student size of the fresh-seed runs, percent of the reference score per
    game, the geometric mean, and the issue's target for that size."""
    headers = ["variant", "student", *games, "geometric mean", "target", "seeds", "agreement", *MINUTES]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    rank = {s: i for i, s in enumerate(SIZE_RANK)}
    for (variant, size), g in sorted(groups.items(), key=lambda kv: (rank.get(kv[0][1], 99), kv[0])):
        geo = g["geomean"]
        target = RECIPE_TARGETS.get(_size_family(size))
        row = [
            variant,
            f"{size} ({g['records'][0]['student_params']:,})",
            *[_pct(g["per_game"].get(game)) for game in games],
            "–" if geo is None else f"**{geo.mean:.1f}** [{geo.ci_low:.1f}, {geo.ci_high:.1f}]",
            "–" if target is None else f"{target:g}",
            ", ".join(str(s) for s in g["seeds"]),
            f"{g['agreement']:.3f}",
            *minutes_cells(g["wall"], g["cpu"]),
        ]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def _other_variants_note(records: list[dict[str, Any]]) -> str:
    """The fresh-seed rows of variants other than ``recipe``, and what each changes."""
    changes = {r["variant"]: change_of(r) for r in records if r.get("variant", "recipe") != "recipe"}
    if not changes:
        return ""
    return " Other rows: " + "; ".join(f"`{v}`, {c}" for v, c in sorted(changes.items())) + "."


def recipe_lines(ctx: ReportContext) -> list[str]:
    """Section 5c: the recipe chosen on the tuning seeds, run on seeds that played no part in it."""
    single = [r for r in load_study(ctx.results / "study" / "raw") if r["seed"] not in TUNING_SEEDS]
    # the multi-task recipe student, at 8 envs per game and at the recipe's 16 (issue 22)
    multi = multitask_recipe_records(ctx.results / "multitask") + multitask_recipe_records(
        ctx.results / "multitask", "recipe-envs16-seed*", {"multi_dist_kl": "recipe-envs16"}
    )
    records = single + multi
    if not records:
        return [
            "No fresh-seed runs yet: `python scripts/study_minatar.py --variants recipe --seeds 1,2,3`.",
            "",
        ]
    refs = reference_returns_of(records)
    groups = group_intervals(records, refs)
    games = [g for g in GAME_ORDER if g in refs]
    cfg = records[0]["config"]
    lines = [
        f"The `minatar` recipe (`poldist distill`'s default for MinAtar teachers; `src/poldist/recipes.py`; "
        "rows `recipe` ran it at 8 envs, its default until issue 22, rows `recipe-envs16` at the 16 it "
        "steps now), "
        "chosen on seed 0 alone (section 5b), run here on seeds that played no part in the choice, each "
        f"with its own env seeds. Budget per student: {cfg['updates']:,} updates of batch "
        f"{cfg['batch_size']}, {cfg['transitions_per_update']:g} fresh teacher transitions per update "
        f"({cfg['control']} acting), KL at tau {cfg['tau']:g}, {cfg['lr_schedule']} learning rate; "
        f"{cfg['final_eval_episodes']} final episodes per run. Percent of each teacher's reference score, "
        "[95% interval] of the two-stage bootstrap (seeds, then episodes, and the reference episodes). "
        "`target`: issue 18's goal for that compression level (paper, Atari: net1 108.3, net2 101.7, "
        "net3 83.9). " + library_sizes_note(groups) + _other_variants_note(records),
        "",
        recipe_table(groups, games),
        "",
    ]
    tuning = group_intervals(
        [r for r in load_study(ctx.results / "study" / "raw") if r["seed"] in TUNING_SEEDS], refs
    )
    lines += [*(f"- {line}" for line in recipe_findings(groups, refs, tuning)), ""]
    if multi:
        lines += [
            _multitask_recipe_note(groups.get(("recipe", MULTITASK_SIZE)), ctx.results / "multitask")
            + (
                " Its `recipe-envs16` row: the same command with `--num-envs 16 --out "
                "results/multitask/recipe-envs16-seedS`."
                if ("recipe-envs16", MULTITASK_SIZE) in groups
                else ""
            ),
            "",
        ]
    shortfalls = shortfall_notes(groups)
    if shortfalls:
        lines += [
            "Where a target is not met by the whole interval: what was checked, and what would be needed "
            "(nothing below was run on these seeds).",
            "",
            *(f"- {line}" for line in shortfalls),
            "",
        ]
    return lines


# What the study checked for each library size (section 5b, section 3's explorations), and what
# it would take, for a size whose target is not met by the whole interval. Text without numbers:
# the numbers are in the tables it points at.
SHORTFALL_CHECKED = {
    "teacher": "teacher size: its interval contains 100 and the shortfall is within a point or two; "
    "the games below 100% differ from seed to seed. Deciding 99% against 100% at this spread "
    "needs more fresh seeds (the interval narrows with the square root of their number), not "
    "another recipe; the tuning seed's rows at this size were not searched further.",
    "net1": "net1: as for teacher size, the interval straddles 100 and the games below it move from "
    "seed to seed; more fresh seeds would decide it.",
    "net2": "net2: Asterix and Space Invaders each have one seed far below the other two, and Seaquest is "
    "below on every seed. On the tuning seed (section 5b) three times the updates (`recipe-long`) "
    "brought Asterix and Seaquest to about their teachers but not the five-game mean, over the "
    "10-minute budget; a second strided conv (`net2-2ck4`), 64 envs, 5 fresh transitions per "
    "update, a 50k memory "
    "and a temperature set from each teacher's Q-value gaps were no better there. Not tried, and "
    "what would be needed: a budget longer than 10 minutes chosen for net2 alone, then fresh "
    "seeds of its own (seeds 1-3 have now been seen).",
    "net3": "net3: its interval reaches below 95; on the tuning seed it was the best of the net3 "
    "trunks tried (section 5b); more fresh seeds would decide it.",
    MULTITASK_SIZE: "multi-task: Asterix is furthest below its teacher. A trunk 3.3 times wider "
    "moved the five-game mean by about a point on the tuning seed, within its noise (section 3's "
    "explorations). Not tried: more of the round robin's updates for the games furthest below "
    "(the paper's round robin is "
    "uniform) and a longer budget than the single-game one, each tuned on seed 0 and reported on "
    "fresh seeds of its own.",
}


def shortfall_notes(groups: dict[tuple[str, str], dict[str, Any]]) -> list[str]:
    """:data:`SHORTFALL_CHECKED` for every library size (``poldist distill --student``, and the
    multi-task student) of the fresh-seed recipe rows whose target is not met by the whole interval."""
    library_of = {w: name for name, w in library_widths().items()}
    out = []
    for (variant, size), g in sorted(groups.items(), key=lambda kv: SIZE_RANK.index(kv[0][1])):
        library = (
            MULTITASK_SIZE
            if size == MULTITASK_SIZE
            else library_of.get(g["records"][0].get("config", {}).get("student"))
        )
        geo, target = g["geomean"], RECIPE_TARGETS.get(library or "")
        if variant == "recipe" and geo is not None and target is not None and geo.ci_low < target:
            out.append(SHORTFALL_CHECKED[library])
    return out


def library_widths() -> dict[str, str]:
    """The library's MinAtar student sizes as the study's configs record them: ``net2 -> "8/18"``
    (:data:`~poldist.networks.MINATAR_STUDENTS`, tuples written as ``convs/hidden``)."""
    from poldist.networks import MINATAR_STUDENTS

    return {
        name: e if isinstance(e, str) else f"{','.join(map(str, e[0]))}/{e[1]}"
        for name, e in MINATAR_STUDENTS.items()
    }


def library_sizes_note(groups: dict[tuple[str, str], dict[str, Any]]) -> str:
    """Which rows are ``poldist distill --student <name>`` on MinAtar today: the study's size
    names are its own (``net3-c8``), the library's are :data:`~poldist.networks.MINATAR_STUDENTS`."""
    widths = library_widths()
    rows = {
        g["records"][0].get("config", {}).get("student"): size
        for (_, size), g in groups.items()
        if g["records"]
    }
    named = [f"`{name}` is {rows[w]} (`{w}`)" for name, w in widths.items() if w in rows and rows[w] != name]
    return f"Of the library's sizes (`--student`), {', '.join(named)}." if named else ""


def _seed_percents(group: dict[str, Any], game: str, reference: list[float]) -> list[tuple[int, float]]:
    """``(seed, percent of the reference)`` of each run of ``game`` in ``group``."""
    ref = float(np.mean(reference))
    recs = sorted((r for r in group["records"] if r["game"] == game), key=lambda r: r["seed"])
    return [(r["seed"], 100 * float(np.mean(r["student_returns"])) / ref) for r in recs]


def recipe_findings(
    groups: dict[tuple[str, str], dict[str, Any]],
    references: dict[str, list[float]],
    tuning: dict[tuple[str, str], dict[str, Any]],
) -> list[str]:
    """Per student size of the fresh seeds: the geometric mean against its target, and for each game
    below 100% its seeds' percents and the best the tuning seeds' variants did on it at that size."""
    out = []
    order = sorted(groups.items(), key=lambda kv: (SIZE_RANK.index(kv[0][1]), kv[0][0] != "recipe", kv[0][0]))
    for (variant, size), g in order:
        geo, target = g["geomean"], RECIPE_TARGETS.get(_size_family(size))
        seeds = ", ".join(str(s) for s in g["seeds"])
        name = size if variant == "recipe" else f"{size}, {variant}"
        if geo is None or target is None:
            out.append(f"{name}: not every game has a run yet (seeds {seeds}).")
            continue
        verdict = target_verdict(geo.mean, geo.ci_low, geo.ci_high, target)
        short = []
        for game, iv in g["per_game"].items():
            if iv.mean >= 100:
                continue
            per_seed = ", ".join(f"{p:.1f}" for _, p in _seed_percents(g, game, references[game]))
            tried = [
                (k[0], t["per_game"][game].mean)
                for k, t in tuning.items()
                if k[1] == size and game in t["per_game"]
            ]
            best = max(tried, key=lambda kv: kv[1], default=None)
            short.append(
                f"{game} {iv.mean:.1f} (seeds: {per_seed}"
                + (f"; best on the tuning seeds at this size: {best[0]} {best[1]:.1f}" if best else "")
                + ")"
            )
        out.append(
            f"{name} (seeds {seeds}): {geo.mean:.1f}% [{geo.ci_low:.1f}, {geo.ci_high:.1f}] against the "
            f"target {target:g}: {verdict}."
            + (f" Below 100%: {'; '.join(short)}." if short else " Every game at or above 100%.")
        )
    return out


def _multitask_recipe_note(group: dict[str, Any] | None, multitask_dir: Path) -> str:
    """What the ``multi-task`` row is, and how it stands against the multi-task DQN of section 3."""
    from poldist.experiments.sections_multitask import multitask_section

    cfg = group["records"][0]["config"] if group else {}
    text = (
        "`multi-task`: one student with section 3's multi-task network distilled from the five teachers "
        f"with the same recipe, {cfg.get('updates', 0):,} updates in all (round robin, the single-game "
        "budget per game), each game on its own env seeds; its minutes are the whole five-game run's. "
        f"Command, per seed S: `python scripts/multitask_minatar.py --recipe minatar --skip-dqn --losses kl "
        "--env-seeds disjoint --final-episodes 200 --seed S --out results/multitask/recipe-seedS`."
    )
    dqn_paths = sorted(multitask_dir.glob("seed*/results.json"))
    geo = group["geomean"] if group else None
    if not dqn_paths or geo is None:
        return text
    agg = multitask_section(dqn_paths)[1].get("multi_dqn")
    if agg is None:
        return text
    point, low, high = agg["geomean"]
    apart = geo.ci_low > high
    return (
        text + f" Against the multi-task DQN of section 3 ({len(dqn_paths)} seeds, rescored against the "
        f"reference scores): DQN {point:.1f}% [{low:.1f}, {high:.1f}] (bootstrap over its seeds), student "
        f"{geo.mean:.1f}% [{geo.ci_low:.1f}, {geo.ci_high:.1f}]: "
        + ("above it, the intervals apart." if apart else "the intervals overlap.")
    )


def _game(groups: dict[tuple[str, str], dict[str, Any]], variant: str, size: str, game: str) -> float | None:
    g = groups.get((variant, size))
    iv = None if g is None else g["per_game"].get(game)
    return None if iv is None else iv.mean


# the recipe's own runs on the tuning seeds: the one-change row it was chosen from (the same config)
RECIPE_ON_SEED0 = ("tau1-cosine-student", "net2-c8")


def _pair_geo(
    groups: dict[tuple[str, str], dict[str, Any]],
    references: dict[str, list[float]],
    a: tuple[str, str],
    b: tuple[str, str],
) -> tuple[float, float, list[int]] | None:
    """The geometric means of rows ``a`` and ``b`` over the tuning seeds both ran on, and those
    seeds; None unless both have every game on a common seed."""
    if a not in groups or b not in groups:
        return None
    common = sorted(set(groups[a]["seeds"]) & set(groups[b]["seeds"]))
    pair = group_intervals(
        [r for key in (a, b) for r in groups[key]["records"] if r["seed"] in common], references
    )
    ga, gb = pair[a]["geomean"], pair[b]["geomean"]
    return None if ga is None or gb is None else (ga.mean, gb.mean, common)


def study_findings(
    groups: dict[tuple[str, str], dict[str, Any]], references: dict[str, list[float]]
) -> list[str]:
    """Bullets: what each one-change comparison of the table says, on the seeds both rows ran on
    (only those whose runs exist)."""
    out = []
    runs = sum(len(g["records"]) for g in groups.values())
    out.append(
        f"Tuning budget: {runs} runs on the tuning seeds ({len(groups)} variant and size pairs); "
        "nothing below was measured on the seeds of section 5c."
    )
    pairs = [
        ("temperature 1 against the paper's 0.01", ("tau1", "net2"), ("base", "net2")),
        (
            "8 conv filters and 18 hidden units against 4 and 36 (the same 7%)",
            ("base", "net2-c8"),
            ("base", "net2"),
        ),
        (
            "the same with tau 1 and a cosine learning rate",
            ("tau1-cosine", "net2-c8"),
            ("tau1-cosine", "net2"),
        ),
        ("a cosine learning rate at tau 0.01", ("cosine", "net2"), ("base", "net2")),
        (
            "the student acting (tau 1, cosine, 8 filters)",
            ("tau1-cosine-student", "net2-c8"),
            ("tau1-cosine", "net2-c8"),
        ),
    ]
    # student trunks at the same ~4% budget, under the recipe: a stride-2 conv keeps more hidden units
    pairs += [
        (
            f"{what}, against one 8-filter conv and 10 hidden units (net3-c8)",
            ("recipe", size),
            ("recipe", "net3-c8"),
        )
        for what, size in (
            ("net3-s2k4: one 4x4 conv of stride 2 (4x4 cells) and 36 hidden units", "net3-s2k4"),
            (
                "net3-2ck4: a 16-filter conv, then an 8-filter 4x4 one of stride 2, and 34 hidden units",
                "net3-2ck4",
            ),
            ("net3-s2: one 3x3 conv of stride 2 and 38 hidden units", "net3-s2"),
        )
    ]
    # the same idea at 7%: a second conv of stride 2 against the one-conv net2 (8 filters, 18 units)
    pairs.append(
        (
            "net2-2ck4: a 16-filter conv, then a 12-filter 4x4 one of stride 2, and 52 hidden units, "
            "against one 8-filter conv and 18 hidden units (net2-c8)",
            ("recipe", "net2-2ck4"),
            RECIPE_ON_SEED0,
        )
    )
    # the recipe with one more change, against the recipe (its tau1-cosine-student runs)
    pairs += [
        (change_of(g["records"][0]).replace("the minatar recipe, ", "the recipe, "), (v, s), RECIPE_ON_SEED0)
        for (v, s), g in sorted(groups.items(), key=lambda kv: kv[0])
        if v.startswith("recipe-") and s == RECIPE_ON_SEED0[1]
    ]
    against_recipe = False  # a recipe-with-one-change row was compared with the recipe
    for what, a, b in pairs:
        both = _pair_geo(groups, references, a, b)
        if both is not None:
            ga, gb, seeds = both
            on = "" if seeds == [TUNING_SEED] else f" (seeds {', '.join(map(str, seeds))})"
            out.append(f"{what}: geometric mean {ga:.1f}% against {gb:.1f}% ({ga - gb:+.1f}){on}.")
            against_recipe |= b == RECIPE_ON_SEED0
    if against_recipe:
        out.append(
            "Against the recipe, the bar is high: its seed-0 run was the best of the candidates tried on "
            "that seed, so it reads high (a winner's curse; section 5c has the same recipe on fresh "
            "seeds). A one-change row a few points under it is not shown worse; a change that comes close "
            "is run on the second tuning seed (4) too, and adopted only if it holds there."
        )
    for (variant, size), g in sorted(groups.items()):
        recs = [r for r in g["records"] if r.get("config", {}).get("tau_gap")]
        if recs:  # a temperature set per teacher from its outputs: say what it measured
            taus = ", ".join(f"{r['game']} {r['tau']:.2f}" for r in sorted(recs, key=lambda r: r["game"]))
            out.append(f"{variant} ({size}) trained at the temperatures it measured: {taus}.")
    k3 = {s: _game(groups, "recipe", s, "breakout") for s in ("net3-s2", "net3-2c")}
    if all(x is not None for x in k3.values()):
        out.append(
            f"The first strided trunks failed on Breakout ({k3['net3-s2']:.1f}% and {k3['net3-2c']:.1f}%): "
            "a 3x3 kernel of stride 2 on MinAtar's 10 cells (or on the 8 left by a first conv) never reads "
            "the last row, where Breakout's paddle is. Their 4x4-kernel versions (net3-s2k4, net3-2ck4) "
            "cover the whole grid."
        )
    sea = {
        v: _game(groups, v, "net2-c8", "seaquest")
        for v in ("tau1-cosine", "tau1-cosine-60k", "tau1-cosine-mixed", "tau1-cosine-student")
    }
    if all(x is not None for x in sea.values()):
        out.append(
            "Seaquest, the game every teacher-acting recipe fell short on: teacher acting "
            f"{sea['tau1-cosine']:.1f}%, 1.5x the updates {sea['tau1-cosine-60k']:.1f}%, mixed control "
            f"{sea['tau1-cosine-mixed']:.1f}%, student acting {sea['tau1-cosine-student']:.1f}%. "
            "Consistent with a student that, trained only on the teacher's states, drifts into "
            "states its teacher never visits: labelling the student's own states (DAgger's remedy) "
            "closes most of the gap, more updates on the teacher's data less of it (one seed; not a "
            "proof of the mechanism)."
        )
    base = [g for (v, _), g in groups.items() if v == "base"]
    if base:
        recs = [r for g in base for r in g["records"]]
        tie_share = float(np.mean([sum(r["gap_shares"][:2]) for r in recs]))
        tie_agree = [
            float(np.average(r["agreement_by_gap"][:2], weights=r["gap_shares"][:2]))
            for r in recs
            if None not in r["agreement_by_gap"][:2] and sum(r["gap_shares"][:2]) > 0
        ]
        far_agree = [r["agreement_by_gap"][-2] for r in recs if r["agreement_by_gap"][-2] is not None]
        if tie_agree and far_agree:
            out.append(
                f"Where base students disagree: {100 * tie_share:.0f}% of teacher states have a top-2 Q "
                f"gap under {recs[0]['gap_edges'][2]}, where students agree with the teacher "
                f"{100 * np.mean(tie_agree):.0f}% of the time, against {100 * np.mean(far_agree):.0f}% on "
                "clear choices (table below): much of the disagreement is between actions the teacher values "
                "almost equally, so agreement understates the students' play."
            )
    return [
        "What the comparisons say (one run per tuning seed, so a difference under about 5 points is "
        "noise; a pair compares the seeds both rows ran on):",
        "",
    ] + [f"- {line}" for line in out]


def study_lines(ctx: ReportContext) -> list[str]:
    """Section 5b: the study table, its learning curves and where base students disagree."""
    raw_dir = ctx.results / "study" / "raw"
    records = [r for r in load_study(raw_dir) if r["seed"] in TUNING_SEEDS]
    if not records:
        return ["No raw results yet: `python scripts/study_minatar.py --list`.", ""]
    refs = reference_returns_of(records)
    groups = group_intervals(records, refs)
    games = [g for g in GAME_ORDER if g in refs]
    base = records[0]["config"]
    parts = [
        "Every row is the base recipe with one change (column `change`). Base: KL at tau "
        f"{base['tau']:g}, {base['optimizer']} lr {base['lr']:g}, batch {base['batch_size']}, "
        f"{base['updates']:,} updates, {base['transitions_per_update']:g} fresh teacher transitions per "
        f"update into a {base['memory_size']:,}-transition memory, teacher acting at epsilon "
        f"{base['epsilon']:g}. Percent of the teacher's reference score (1,000 episodes on env seeds no "
        f"run uses), scored over {base['final_eval_episodes']} episodes per run; [95% interval] of a "
        "two-stage bootstrap (seeds, then episodes within each seed, and the reference episodes), so "
        "a single seed's interval covers episode noise only. In brackets after the geometric mean: "
        "the change against the net2 base. `wall min/run`: training minutes per run on this machine "
        "(other jobs ran beside it, and a run paused for an idle benchmark counts the pause); `CPU "
        "min/run`: the run's own CPU minutes (one torch thread), which neither inflates; `–` where "
        "the runs predate that count (2026-12-02). The tuning set is seed 0, where the recipe was "
        "chosen, and seed 4, where a change to the recipe is checked a second time (`seeds`); the "
        "recipe is reported on other seeds (section 5c).",
        "",
        study_table(groups, games),
        "",
        *study_findings(groups, refs),
        "",
    ]
    for size in sorted({r["size"] for r in records}):
        if sum(1 for (_, s) in groups if s == size) > 1:
            ctx.plots.mkdir(parents=True, exist_ok=True)
            curve = study_curves(
                study_curve_data(groups, refs, size),
                games,
                ctx.plots / f"study_{size}.png",
                f"Study, {size} students (tuning seeds; eval 10 episodes per point)",
            )
            parts += [f"![study {size}]({ctx.link(curve)})", ""]
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
