"""The paper's Atari compression experiment at our scale (issue 19, part 2).

A shipped Atari teacher (``atari/pong``, trained here by ``poldist train-teacher``) distilled into
the paper's three Atari students (net1 / net2 / net3: 427,874 / 113,346 / 61,954 parameters for 18
actions), with the paper's settings (``--recipe paper``: RMSProp, batch 32, 5.4 fresh teacher
transitions per update, teacher acting) and KL at the paper's tau 0.01 or at the MinAtar recipe's
tau 1; each run seed on its own env seeds; collection overlapped with the updates
(``--overlap-collection``); the final score over ``--episodes`` episodes::

    .venv/bin/python scripts/atari_students.py --teacher atari/pong --seeds 1,2,3
    .venv/bin/python scripts/atari_students.py --teacher atari/pong --sizes net2 --variants tau1 --seeds 0

A teacher brought from elsewhere (a Stable-Baselines3 ``.zip`` or a CleanRL file, as ``poldist
distill --teacher`` takes it) is scored first, with the same yardstick as a shipped one: its
reference score over ``--reference-episodes`` episodes at epsilon 0.05 on the reserved env seeds,
and a uniformly random policy's, kept in ``results/atari/<name>/teacher_card.json``::

    .venv/bin/python scripts/atari_students.py --teacher runs/sb3-pong/ppo-PongNoFrameskip-v4.zip \
        --name sb3-pong --sizes net2 --seeds 1,2,3

Writes ``results/atari/<game>/raw/<cell>.json`` (every final episode's return, agreement, wall
time, config, the command) and ``<cell>.evals.csv`` (the learning curve); ``poldist report`` makes
RESULTS.md's Atari section from them, against the teacher's reference score and, because Atari
scores can be negative, its uniformly random policy's score (both from the model card). Finished
cells are skipped and interrupted ones resume from their checkpoint.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from poldist.config import DistillConfig
from poldist.errors import PoldistError
from poldist.experiments.cells import distill_cell
from poldist.external import is_external  # a file brought from elsewhere (SB3, CleanRL)
from poldist.recipes import recipe_config
from poldist.teachers import ZOO

SIZES = ("net1", "net2", "net3")
# name -> the fields that differ from the paper recipe: the two temperatures (the default
# variants), and the MinAtar recipe's cosine learning-rate schedule at the paper's tau (opt-in:
# tried on tuning seed 0 at net2 because the constant-rate students' 4-episode curves swing by 15
# points late in training; rejected there: the Pong students only take off after 12-24k updates at
# the full rate, and under the falling rate net2 never did, -20.64 against 6.41; RESULTS.md 7)
VARIANTS: dict[str, dict[str, Any]] = {
    "tau0.01": {"tau": 0.01},
    "tau1": {"tau": 1.0},
    "tau0.01-cosine": {"tau": 0.01, "lr_schedule": "cosine"},
}
DEFAULT_VARIANTS = ("tau0.01", "tau1")
UPDATES = 30_000  # the library's (the paper's) default budget: 162k fresh transitions per student


def external_card(teacher: str, folder: Path, episodes: int) -> dict[str, Any]:
    """The yardstick of a teacher brought from elsewhere, measured once and kept in
    ``folder/teacher_card.json``: its reference score (``episodes`` episodes at epsilon 0.05 on the
    reserved env seeds, as ``poldist reference-score`` scores a shipped teacher) and a uniformly
    random policy's score, with the file's hash and its trainer's log where one lies beside it
    (``train_log.json``, as ``scripts/train_sb3_pong.py`` writes it)."""
    import hashlib

    from poldist.envs import REFERENCE_SEED
    from poldist.networks import count_parameters
    from poldist.runs import write_json
    from poldist.teachers import load_teacher
    from poldist.zoo import machine_description, random_policy_score, reference_entry

    path = folder / "teacher_card.json"
    if path.exists():
        return json.loads(path.read_text())
    t = load_teacher(teacher)
    command = (
        f"python scripts/atari_students.py --teacher {teacher} --name {folder.name} "
        f"--reference-episodes {episodes}"
    )
    random = random_policy_score(t, episodes, REFERENCE_SEED)
    log = Path(teacher).parent / "train_log.json"
    card = {
        "name": teacher,
        "external": True,
        "sha256": hashlib.sha256(Path(teacher).read_bytes()).hexdigest(),
        "env_id": t.env.env_id,
        "parameters": count_parameters(t.net),
        "output_kind": t.output_kind,  # "q" (a DQN's Q-values) or "logits" (a policy's, PPO/A2C)
        "training_log": json.loads(log.read_text()) if log.exists() else None,
        "reference": reference_entry(t, episodes, command),
        "random_policy": {"episodes": random.episodes, "seed": REFERENCE_SEED, **random.to_dict()},
        "machine": machine_description(),
    }
    write_json(path, card)
    return card


def teacher_card(teacher: str) -> dict[str, Any]:
    """The shipped teacher's model card (its reference and random-policy scores).

    Raises:
        PoldistError: ``teacher`` is not a shipped teacher with a reference score.
    """
    path = ZOO / teacher / "card.json"
    if not path.exists():
        raise PoldistError(f"{teacher} is not a shipped teacher: publish it first (poldist publish-teacher)")
    card = json.loads(path.read_text())
    if "reference" not in card:
        raise PoldistError(f"{teacher} has no reference score: poldist reference-score {teacher}")
    return card


def budget_variant(variant: str, updates: int) -> str:
    """The variant's name with a budget other than the paper's :data:`UPDATES` appended, e.g.
    ``tau0.01-90k``: a longer run is its own row and its own cell, not a rerun of the paper's."""
    return variant if updates == UPDATES else f"{variant}-{updates / 1000:g}k"


def cell_name(game: str, size: str, variant: str, seed: int) -> str:
    """File-safe identity of one run, e.g. ``pong__net2__tau0.01__seed1``."""
    return f"{game}__{size}__{variant}__seed{seed}"


def cell_config(
    teacher: str, size: str, variant: str, seed: int, updates: int, episodes: int
) -> DistillConfig:
    """The distillation config of one cell: the paper recipe with this size, variant and seed.

    Raises:
        PoldistError: an unknown variant.
    """
    if variant not in VARIANTS:
        raise PoldistError(f"unknown variant {variant!r}: choose from {', '.join(VARIANTS)}")
    return recipe_config(
        teacher,
        "paper",
        student=size,
        loss="kl",
        **VARIANTS[variant],
        seed=seed,
        updates=updates,
        eval_interval=max(1, updates // 10),
        eval_episodes=4,
        checkpoint_interval=max(1, updates // 10),
        final_eval_episodes=episodes,
        env_seeds="disjoint",
        overlap_collection=True,  # the teacher acts: only the draws differ, and a second core helps
    )


def run_cell(
    teacher: str,
    size: str,
    variant: str,
    seed: int,
    updates: int,
    episodes: int,
    runs: Path,
    results: Path,
    game: str = "",
    card: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run (or resume, or skip if done) one cell; write its raw record and learning curve.

    ``game``: the results folder's name (default: the shipped teacher's last part, ``pong``);
    ``card``: the teacher's yardstick (default: its model card)."""
    card = card or teacher_card(teacher)
    game = game or teacher.split("/")[-1]
    name = cell_name(game, size, budget_variant(variant, updates), seed)
    fields = {
        "variant": budget_variant(variant, updates),
        "size": size,
        "game": game,
        "seed": seed,
        "teacher": teacher,
        "random_score": card["random_policy"]["mean"],
        "command": f"python scripts/atari_students.py --teacher {teacher} "
        + (f"--name {game} " if is_external(teacher) else "")
        + f"--sizes {size} --variants {variant} --seeds {seed} --updates {updates} --episodes {episodes}",
    }
    cfg = cell_config(teacher, size, variant, seed, updates, episodes)
    return distill_cell(
        cfg, runs / name, results / game / "raw" / f"{name}.json", fields, card["reference"]["mean"]
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--teacher",
        default="atari/pong",
        help="a shipped Atari teacher (default atari/pong), or an SB3 .zip / CleanRL file",
    )
    p.add_argument(
        "--name",
        default="",
        help="results folder of a teacher from a file (e.g. sb3-pong); a shipped one's is its game",
    )
    p.add_argument(
        "--reference-episodes",
        type=int,
        default=100,
        help="episodes of a teacher-from-a-file's reference score, measured once (default 100)",
    )
    p.add_argument("--sizes", default=",".join(SIZES), help="comma-separated student sizes (default: all)")
    p.add_argument(
        "--variants",
        default=",".join(DEFAULT_VARIANTS),
        help="comma-separated: tau0.01 (paper), tau1, tau0.01-cosine (learning rate falls to 0 on a cosine)",
    )
    p.add_argument(
        "--seeds", default="1,2,3", help="comma-separated run seeds (default 1,2,3; 0 is for tuning)"
    )
    p.add_argument(
        "--updates", type=int, default=UPDATES, help=f"student updates per run (default {UPDATES:,})"
    )
    p.add_argument("--episodes", type=int, default=100, help="episodes of each final score (default 100)")
    p.add_argument("--runs", default="runs/atari-students", help="where the run directories go")
    p.add_argument("--results", default="results/atari", help="where the raw results go (per game)")
    args = p.parse_args(argv)
    cells = [
        (size, variant, int(seed))
        for seed in args.seeds.split(",")
        for variant in args.variants.split(",")
        for size in args.sizes.split(",")
    ]
    game, card = "", None
    if is_external(args.teacher):
        if not args.name:
            raise PoldistError("a teacher from a file needs --name, its results folder (e.g. sb3-pong)")
        game = args.name
        card = external_card(args.teacher, Path(args.results) / game, args.reference_episodes)
        ref = card["reference"]
        print(f"{args.teacher}: reference {ref['mean']:.2f} over {ref['episodes']} episodes", flush=True)
    for k, (size, variant, seed) in enumerate(cells):
        print(f"[{k + 1}/{len(cells)}] {size} {variant} seed {seed}", flush=True)
        rec = run_cell(
            args.teacher,
            size,
            variant,
            seed,
            args.updates,
            args.episodes,
            Path(args.runs),
            Path(args.results),
            game,
            card,
        )
        print(
            f"    {rec['student_score']:.2f} (reference {rec['reference_score']:.2f}, random "
            f"{rec['random_score']:.2f}), agreement {rec['agreement']:.3f}, "
            f"{rec['train_wall_seconds']:.0f} s",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except PoldistError as e:
        sys.exit(f"atari_students.py: {e}")
