"""RESULTS.md section 7: Atari, with a teacher trained here (``scripts/atari_students.py``).

Reads ``<results>/atari/<game>/raw/*.json`` (one record per student run, every final episode's
return) and the ``.evals.csv`` curve beside each, and the teacher's model card in the zoo (its
reference episodes and its uniformly random policy's score). Atari scores can be negative (Pong:
-21 to 21), so the main percent is above random, ``100 (student - random) / (teacher - random)``,
with the paper's plain ``100 student / teacher`` beside it where the teacher scores above 0. Both
carry the two-stage bootstrap interval of :func:`poldist.evaluation.percent_intervals` (seeds,
episodes within each, and the reference episodes). Seed 0 is the tuning seed: its rows are marked.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from poldist.evaluation import percent_intervals
from poldist.experiments.report_stats import ReportContext, mean_cpu_seconds
from poldist.experiments.study_report import MINUTES, TUNING_SEED, load_study, minutes_cells
from poldist.networks import QNetwork, count_parameters, nature_dqn, student_architecture
from poldist.plotting import study_curves
from poldist.runs import EvalLog
from poldist.tables import md_table
from poldist.teachers import ZOO
from poldist.zoo import total_env_steps, total_wall_seconds

SIZE_ORDER = ("teacher", "net1", "net2", "net3")


def paper_params(size: str) -> int:
    """Parameters of ``size`` with the paper's 18 actions (net1 427,874, net2 113,346, net3 61,954)."""
    return count_parameters(QNetwork(student_architecture(nature_dqn(18), size)))


def _interval(iv: Any) -> str:
    return f"{iv.mean:.1f} [{iv.ci_low:.1f}, {iv.ci_high:.1f}]"


def reference_above_random(card: dict[str, Any]) -> bool:
    """Whether the teacher's reference score is above its random policy's: else no percent above
    random is defined (nor a curve of it)."""
    return float(np.mean(card["reference"]["returns"])) > card["random_policy"]["mean"]


def base_budget(records: list[dict[str, Any]]) -> int | None:
    """The update budget most rows share (a longer-budget row says its own in its variant's name);
    ``None`` where no record carries one."""
    budgets = Counter(r["config"]["updates"] for r in records if "updates" in r.get("config", {}))
    return budgets.most_common(1)[0][0] if budgets else None


def variant_notes(records: list[dict[str, Any]]) -> str:
    """What a table's variants beyond the two temperatures mean, and what a tuning row is, for
    those present in ``records`` (``""`` if none)."""
    notes = []
    schedules = sorted({r["config"].get("lr_schedule", "constant") for r in records} - {"constant"})
    if schedules:
        notes.append(
            f"; `-{'/-'.join(schedules)}`: the learning rate falls to 0 at the last update "
            f"({' / '.join(schedules)}, as the MinAtar recipe's does)"
        )
    base = base_budget(records)
    longer = sorted({r["config"]["updates"] for r in records if "updates" in r.get("config", {})} - {base})
    if longer:
        notes.append(
            "; `-<n>k`: a budget of n thousand updates instead of "
            f"{base:,} (here {', '.join(f'{b:,}' for b in longer)})"
        )
    if any(r["seed"] == TUNING_SEED for r in records):
        notes.append(
            f"; `(tuning)`: run seed {TUNING_SEED}, used to choose a variant and not counted in the "
            "fresh-seed rows"
        )
    return "".join(notes)


DECISIVE_GAP = 0.1  # a teacher top-2 Q gap from which one action clearly matters


def decisive_agreement(record: dict[str, Any]) -> float | None:
    """The student's agreement with the teacher's greedy action over the states where the teacher's
    top-2 gap is at least :data:`DECISIVE_GAP` (its ``agreement_by_gap`` bins weighted by their
    shares); ``None`` where the record has no gap bins or no such state."""
    edges, shares, agree = (record.get(k) for k in ("gap_edges", "gap_shares", "agreement_by_gap"))
    if not edges:
        return None
    bins = [
        (s, a) for e, s, a in zip(edges, shares, agree) if e != "inf" and e >= DECISIVE_GAP and a is not None
    ]
    total = sum(s for s, _ in bins)
    return sum(s * a for s, a in bins) / total if total > 0 else None


def near_tie_share(records: list[dict[str, Any]]) -> float | None:
    """Mean share of evaluation states whose teacher top-2 gap is below the first bin edge (0.01)."""
    shares = [r["gap_shares"][0] for r in records if r.get("gap_shares")]
    return float(np.mean(shares)) if shares else None


def atari_rows(records: list[dict[str, Any]], card: dict[str, Any]) -> list[list[str]]:
    """Table rows, one per (student size, variant, tuning or fresh seeds): parameters (this game's
    and the paper's 18-action count), the mean score over seeds (each seed's mean in brackets),
    percent above random and plain percent with intervals, seeds, agreement, wall and CPU minutes
    per run."""
    ref = card["reference"]["returns"]
    random = card["random_policy"]["mean"]
    above_random = reference_above_random(card)
    game = records[0]["game"]
    groups: dict[tuple[int, str, bool], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        rank = SIZE_ORDER.index(r["size"]) if r["size"] in SIZE_ORDER else len(SIZE_ORDER)
        groups[(rank, r["variant"], r["seed"] == TUNING_SEED)].append(r)
    rows = []
    for (_, variant, tuning), recs in sorted(groups.items()):
        recs = sorted(recs, key=lambda r: r["seed"])
        returns = {game: [r["student_returns"] for r in recs]}
        above = (
            percent_intervals(returns, {game: ref}, baselines={game: random})[0][game]
            if above_random
            else None
        )
        plain = percent_intervals(returns, {game: ref})[0][game] if np.mean(ref) > 0 else None
        seed_means = [float(np.mean(r["student_returns"])) for r in recs]
        decisive = [d for d in map(decisive_agreement, recs) if d is not None]
        size = recs[0]["size"]
        mean_cpu = mean_cpu_seconds(recs)
        rows.append(
            [
                size,
                f"{recs[0]['student_params']:,} ({paper_params(size):,})",
                variant + (" (tuning)" if tuning else ""),
                f"{np.mean(seed_means):.2f} ({', '.join(f'{m:.1f}' for m in seed_means)})",
                "–" if above is None else f"**{_interval(above)}**",
                "–" if plain is None else _interval(plain),
                ", ".join(str(r["seed"]) for r in recs),
                f"{np.mean([r['agreement'] for r in recs]):.3f}",
                f"{np.mean(decisive):.3f}" if decisive else "–",
                *minutes_cells(float(np.mean([r["train_wall_seconds"] for r in recs])), mean_cpu),
            ]
        )
    return rows


def tuning_text(records: list[dict[str, Any]]) -> str:
    """The tuning seed's runs compared per student size: each variant's final score, best first
    (``""`` where no size has two variants on that seed)."""
    by_size: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        if r["seed"] == TUNING_SEED:
            by_size[r["size"]].append(r)
    parts = []
    for size, recs in sorted(by_size.items(), key=lambda kv: SIZE_ORDER.index(kv[0])):
        if len(recs) < 2:
            continue
        ranked = sorted(recs, key=lambda r: -float(np.mean(r["student_returns"])))
        scores = ", ".join(f"`{r['variant']}` {np.mean(r['student_returns']):.2f}" for r in ranked)
        parts.append(f"{size}: {scores} (best: `{ranked[0]['variant']}`)")
    if not parts:
        return ""
    return (
        f"Tuning on run seed {TUNING_SEED} (final score over {len(ranked[0]['student_returns'])} "
        f"episodes, best first): {'; '.join(parts)}. Only fresh seeds' rows show what a variant gives."
    )


def take_off(curve: list[dict[str, float]], threshold: float) -> int | None:
    """The updates at the first evaluation of ``curve`` (rows with ``updates`` and ``score``) that
    scores at least ``threshold``; ``None`` if none does."""
    return next((int(row["updates"]) for row in curve if row["score"] >= threshold), None)


def take_off_text(records: list[dict[str, Any]], card: dict[str, Any]) -> str:
    """When each fresh-seed run first scored halfway between the random policy and the teacher in
    its periodic evaluations, per size and variant (``""`` without curves)."""
    ref = float(np.mean(card["reference"]["returns"]))
    half = (ref + card["random_policy"]["mean"]) / 2
    groups: dict[tuple[int, str], list[str]] = defaultdict(list)
    episodes = set()
    for r in sorted(records, key=lambda r: r["seed"]):
        if r["seed"] == TUNING_SEED or not r["curve_file"].exists():
            continue
        at = take_off(EvalLog.read(r["curve_file"]), half)
        episodes.add(r["config"]["eval_episodes"])
        rank = SIZE_ORDER.index(r["size"]) if r["size"] in SIZE_ORDER else len(SIZE_ORDER)
        groups[(rank, f"{r['size']} `{r['variant']}`")].append("never" if at is None else f"{at / 1000:g}k")
    if not groups:
        return ""
    parts = [f"{name} {', '.join(ats)}" for (_, name), ats in sorted(groups.items())]
    n_eval = "/".join(map(str, sorted(episodes)))
    return (
        f"When the students took off: the updates at each fresh seed's first periodic evaluation "
        f"({n_eval} episodes) at or above halfway between the random policy and the teacher ({half:.2f}), "
        f"seeds in order; `never`: not within its budget. {'; '.join(parts)}."
    )


def atari_curves(records: list[dict[str, Any]], card: dict[str, Any], path: Path) -> Path:
    """Learning curves of the fresh-seed runs: percent above random against updates, one line per
    size and variant (mean over seeds)."""
    ref = float(np.mean(card["reference"]["returns"]))
    random = card["random_policy"]["mean"]
    curves: dict[str, dict[str, list[dict[int, float]]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        if r["seed"] == TUNING_SEED or not r["curve_file"].exists():
            continue
        points = {
            int(row["updates"]): 100 * (row["score"] - random) / (ref - random)
            for row in EvalLog.read(r["curve_file"])
        }
        curves[f"{r['size']} {r['variant']}"][r["game"]].append(points)
    label = f"{records[0]['teacher']} students: % above random of the reference score (fresh seeds)"
    return study_curves(dict(sorted(curves.items())), [records[0]["game"]], path, label)


def atari_costs(results: Path) -> list[str]:
    """What Atari costs here: the distillation memory's measured cost per transition
    (``results/memory_cost/atari.json``) and the Double-DQN trainer against a bare CleanRL-style
    loop (``results/bench.json``'s ``dqn_atari``), each where it has been measured."""
    out = []
    mem = results / "memory_cost" / "atari.json"
    if mem.exists():
        fit = json.loads(mem.read_text())["fit"]["peak_rss_bytes"]
        per, fixed = fit["bytes_per_transition"], fit["fixed_bytes"]
        out.append(
            f"- Memory of an Atari distillation: {per / 1e3:.1f} KB of resident memory per stored "
            f"transition + {fixed / 1e6:.0f} MB (frames stored once; about {1e9 / per / 1e3:.0f}k "
            f"transitions per GB; the paper's 540,000 in about {(fixed + 540_000 * per) / 1e9:.1f} GB): "
            "`results/memory_cost/`."
        )
    bench = results / "bench.json"
    dqn = json.loads(bench.read_text()).get("dqn_atari") if bench.exists() else None
    if dqn:
        sps, peak = dqn["steps_per_second"], dqn["peak_rss_mb"]
        out.append(
            f"- Training a teacher against a bare CleanRL-style DQN loop ({dqn['settings']}): "
            f"{sps['poldist-1']:.0f} against {sps['bare-1']:.0f} agent steps/s on one thread each "
            f"({dqn['ratio_1_thread']:.2f}x)"
            + (
                f", on two threads {sps['poldist-2']:.0f} ({sps['poldist-2-overlap']:.0f} with "
                f"`--overlap-envs`) against {sps['bare-2']:.0f}"
                if {"poldist-2", "poldist-2-overlap", "bare-2"} <= set(sps)
                else ""
            )
            + (
                f"; with 4 envs stepping during the update (the Pong teacher's 4 envs), "
                f"{sps['poldist-2-overlap-4envs']:.0f} on two threads "
                f"({dqn['ratio_2_threads_overlap_4envs_vs_bare_1']:.2f}x the bare loop on one)"
                if "poldist-2-overlap-4envs" in sps
                else ""
            )
            + f"; peak resident memory {peak['poldist']:.0f} against {peak['bare']:.0f} MB with "
            f"{dqn['memory_rows']:,} transitions (section 6)."
        )
    else:
        out.append(
            "- The Double-DQN trainer against a bare CleanRL-style loop: not yet measured on an idle "
            "machine (`poldist bench --only dqn_atari`, section 6)."
        )
    return out


def atari_candidates(folder: Path) -> list[str]:
    """Bullets: teacher checkpoints published for a check and not shipped
    (``<folder>/<game>/candidates/<step>/card.json``), with what they measured."""
    out = []
    for path in sorted(folder.glob("*/candidates/*/card.json")):
        card = json.loads(path.read_text())
        ref, minutes = card["reference"], card["train_wall_seconds"] / 60
        out.append(
            f"- `{card['name']}` at {card['env_steps']:,} agent steps ({minutes:.0f} min of training): "
            f"reference score {ref['mean']:.2f} [{ref['ci_low']:.2f}, {ref['ci_high']:.2f}] "
            f"over {ref['episodes']} episodes, random policy {card['random_policy']['mean']:.2f}; not "
            f"shipped (`{path.parent.relative_to(folder.parent.parent)}/`)."
        )
    return out


def shipped_teacher_text(card: dict[str, Any], name: str) -> str:
    """Where shipped Atari teacher ``name`` comes from: trained here, for how long (a warm-started
    teacher: its whole chain of runs)."""
    runs = len(card.get("warm_start", {}).get("segments", [])) + 1
    return (
        f"Teacher: `{name}` (model card: `src/poldist/zoo/{name}/MODEL_CARD.md`), trained here for "
        f"{total_env_steps(card):,} env steps in {total_wall_seconds(card) / 3600:.1f} hours"
        + (f" over {runs} runs (each after the first warm-started from the one before)" if runs > 1 else "")
    )


def external_teacher_text(card: dict[str, Any], path: Path) -> str:
    """Where a teacher brought from a file comes from (``scripts/atari_students.py --teacher
    <file>``): the file, its hash, and its own trainer's log where one lay beside it."""
    text = (
        f"Teacher: `{card['name']}`, brought from elsewhere and loaded as `poldist distill --teacher` "
        f"loads it (sha256 {card['sha256'][:12]}, {card['parameters']:,} parameters; yardstick: "
        f"`{path.as_posix().split('results/', 1)[-1]}`)"
    )
    log = card.get("training_log")
    if log:
        steps, hours = log[-1]["to_steps"], sum(e["wall_seconds"] for e in log) / 3600
        warm = sum("fresh optimizer" in e.get("start", "") for e in log)  # train_sb3_pong.py --carry
        text += (
            f", trained by its own trainer for {steps:,} env steps in {hours:.1f} hours"
            + (f" over {len(log)} runs, each resumed from the last one's checkpoint" if len(log) > 1 else "")
            + (
                f" ({warm} of them from its half-precision weights, with a fresh optimizer state)"
                if warm
                else ""
            )
            + f" (`{log[0]['command']}`)"
        )
    return text


def atari_lines(ctx: ReportContext) -> list[str]:
    """Section 7: per game, the teacher trained here and its students at the paper's sizes."""
    folder = ctx.results / "atari"
    games = sorted(p.parent.name for p in folder.glob("*/raw") if any(p.glob("*.json")))
    costs = ["What Atari costs on this machine:", "", *atari_costs(ctx.results), ""]
    candidates = atari_candidates(folder)
    if candidates:
        candidates = [
            "Teachers trained here, checked and not shipped (the target: 18 on Pong):",
            "",
            *candidates,
            "",
        ]
    if not games:
        return [
            "No Atari student runs yet: publish the Pong teacher (`poldist publish-teacher`), then "
            "`python scripts/atari_students.py --teacher atari/pong --seeds 1,2,3`.",
            "",
            *candidates,
            *costs,
        ]
    lines: list[str] = []
    for game in games:
        raw_dir = folder / game / "raw"
        records = load_study(raw_dir)
        teacher = records[0]["teacher"]
        external = folder / game / "teacher_card.json"  # a teacher from a file, scored by the script
        card = json.loads((external if external.exists() else ZOO / teacher / "card.json").read_text())
        ref, rnd = card["reference"], card["random_policy"]
        logits = card.get("output_kind") == "logits"  # a policy teacher (e.g. SB3's PPO) brought from a file
        base = base_budget(records)
        cfg = next(r["config"] for r in records if r["config"]["updates"] == base)
        ties = near_tie_share(records)
        lines += [
            f"### {game if external.exists() else teacher}",
            "",
            (
                external_teacher_text(card, external)
                if external.exists()
                else shipped_teacher_text(card, teacher)
            )
            + f"; reference score {ref['mean']:.2f} [{ref['ci_low']:.2f}, {ref['ci_high']:.2f}] over "
            f"{ref['episodes']} episodes on reserved env seeds, uniformly random policy "
            f"{rnd['mean']:.2f} over {rnd['episodes']}. Students: the paper's recipe "
            f"({cfg['updates']:,} updates of batch {cfg['batch_size']}, "
            f"{cfg['transitions_per_update']:g} fresh teacher transitions per update, "
            f"{cfg['control']} acting, {cfg['optimizer']} lr {cfg['lr']:g}), "
            + (
                f"KL at tau {' or '.join(f'{t:g}' for t in sorted({r['config']['tau'] for r in records}))} "
                "on the teacher's action logits (at 1: its own action distribution)"
                if logits
                else "KL at tau 0.01 (the paper's) or 1 (the MinAtar recipe's)"
            )
            + variant_notes(records)
            + "; "
            f"{cfg['final_eval_episodes']} final episodes per run at epsilon {cfg['epsilon']:g}. "
            "`% above random`: 100 (student - random) / (teacher - random), `plain %`: the paper's "
            "100 student / teacher; [95% interval] of the two-stage bootstrap (seeds, episodes, reference "
            "episodes). Parameters: this game's action set (the paper's 18 actions in brackets). "
            "`agreement`: the share of fresh teacher-visited states where the student's greedy action "
            f"is the teacher's; `gap >= {DECISIVE_GAP:g}`: the same over the states where the teacher's "
            f"two best {'logits' if logits else 'Q-values'} differ by at least that (where one action "
            "clearly matters)"
            + (
                f"; {100 * ties:.0f}% of the states have a gap below 0.01, near-ties where any of the "
                "tied actions does"
                if ties is not None
                else ""
            )
            + ".",
            "",
            md_table(
                [
                    "student",
                    "parameters",
                    "variant",
                    "score (per seed)",
                    "% above random",
                    "plain %",
                    "seeds",
                    "agreement",
                    f"agreement, gap >= {DECISIVE_GAP:g}",
                    *MINUTES,
                ],
                atari_rows(records, card),
            ),
            "",
        ]
        if any(r["seed"] != TUNING_SEED for r in records) and reference_above_random(card):
            ctx.plots.mkdir(parents=True, exist_ok=True)
            curve = atari_curves(records, card, ctx.plots / f"atari_{game}_students.png")
            lines += [f"![{game} students]({ctx.link(curve)})", ""]
            took_off = take_off_text(records, card)
            if took_off:
                lines += [took_off, ""]
        tuning = tuning_text(records)
        if tuning:
            lines += [tuning, ""]
        commands = sorted({r["command"] for r in records})
        lines += ["Commands:", "", *(f"- `{c}`" for c in commands), ""]
    if len(games) > 1:  # what follows is about every game's runs, not the last section's
        lines += ["### All Atari runs", ""]
    return lines + candidates + costs
