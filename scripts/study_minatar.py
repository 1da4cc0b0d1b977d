"""What holds MinAtar students back: one variable at a time, with learning curves (issue 18, part 2).

Every variant is the study's base recipe with one change (or, for the recipe candidates, the
changes named), run per game, student size and seed. A run writes ``results/study/raw/<cell>.json``
(the final score's every episode, agreement with the teacher by how near-tied the teacher was, the
temperature used, the config, wall time and the command) and ``<cell>.evals.csv`` (the learning
curve); ``poldist report`` turns them into RESULTS.md's study section. Percent of teacher is
computed there against each teacher's reference score (``poldist reference-score``).

Tuning uses seed 0 (and seed 4 to check a change to the recipe on a second seed); the chosen
recipe is then reported on seeds 1-3, which the choice never saw::

    .venv/bin/python scripts/study_minatar.py --variants base,tau1,cosine --sizes net2 --seeds 0
    .venv/bin/python scripts/study_minatar.py --list          # the variants and what each changes

Finished cells are skipped and interrupted ones resume from their checkpoint, so a command can be
rerun until everything is there; ``--shard i/n`` runs every n-th cell from i (one process a core).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from poldist.distillation import DistillConfig
from poldist.experiments.cells import distill_cell
from poldist.experiments.reproduce import BUDGETS, GAMES
from poldist.experiments.study_report import CHANGE_NOW
from poldist.recipes import RECIPES
from poldist.zoo import reference_returns

# The base: the compression experiment's 40k budget (KL at the paper's tau 0.01, RMSProp 1e-3,
# batch 256, 20 fresh teacher transitions per update into a 200k memory), with env seeds that no
# two run seeds share, and a final score over 200 episodes.
BASE = replace(
    BUDGETS["40k"],
    loss="kl",
    tau=0.01,
    eval_episodes=10,
    final_eval_episodes=200,
    checkpoint_interval=10_000,
    env_seeds="disjoint",
)

# name -> (what it changes, the DistillConfig fields it sets); sizes and widths are set per cell
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "base": ("the base recipe", {}),
    "tau0.1": ("temperature 0.1", {"tau": 0.1}),
    "tau1": ("temperature 1", {"tau": 1.0}),
    "taugap1": ("temperature = the teacher's median top-2 gap", {"tau_gap": 1.0}),
    "taugap10": ("temperature = 10x the teacher's median top-2 gap", {"tau_gap": 10.0}),
    "cosine": ("learning rate falling to 0 (cosine)", {"lr_schedule": "cosine"}),
    "adam": ("Adam at 5e-4 instead of RMSProp at 1e-3", {"optimizer": "adam", "lr": 5e-4}),
    "batch64": ("batch 64 instead of 256", {"batch_size": 64}),
    "fresh5": (
        "5 fresh transitions per update (the paper's ~0.19 updates a transition)",
        {
            "transitions_per_update": 5.0,
        },
    ),
    "mem50k": ("a 50k-transition memory instead of 200k", {"memory_size": 50_000}),
    "student": ("the student acts, the teacher labels (DAgger-style)", {"control": "student"}),
    "mixed": ("teacher then student acting (beta 1 -> 0 over half the run)", {"control": "mixed"}),
    "long": (
        "120k updates instead of 40k",
        {
            "updates": 120_000,
            "eval_interval": 15_000,
            "checkpoint_interval": 30_000,
        },
    ),
}

# Recipe candidates: several changes at once, tried once the one-change rows say which help
COMBOS: dict[str, tuple[str, dict[str, Any]]] = {
    "tau1-cosine": ("temperature 1 and a cosine learning rate", {"tau": 1.0, "lr_schedule": "cosine"}),
    "tau1-cosine-long": (
        "temperature 1, cosine learning rate, 120k updates",
        {
            "tau": 1.0,
            "lr_schedule": "cosine",
            "updates": 120_000,
            "eval_interval": 15_000,
            "checkpoint_interval": 30_000,
        },
    ),
}
COMBOS.update(
    {
        f"tau1-cosine-{suffix}": (
            f"temperature 1, cosine learning rate, {change}",
            {"tau": 1.0, "lr_schedule": "cosine", **fields},
        )
        for suffix, (change, fields) in {
            "student": ("the student acts", {"control": "student"}),
            "mixed": ("teacher then student acting", {"control": "mixed"}),
            "60k": (
                "60k updates",
                {"updates": 60_000, "eval_interval": 7_500, "checkpoint_interval": 15_000},
            ),
        }.items()
    }
)
# The recipe `poldist distill` starts from for MinAtar teachers: what the fresh seeds report. Its
# envs are pinned at the 8 its committed cells ran on, so that a later change to the recipe's envs
# (recipe-envs16, issue 22) leaves these cells' definitions as they ran
STUDIED_RECIPE = {**RECIPES["minatar"], "num_envs": 8}
COMBOS["recipe"] = (CHANGE_NOW["recipe"], dict(STUDIED_RECIPE))  # one text, also the tables'
# The recipe with one more change (what still holds its students back, and what would make it
# cheaper): fewer fresh transitions per update cut collection, the run's other half
COMBOS.update(
    {
        f"recipe-{name}": (f"the minatar recipe, {change}", {**STUDIED_RECIPE, **fields})
        for name, (change, fields) in VARIANTS.items()
        if name in ("fresh5", "long", "batch64", "adam", "mem50k")
    }
)
COMBOS["recipe-fresh10"] = (
    "the minatar recipe, 10 fresh transitions per update instead of 20",
    {**STUDIED_RECIPE, "transitions_per_update": 10.0},
)
# The recipe's temperature rescaled per teacher: 20x its median top-2 gap, measured (tau_gap) on
# the states collected before the first update. On teacher states (results/teacher_gaps.json) that
# would average 1 over the five teachers; on these first states, which the untrained student
# visits, the seed-0 runs measured 0.51 (Space Invaders) to 1.97 (Asterix).
COMBOS["recipe-taugap20"] = (
    "the minatar recipe, temperature 20x the teacher's median top-2 gap on the first states collected",
    {**STUDIED_RECIPE, "tau_gap": 20.0},
)
# Collection across 64 envs (one teacher forward labels 64 observations; issue 22's MinAtar target)
COMBOS["recipe-envs64"] = ("the minatar recipe, 64 envs instead of 8", {**STUDIED_RECIPE, "num_envs": 64})
COMBOS["recipe-envs16"] = (CHANGE_NOW["recipe-envs16"], {**STUDIED_RECIPE, "num_envs": 16})
VARIANTS.update(COMBOS)

# MinAtar student families for the study of conv capacity: size -> (conv filters, hidden units).
# The shipped net2/net3 keep 4 of the teacher's 16 filters; these keep 8 or 16 at the same budget.
WIDTHS = {
    "net2": "4/36",
    "net2-c8": "8/18",
    "net2-c16": "16/9",
    "net3": "4/20",
    "net3-c8": "8/10",
    "net3-c16": "16/5",
    "net1": "8/64",
    "net1-c16": "16/32",
    "teacher": "16/128",
    # Trunks that shrink the grid before the hidden layer, so its width survives the budget:
    # one 3x3 conv of stride 2 (4x4 cells), or a 16-filter conv then a stride-2 one (3x3 cells).
    # A 3x3 kernel of stride 2 on 10 cells (or 8) never reads the last row and column, where
    # Breakout's paddle is: net3-s2 and net3-2c scored 9% there (kept as that finding).
    "net2-s2": "8s2/69",
    "net2-2c": "16,16k3s2/41",
    "net3-s2": "8s2/38",
    "net3-2c": "16,8k3s2/41",
    # The same ideas with 4x4 kernels of stride 2, which cover the whole grid (4x4 and 3x3 cells)
    "net2-s2k4": "8k4s2/68",
    "net2-2ck4": "16,12k4s2/52",
    "net3-s2k4": "8k4s2/36",
    "net3-2ck4": "16,8k4s2/34",
}
# poldist's MinAtar family (networks.MINATAR_STUDENTS) is net1 8/64, net2-c8 8/18 and, since the
# study, net3-2ck4 16,8k4s2/34 (net3-c8 8/10 before)


def cell_name(variant: str, size: str, game: str, seed: int) -> str:
    """File-safe identity of one run, e.g. ``tau1__net2__breakout__seed0``."""
    return f"{variant}__{size}__{game}__seed{seed}"


def cell_config(variant: str, size: str, game: str, seed: int) -> DistillConfig:
    """The distillation config of one cell."""
    if variant not in VARIANTS:
        raise SystemExit(f"unknown variant {variant!r}: choose from {sorted(VARIANTS)}")
    if size not in WIDTHS:
        raise SystemExit(f"unknown size {size!r}: choose from {sorted(WIDTHS)}")
    return replace(BASE, **VARIANTS[variant][1], teacher=f"minatar/{game}", student=WIDTHS[size], seed=seed)


def run_cell(variant: str, size: str, game: str, seed: int, runs: Path, results: Path) -> dict[str, Any]:
    """Run (or resume, or skip if done) one cell; write its raw record and learning curve."""
    name = cell_name(variant, size, game, seed)
    raw = results / "raw" / f"{name}.json"
    if raw.exists():
        return json.loads(raw.read_text())
    try:
        reference = reference_returns(f"minatar/{game}")
        ref_mean = sum(reference) / len(reference)
    except Exception:  # no reference score yet: the report computes percent later
        ref_mean = None
    fields = {
        "variant": variant,
        "change": VARIANTS[variant][0],
        "size": size,
        "game": game,
        "seed": seed,
        "teacher": f"minatar/{game}",
        "command": f"python scripts/study_minatar.py --variants {variant} --sizes {size} "
        f"--games {game} --seeds {seed}",
    }
    return distill_cell(cell_config(variant, size, game, seed), runs / name, raw, fields, ref_mean)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variants", default="base", help="comma-separated variant names (see --list)")
    p.add_argument("--sizes", default="net2", help=f"comma-separated student sizes: {', '.join(WIDTHS)}")
    p.add_argument("--games", default=",".join(GAMES), help="comma-separated MinAtar games (default: all)")
    p.add_argument("--seeds", default="0", help="comma-separated run seeds (default 0, the tuning seed)")
    p.add_argument("--runs", default="runs/study", help="where the run directories go")
    p.add_argument("--results", default="results/study", help="where the raw results go")
    p.add_argument("--shard", default="0/1", help="i/n: run every n-th cell from i")
    p.add_argument("--list", action="store_true", help="list the variants and exit")
    args = p.parse_args(argv)
    if args.list:
        for name, (change, fields) in VARIANTS.items():
            print(f"{name:10s} {change}  {fields}")
        return 0
    i, n = (int(x) for x in args.shard.split("/"))
    cells = [
        (v, s, g, int(seed))
        for seed in args.seeds.split(",")
        for v in args.variants.split(",")
        for s in args.sizes.split(",")
        for g in args.games.split(",")
    ]
    for k, cell in enumerate(cells):
        if k % n != i:
            continue
        print(f"[{k + 1}/{len(cells)}] {cell_name(*cell)}", flush=True)
        rec = run_cell(*cell, Path(args.runs), Path(args.results))
        print(
            f"    {rec['student_score']:.2f} ({rec['percent_of_reference']:.1f}% of the reference), "
            f"agreement {rec['agreement']:.3f}, {rec['train_wall_seconds']:.0f} s",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
