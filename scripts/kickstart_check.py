"""Why is kickstarting weak on MinAtar? Short runs on one game that separate the suspects.

Kickstarted Double DQN (section 5 of RESULTS.md) ended below DQN from scratch. Suspects: the
distillation term fighting the TD loss, the loss chosen for it (KL at tau 0.01 on Q-values), or
the DQN's own optimiser budget (Adam at lr 1e-4, one 64-sample update per 8 env steps) being
too small for distillation, which gets RMSProp at lr 1e-3 and 256-sample batches. Each variant
below is one ``poldist train-teacher`` run (net1 student, by default 150,000 env steps, evaluated
every 50,000, the kickstart weight held constant: ``--decay 100``) whose evals land in ``--out``
with its command::

    .venv/bin/python scripts/kickstart_check.py --out results/kickstart-check
    # the full schedule (weight 1 -> 0 over the first half of 1M steps) at the faster rate:
    .venv/bin/python scripts/kickstart_check.py --variants kl-w1-lr5e-4,dqn-lr5e-4 \
        --steps 1000000 --eval-interval 100000 --decay 0.5

``poldist report`` turns the folder into a table under the kickstarting section.
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import subprocess
import sys
from pathlib import Path

from poldist.experiments.reproduce import GAMES, teacher_card
from poldist.runs import write_json

# name -> extra flags (with the default --decay 100 the weight stays almost constant).
VARIANTS: dict[str, list[str]] = {
    "dqn": [],
    "kl-w1": ["--kickstart-loss", "kl", "--kickstart-weight", "1"],
    "kl-w100": ["--kickstart-loss", "kl", "--kickstart-weight", "100"],
    "mse-w1": ["--kickstart-loss", "mse", "--kickstart-weight", "1"],
    "nll-w1": ["--kickstart-loss", "nll", "--kickstart-weight", "1"],
    "kl-w1-lr5e-4": ["--kickstart-loss", "kl", "--kickstart-weight", "1", "--lr", "5e-4"],
    "dqn-lr5e-4": ["--lr", "5e-4"],  # is it the learning rate alone?
    # MSE matches the teacher's values, not just their order: does the policy survive the decay?
    "mse-w1-lr5e-4": ["--kickstart-loss", "mse", "--kickstart-weight", "1", "--lr", "5e-4"],
}


def command(game: str, name: str, run_dir: Path, args: argparse.Namespace) -> list[str]:
    """The ``poldist train-teacher`` command line of one variant."""
    cmd = ["poldist", "train-teacher", "--env-id", teacher_card(game)["env_id"], "--network", "net1"]
    cmd += ["--total-steps", str(args.steps), "--eval-interval", str(args.eval_interval)]
    cmd += ["--seed", str(args.seed)]
    if not name.startswith("dqn"):
        cmd += ["--kickstart-teacher", f"minatar/{game}", "--kickstart-decay", f"{args.decay:g}"]
    return cmd + VARIANTS[name] + ["--out", str(run_dir)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--game", default="asterix", choices=list(GAMES))
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated")
    parser.add_argument("--steps", type=int, default=150_000)
    parser.add_argument("--eval-interval", type=int, default=50_000)
    parser.add_argument(
        "--decay", type=float, default=100.0, help="kickstart decay (share of the run; 100: constant)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", default="runs/kickstart-check")
    parser.add_argument("--out", default="results/kickstart-check")
    args = parser.parse_args()
    unknown = sorted(set(args.variants.split(",")) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variants {unknown}: choose from {list(VARIANTS)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in args.variants.split(","):
        cell = f"{args.game}__{name}__{args.steps // 1000}k-decay{args.decay:g}__seed{args.seed}"
        result = out / f"{cell}.json"
        if result.exists():
            print(f"{result} exists: skipped")
            continue
        run_dir = Path(args.runs) / cell
        cmd = command(args.game, name, run_dir, args)
        print(shlex.join(cmd), flush=True)
        if not (run_dir / "summary.json").exists():  # else: finished before this result was written
            exe = [str(Path(sys.executable).with_name("poldist"))] + cmd[1:]
            resume = ["--resume"] if (run_dir / "state").exists() else []
            with open(f"{run_dir}.log", "w") as log:  # progress bars and errors
                subprocess.run(exe + resume, check=True, stdout=log, stderr=log)
        with open(run_dir / "evals.csv") as f:
            evals = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
        config = json.loads((run_dir / "summary.json").read_text())["config"]
        record = {"variant": name, "game": args.game, "decay": args.decay, "config": config}
        record["command"] = shlex.join(cmd)
        write_json(result, {**record, "evals": evals})
        scores = ", ".join(f"{int(e['env_steps']):,}: {e['score']:.2f}" for e in evals)
        print(f"{name}: {scores}", flush=True)


if __name__ == "__main__":
    main()
