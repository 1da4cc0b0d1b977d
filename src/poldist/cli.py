"""Command line: ``poldist <command> --help``.

Each long-running command takes its hyper-parameters from one config dataclass;
every field is a ``--flag`` (``--total-steps 3000000``), and ``--config FILE.json``
sets many at once (flags still override it).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any, NoReturn

from poldist import commands
from poldist.config import field_choices
from poldist.errors import PoldistError


class _Parser(argparse.ArgumentParser):
    """argparse with a bad argument reported like every other bad input: one line, exit code 2
    (argparse's default prints the whole usage block first)."""

    def error(self, message: str) -> NoReturn:
        raise PoldistError(f"{message} (see: {self.prog} --help)")


def _count(minimum: int) -> Any:
    """An argparse type: an int of at least ``minimum`` (argparse turns a refusal into one line)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def _probability(text: str) -> float:
    """An argparse type: a float in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value}")
    return value


def _add_dataclass_args(
    parser: argparse.ArgumentParser, cls: type, recipes: dict[str, dict[str, Any]] | None = None
) -> None:
    group = parser.add_argument_group(f"{cls.__name__} (hyper-parameters)")
    for f in dataclasses.fields(cls):
        flag = "--" + f.name.replace("_", "-")
        default = f.default
        kind = type(default)
        by_recipe = "".join(
            f"; {name} recipe: {values[f.name]!r}"
            for name, values in (recipes or {}).items()
            if f.name in values
        )
        help_text = f.metadata.get("help", "") + f" (default: {default!r}{by_recipe})"
        if kind is bool:
            group.add_argument(
                flag,
                dest=f.name,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=help_text,
            )
        else:
            group.add_argument(
                flag, dest=f.name, type=kind, default=None, choices=field_choices(cls, f.name), help=help_text
            )
    parser.add_argument("--config", type=Path, help="JSON file of config fields; flags override it")


def _add_run_command(
    sub: Any,
    name: str,
    cls: type,
    func: Any,
    *,
    help: str,
    description: str,
    recipes: dict[str, dict[str, Any]] | None = None,
) -> argparse.ArgumentParser:
    """A sub-command for a long job: the config dataclass's fields as flags, ``--out``, ``--resume``
    (and ``--recipe`` where the command has per-domain recipes)."""
    p = sub.add_parser(name, help=help, description=description)
    _add_dataclass_args(p, cls, recipes)
    if recipes:
        p.add_argument(
            "--recipe",
            choices=("auto", *recipes),
            default="auto",
            help="the settings the flags start from: auto (minatar for a MinAtar teacher, atari for an "
            "Atari one or an SB3 / CleanRL file, else paper) | "
            + " | ".join(recipes)
            + "; a --config file and the flags given override it (default: auto)",
        )
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.set_defaults(func=func)
    return p


# The demo's budget: the minatar recipe over 24k updates instead of 40k, to fit about 2 minutes of
# distillation on 2 cores; on Breakout it reached 102.3% of the reference score (README).
DEMO_UPDATES = 24_000

_CAPTURE_HELP = "also record the first episode of the {what} (same seed and protocol) to this .gif or .mp4"


def build_parser() -> argparse.ArgumentParser:
    """The ``poldist`` argument parser with all subcommands."""
    from poldist.dqn import DQNConfig
    from poldist.networks import DEVICE_HELP

    parser = _Parser(
        prog="poldist",
        description="Policy distillation (Rusu et al., 2015): train teachers, distil students, evaluate.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = _add_run_command(
        sub,
        "train-teacher",
        DQNConfig,
        commands.cmd_train_teacher,
        help="train a Double-DQN teacher",
        description="Train a Double-DQN teacher on one env; writes <out>/teacher.",
    )
    p.add_argument("--capture-video", type=Path, help=_CAPTURE_HELP.format(what="final evaluation"))

    from poldist.distillation import DistillConfig
    from poldist.recipes import RECIPES

    p = _add_run_command(
        sub,
        "distill",
        DistillConfig,
        commands.cmd_distill,
        help="distil a teacher into a student",
        description="Distil a teacher (checkpoint dir or shipped name) into a smaller student; "
        "writes <out>/student, <out>/summary.json and <out>/curve.png. The defaults are the paper's; "
        "a MinAtar teacher starts from the minatar recipe (RESULTS.md section 5b) unless --recipe says "
        "otherwise.",
        recipes=RECIPES,
    )
    p.add_argument("--capture-video", type=Path, help=_CAPTURE_HELP.format(what="student's final evaluation"))

    p = sub.add_parser(
        "evaluate",
        help="score a teacher or student",
        description="Mean episode return with epsilon-greedy play and a 95% bootstrap CI.",
    )
    p.add_argument("checkpoint", help="checkpoint directory or shipped name (e.g. minatar/breakout)")
    p.add_argument("--episodes", type=_count(1), default=100, help="episodes to score (default 100)")
    p.add_argument(
        "--epsilon", type=_probability, default=0.05, help="probability of a random action (default 0.05)"
    )
    p.add_argument("--seed", type=_count(0), default=12345, help="first env seed (default 12345)")
    p.add_argument("--task", type=_count(0), default=0, help="head of a multi-task network (default 0)")
    p.add_argument("--env-id", default="", help="evaluate on this env (default: the checkpoint's)")
    p.add_argument("--num-envs", type=_count(1), default=8, help="parallel envs (default 8)")
    p.add_argument(
        "--max-steps",
        type=_count(1),
        default=None,
        help="env-step budget over all envs, in env steps (unfinished episodes dropped)",
    )
    p.add_argument("--json", type=Path, help="also write the result here")
    p.add_argument("--device", default="auto", help=DEVICE_HELP + " (default: 'auto')")
    p.add_argument("--capture-video", type=Path, help=_CAPTURE_HELP.format(what="evaluation"))
    p.set_defaults(func=commands.cmd_evaluate)

    p = sub.add_parser(
        "record",
        help="a video (GIF or MP4) of a teacher or student playing, or of two side by side",
        description="Play with the evaluation protocol (epsilon 0.05, the env settings of the "
        "checkpoint) and write a video: MinAtar grids in MinAtar's colours, Atari screens in RGB, "
        "each panel headed by its name, the step and the running score. --vs: a second agent on the "
        "same env seed beside the first. GIF needs only Pillow; MP4 the video extra "
        "(pip install 'poldist[video]').",
    )
    p.add_argument("checkpoint", help="checkpoint directory, shipped name (e.g. minatar/breakout) or file")
    p.add_argument("--vs", help="a second agent on the same env and seed, drawn to the right")
    p.add_argument("--out", required=True, help="the video to write: FILE.gif or FILE.mp4")
    p.add_argument("--episodes", type=_count(1), default=1, help="episodes of each agent (default 1)")
    p.add_argument("--seed", type=_count(0), default=12345, help="env seed (default 12345)")
    p.add_argument("--epsilon", type=_probability, default=0.05, help="epsilon-greedy play (default 0.05)")
    p.add_argument("--max-steps", type=_count(1), default=None, help="at most this many env steps per agent")
    p.add_argument("--task", type=_count(0), default=0, help="head of a multi-task network (default 0)")
    p.add_argument("--env-id", default="", help="play this env (default: the checkpoint's)")
    p.add_argument("--fps", type=float, default=None, help="frames per second (default MinAtar 10, Atari 15)")
    p.add_argument(
        "--scale",
        type=int,
        default=None,
        help="pixels per MinAtar cell (default 20) or per Atari screen pixel (default 2)",
    )
    p.add_argument(
        "--labels",
        help="the panels' names, comma-separated, one per agent (default: the checkpoints as given)",
    )
    p.add_argument("--device", default="auto", help=DEVICE_HELP + " (default: 'auto')")
    p.set_defaults(func=commands.cmd_record)

    p = sub.add_parser(
        "demo",
        help="distil a shipped MinAtar teacher, compare, plot (a few minutes on CPU)",
        description="Distil a shipped MinAtar teacher into a student with ~7% of its parameters with "
        "the minatar recipe (what poldist distill runs for a MinAtar teacher), evaluate both, print a "
        "table, save a plot and summary.json.",
    )
    p.add_argument("--game", default="breakout", help="shipped MinAtar teacher (default: breakout)")
    p.add_argument("--student", default="net2", help="student size (default net2, ~7%% of the teacher)")
    p.add_argument(
        "--updates",
        type=_count(1),
        default=DEMO_UPDATES,
        help=f"student minibatch updates (default {DEMO_UPDATES:,}: the minatar recipe's schedule over "
        "this shorter budget, about 2 minutes of distillation on 2 CPU cores; the recipe itself is 40,000)",
    )
    p.add_argument("--episodes", type=_count(1), default=200, help="final evaluation episodes of each")
    p.add_argument(
        "--seed", type=_count(0), default=0, help="run seed: student init, sampling and env seeds (default 0)"
    )
    p.add_argument("--out", default="", help="run directory (default runs/demo-<game>-<time>)")
    p.set_defaults(func=commands.cmd_demo)

    from poldist.online import OnlineConfig

    _add_run_command(
        sub,
        "online",
        OnlineConfig,
        commands.cmd_online,
        help="online distillation: distil a teacher while it is still learning",
        description="Train a Double-DQN teacher and distil it into a student as it learns; writes "
        "<out>/online.csv (both scores against teacher env steps) and <out>/online.png.",
    )

    p = sub.add_parser(
        "zoo",
        help="list the shipped teachers and their scores",
        description="The shipped teachers (use them by name, e.g. --teacher minatar/breakout), their "
        "model-card scores (epsilon 0.05, 95% CI), a random policy's, and the MinAtar paper's DQN.",
    )
    p.add_argument("--markdown", action="store_true", help="a Markdown table")
    p.set_defaults(func=commands.cmd_zoo)

    p = sub.add_parser(
        "export",
        help="export a student or teacher to ONNX (runs with onnxruntime, without PyTorch)",
        description="Export a network checkpoint (directory or shipped name) to an ONNX file with a "
        "dynamic batch axis, a task input for multi-task networks, and its metadata embedded and in "
        "<out>.json; checks it against PyTorch. Run it with poldist.deploy.OnnxPolicy.",
    )
    p.add_argument("checkpoint", help="checkpoint directory or shipped name (e.g. minatar/breakout)")
    p.add_argument("--out", required=True, help="the .onnx file to write, e.g. student.onnx")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default: 17)")
    p.set_defaults(func=commands.cmd_export)

    p = sub.add_parser(
        "reproduce",
        help="run one of the paper's experiments on MinAtar (raw results per game and seed)",
        description="Run one experiment on every shipped MinAtar teacher: 'losses' (NLL, MSE, KL with "
        "tau 0.01/0.1/1, teacher-size students), 'compression' (KL students at 100/25/7/4% of the "
        "teacher), 'control' (teacher-, student-driven and mixed control, KL and entropy-regularised) "
        "'kickstart' (kickstarting vs distillation vs DQN from scratch, net1 students) or 'online' "
        "(online distillation on Breakout, 1M teacher steps per seed, into results/online). One raw "
        "JSON per game, variant and seed in "
        "<results>/raw; finished runs are skipped and interrupted ones resume. Then: poldist report.",
    )
    p.add_argument(
        "experiment",
        choices=["losses", "compression", "control", "kickstart", "online"],
        help="which experiment (see above)",
    )
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    p.add_argument("--games", default="", help="comma-separated MinAtar games (default: all five)")
    p.add_argument("--runs", default="runs/reproduce", help="where the run directories go")
    p.add_argument("--results", default="results/reproduce", help="where raw results go")
    p.add_argument("--shard", default="0/1", help="i/n: run every n-th cell from i (n processes, n cores)")
    p.add_argument(
        "--protocol",
        choices=["auto", "fresh", "legacy"],
        default="auto",
        help="'fresh': each seed on env seeds of its own, 200 final episodes (losses and compression); "
        "'legacy': neighbouring seeds sharing env seeds, 50 final episodes, as sections 1-5 were "
        "first made; 'auto' (default): fresh where the experiment has it, else legacy",
    )
    p.set_defaults(func=commands.cmd_reproduce)

    p = sub.add_parser(
        "report",
        help="turn committed raw results into RESULTS.md tables and PNG plots",
        description="Read <results>/reproduce/raw, <results>/multitask, <results>/online-* and "
        "<results>/bench.json; write RESULTS.md (tables with 95% bootstrap CIs over seeds, IQM and "
        "geometric mean by rliable) and PNG plots in <results>/plots.",
    )
    p.add_argument("--results", default="results", help="the results folder (default: results)")
    p.add_argument("--out", default="RESULTS.md", help="the Markdown file to write")
    p.set_defaults(func=commands.cmd_report)

    from poldist.experiments import bench

    p = sub.add_parser(
        "bench",
        help="measure speed and memory on this machine (updates, collection, inference, time to 95%%)",
        description="The library against bare baselines, each ratio measured in one run: distillation "
        "updates/s vs a bare PyTorch loop, teacher-labelled transitions/s vs random env steps, "
        "inference of teacher vs students (torch, onnxruntime), wall time to 95% of the teacher by "
        "distillation vs Double DQN from scratch, replay-memory bytes per transition, Atari teacher "
        "training vs a bare CleanRL-style DQN loop. About 30 min on 2 CPU cores (--only: some sections).",
    )
    bench.add_arguments(p)
    p.set_defaults(func=commands.cmd_bench)

    p = sub.add_parser(
        "publish-teacher",
        help="copy a trained teacher into the shipped zoo with a model card",
        description="Copy <run_dir>/teacher into the package's zoo under --name, evaluate it and a "
        "random policy, and write MODEL_CARD.md, card.json and curve.png beside it.",
    )
    p.add_argument("run_dir", help="a finished train-teacher run directory")
    p.add_argument("--name", required=True, help="short name, e.g. minatar/breakout")
    p.add_argument(
        "--episodes", type=_count(1), default=100, help="episodes of the card's score (default 100)"
    )
    p.add_argument("--seed", type=int, default=12345, help="env seed of the card's score")
    p.add_argument(
        "--reference-episodes",
        type=int,
        default=1000,
        help="episodes of the reference score, the yardstick of percent-of-teacher (0: none)",
    )
    p.add_argument(
        "--half",
        action="store_true",
        help="store the weights in half precision; the card compares the score with full precision",
    )
    p.add_argument(
        "--notes", default="", help="a paragraph for the model card (e.g. where the settings come from)"
    )
    p.add_argument(
        "--checkpoint",
        default=None,
        help="publish this network carried from run_dir at some step (scripts/carry_run.py weights) "
        "instead of run_dir/teacher; the card stops at that step",
    )
    p.set_defaults(func=commands.cmd_publish_teacher)

    p = sub.add_parser(
        "reference-score",
        help="score a shipped teacher on reserved env seeds: the yardstick of percent-of-teacher",
        description="Evaluate a shipped teacher (or all) for --episodes episodes at epsilon 0.05 on env "
        "seeds that no training, selection or student evaluation uses, and store the mean, its 95% CI "
        "and every return in its card.json (as 'reference') and MODEL_CARD.md. Reports divide by it.",
    )
    p.add_argument("name", help="shipped teacher, e.g. minatar/breakout, or 'all'")
    p.add_argument("--episodes", type=_count(1), default=1000, help="episodes (default 1000)")
    p.set_defaults(func=commands.cmd_reference_score)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``poldist`` command; returns the exit code."""
    try:
        args = build_parser().parse_args(argv)
        args.func(args)
    except PoldistError as e:
        print(f"poldist: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("poldist: interrupted; resume with --resume from the last checkpoint", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
