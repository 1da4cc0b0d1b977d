"""Multi-task on MinAtar: one student distilled from the five shipped teachers vs the multi-task DQN.

One command, resumable: a stage whose numbers are in the seed's results.json is not rerun (a fresh
clone has no runs/), and the long DQN run resumes from its last checkpoint (about 3 hours on one
core; ``scripts/carry_run.py`` moves an unfinished one to another machine):

    .venv/bin/python scripts/multitask_minatar.py            # everything (the DQN baseline: hours)
    .venv/bin/python scripts/multitask_minatar.py --skip-dqn # the students only (minutes)

The network is the paper's multi-task one (the teacher's trunk, a 128-unit hidden layer and an output
layer per game; --head-hidden 0 for linear heads), for the students and the DQN alike.

Writes results/multitask/seed<S>/results.json (raw per-game numbers) and table.md beside it, and
copies each student run's config, summary, evals.csv and curve there; `poldist report` reads them.
The multi-task DQN gets as many env steps as the five teachers had together (their model cards).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from poldist.distillation import DistillConfig, distill
from poldist.dqn import DQNConfig, train_dqn
from poldist.evaluation import evaluate, geometric_mean, percent_of_teacher
from poldist.plotting import plot_learning_curve
from poldist.recipes import RECIPES
from poldist.runs import resume_or_clear, write_json
from poldist.tables import format_table
from poldist.teachers import ZOO, load_teacher, zoo_names

EPISODES = 100
SEED = 12345


def keep_run_files(
    run: Path,
    out: Path,
    teacher_scores: list[float],
    names: list[str],
    label: str = "student",
    x: str = "updates",
) -> None:
    """Plot the run's curve (once; score against ``x``) and copy its small files to
    ``out/<run name>``, beside the table."""
    if not (run / "curve.png").exists():
        plot_learning_curve(
            run / "evals.csv",
            run / "curve.png",
            teacher_scores=teacher_scores,
            task_names=names,
            x=x,
            label=label,
        )
    keep = out / run.name
    keep.mkdir(exist_ok=True)
    for f in ("config.json", "summary.json", "evals.csv", "curve.png"):
        shutil.copy2(run / f, keep / f)


def save_results(out: Path, rows: dict[str, dict], names: list[str], student_runs: dict[str, dict]) -> str:
    """Write ``out/results.json`` and ``out/table.md`` with the methods finished so far; return the table.

    Called after every stage, so a seed whose DQN is still running already shows its students.
    """
    methods = [m for m in ("multi_dist_kl", "multi_dist_nll", "multi_dqn") if m in rows[names[0]]]
    table_rows, geo = [], {}
    for name in names:
        r = rows[name]
        cells = [name, r["teacher_score"]]
        for m in methods:
            r[f"{m}_percent"] = percent_of_teacher(r[m], r["teacher_score"])
            cells += [r[m], r[f"{m}_percent"]]
        table_rows.append(cells)
    for m in methods:
        geo[m] = geometric_mean([rows[n][f"{m}_percent"] for n in names])
    table_rows.append(["geometric mean", ""] + sum([["", geo[m]] for m in methods], []))
    headers = ["game", "teacher"] + sum([[m, f"{m} %"] for m in methods], [])
    table = format_table(headers, table_rows)
    write_json(
        out / "results.json",
        {
            "per_game": rows,
            "geometric_mean_percent": geo,
            "episodes": EPISODES,
            "students": student_runs,
            "command": "python " + " ".join(sys.argv),
        },
    )
    (out / "table.md").write_text("```\n" + table + "\n```\n")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--runs", default="", help="default runs/multitask (seed 0), runs/multitask-seed<S>")
    parser.add_argument("--out", default="", help="default results/multitask/seed<S>")
    parser.add_argument(
        "--recipe",
        default="",
        choices=("", "minatar"),
        help="students start from this recipe (poldist.recipes; its tau, lr schedule, acting, batch, "
        "optimizer, transitions per update, memory); --updates then defaults to 40,000 per game",
    )
    parser.add_argument(
        "--updates", type=int, default=0, help="student updates, all games (default 300,000; recipe: 200,000)"
    )
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--memory-size", type=int, default=500_000, help="transitions per game")
    parser.add_argument("--skip-dqn", action="store_true", help="students only")
    parser.add_argument("--losses", default="kl,nll", help="student losses, comma-separated")
    parser.add_argument("--tau", type=float, default=0.0, help="KL temperature (0: the default, 0.01)")
    parser.add_argument(
        "--tau-gap",
        type=float,
        default=0.0,
        help="if > 0: each game's KL temperature is this times its teacher's median top-2 output gap "
        "(overrides --tau and the recipe's)",
    )
    parser.add_argument(
        "--student", default="teacher", help="student size: teacher, or widths like 32/256 (~4x)"
    )
    parser.add_argument(
        "--head-hidden",
        type=int,
        default=128,
        help="units of the per-game hidden layer, students and DQN (the paper's 128; 0: linear heads)",
    )
    parser.add_argument(
        "--num-envs",
        type=int,
        default=8,
        help="envs per game, with --recipe (count; default 8, as the committed recipe runs; the "
        "recipe's own is 16 since issue 22)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--env-seeds",
        default="offset",
        choices=("offset", "disjoint"),
        help="students' env seeds: offset (as the committed results were made) | disjoint (issue 18)",
    )
    parser.add_argument(
        "--lr-schedule",
        default="constant",
        choices=("constant", "linear", "cosine"),
        help="students' learning rate",
    )
    parser.add_argument(
        "--final-episodes", type=int, default=EPISODES, help="episodes of each game's final student score"
    )
    args = parser.parse_args()
    # the committed recipe runs stepped 8 envs per game (before the recipe's 16, issue 22): the
    # default, so that rerunning a command in results/multitask makes what it made
    recipe = {**RECIPES[args.recipe], "num_envs": args.num_envs} if args.recipe else {}
    args.updates = args.updates or (40_000 * 5 if recipe else 300_000)
    runs = Path(args.runs or ("runs/multitask" if args.seed == 0 else f"runs/multitask-seed{args.seed}"))
    out = Path(args.out or f"results/multitask/seed{args.seed}")
    out.mkdir(parents=True, exist_ok=True)
    names = [n for n in zoo_names() if n.startswith("minatar/")]
    cards = {n: json.loads((ZOO / n / "card.json").read_text()) for n in names}
    rows = {n: {"teacher_score": cards[n]["eval"]["mean"]} for n in names}
    # runs/ is scratch (a fresh clone has none): a method already in results.json is kept, not rerun
    done = json.loads((out / "results.json").read_text()) if (out / "results.json").exists() else {}
    student_runs: dict[str, dict] = {}

    def reuse(method: str, run: Path) -> bool:
        """Take ``method``'s numbers from the seed's results.json if it holds them for ``run``."""
        prior = done.get("students", {}).get(method, {})
        if prior.get("run") != run.name or (run / "summary.json").exists():
            return False
        for n in names:
            rows[n][method] = done["per_game"][n][method]
        student_runs[method] = prior
        return True

    suffix = f"-tau{args.tau:g}" if args.tau else ""
    suffix += f"-taugap{args.tau_gap:g}" if args.tau_gap else ""
    hh = f"-hh{args.head_hidden}" if args.head_hidden else ""  # run names: linear heads have none
    arch = hh
    # settings of issue 18's protocol name their runs; the committed runs' names stay as they were
    arch += "-cosine" if args.lr_schedule == "cosine" else "-linear" if args.lr_schedule == "linear" else ""
    arch += "-disjoint" if args.env_seeds == "disjoint" else ""
    arch += f"-{args.recipe}-recipe" if recipe else ""
    arch += f"-envs{args.num_envs}" if recipe and args.num_envs != 8 else ""
    if args.student != "teacher":
        arch += "-" + args.student.replace(",", "-").replace("/", "x")
    for loss in args.losses.split(","):
        run = runs / f"multi-dist-{loss}{suffix if loss == 'kl' else ''}{arch}"
        if reuse(f"multi_dist_{loss}", run):
            continue
        if not (run / "summary.json").exists():
            # a recipe's training fields, else this script's flags; the protocol below always wins
            skip = ("updates", "eval_interval", "eval_episodes", "checkpoint_interval")
            fields = {k: v for k, v in recipe.items() if k not in skip} or {
                "batch_size": args.batch_size,
                "lr": args.lr,
                "memory_size": args.memory_size,
                "lr_schedule": args.lr_schedule,
            }
            fields["tau"] = (args.tau or fields.get("tau", 0.0)) if loss == "kl" else 0.0
            fields["tau_gap"] = args.tau_gap if loss == "kl" else 0.0
            cfg = DistillConfig(
                **fields,
                teacher=",".join(names),
                student=args.student,
                head_hidden=args.head_hidden,
                loss=loss,
                updates=args.updates,
                eval_interval=args.updates // 10,
                checkpoint_interval=args.updates // 10,  # five memories: GBs per checkpoint
                final_eval_episodes=args.final_episodes,
                evaluate_teacher=False,  # teachers are scored by their reference scores
                seed=args.seed,
                env_seeds=args.env_seeds,
                labeller="torch",  # as the committed results were made (before onnxruntime was the default)
            )
            distill(cfg, run, resume=resume_or_clear(run))
        summary = json.loads((run / "summary.json").read_text())
        keep_run_files(run, out, [rows[n]["teacher_score"] for n in names], names)
        for name, task in zip(names, summary["tasks"]):
            rows[name][f"multi_dist_{loss}"] = task["student_score"]
        student_runs[f"multi_dist_{loss}"] = {
            "run": run.name,
            "tau": summary["config"]["tau"] or 0.01,
            "tau_gap": summary["config"].get("tau_gap", 0.0),
            "head_hidden": args.head_hidden,
            "student": args.student,
            "lr_schedule": summary["config"]["lr_schedule"],
            "env_seeds": args.env_seeds,
            "recipe": args.recipe,
            "num_envs": summary["config"]["num_envs"],
            "control": summary["config"]["control"],
            "params": summary["student_params"],
        }
        save_results(out, rows, names, student_runs)

    run = runs / f"multi-dqn{hh}"
    if not args.skip_dqn and not reuse("multi_dqn", run):
        if not (run / "summary.json").exists():
            cfg = DQNConfig(
                env_id=",".join(cards[n]["env_id"] for n in names),
                total_steps=sum(cards[n]["env_steps"] for n in names),
                head_hidden=args.head_hidden,
                eval_interval=500_000,
                checkpoint_interval=500_000,
                seed=args.seed,
                eval_seeds="fixed",  # the scheme the committed multi-task DQN was trained with
            )
            train_dqn(cfg, run, resume=resume_or_clear(run))
        keep_run_files(
            run, out, [rows[n]["teacher_score"] for n in names], names, "multi-task DQN", "env_steps"
        )
        for i, name in enumerate(names):
            head = load_teacher(run / "teacher", task=i)
            rows[name]["multi_dqn"] = evaluate(head, head.env, EPISODES, seed=SEED).mean
        student_runs["multi_dqn"] = {"run": run.name, "head_hidden": args.head_hidden}
        save_results(out, rows, names, student_runs)

    print(save_results(out, rows, names, student_runs))


if __name__ == "__main__":
    main()
