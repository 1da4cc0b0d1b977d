"""Command line: ``poldist <command> --help``.

Each long-running command takes its hyper-parameters from one config dataclass;
every field is a ``--flag`` (``--total-steps 3000000``), and ``--config FILE.json``
sets many at once (flags still override it).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, NoReturn

from poldist.config import config_values, resumed_config
from poldist.errors import PoldistError
from poldist.runs import write_json
from poldist.tables import format_table


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


def _add_dataclass_args(parser: argparse.ArgumentParser, cls: type) -> None:
    group = parser.add_argument_group(f"{cls.__name__} (hyper-parameters)")
    for f in dataclasses.fields(cls):
        flag = "--" + f.name.replace("_", "-")
        default = f.default
        kind = type(default)
        help_text = f.metadata.get("help", "") + f" (default: {default!r})"
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
                flag, dest=f.name, type=kind, default=None, choices=f.metadata.get("choices"), help=help_text
            )
    parser.add_argument("--config", type=Path, help="JSON file of config fields; flags override it")


def _add_run_command(
    sub: Any, name: str, cls: type, func: Any, *, help: str, description: str
) -> argparse.ArgumentParser:
    """A sub-command for a long job: the config dataclass's fields as flags, ``--out``, ``--resume``."""
    p = sub.add_parser(name, help=help, description=description)
    _add_dataclass_args(p, cls)
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.set_defaults(func=func)
    return p


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PoldistError(f"cannot read {what} {path}: {e}") from e


def _build_config(cls: type, args: argparse.Namespace) -> Any:
    """The command's config: the ``--config`` file, then the flags given; on ``--resume`` of a run
    that recorded its config, that config, with only the changes a resume may make (recorded in
    ``<out>/config_changes.json``)."""
    values: dict[str, Any] = {}
    names = {f.name for f in dataclasses.fields(cls)}
    if args.config is not None:
        values.update(config_values(cls, _read_json(args.config, "config"), f"config {args.config}"))
    for name in names:
        v = getattr(args, name)
        if v is not None:
            values[name] = v
    out = Path(args.out)
    stored = out / "config.json"
    # only a run with a checkpoint can resume; without one the command says so itself
    has_checkpoint = any((out / d / "state" / "meta.json").exists() for d in (".", "teacher-run"))
    if args.resume and stored.exists() and has_checkpoint:
        cfg, changes = resumed_config(cls, _read_json(stored, "the run's config"), values, str(stored))
        if changes:
            log = out / "config_changes.json"
            history = _read_json(log, "the run's config changes") if log.exists() else []
            write_json(log, [*history, {"command": " ".join(["poldist", *sys.argv[1:]]), "changes": changes}])
            print("resuming with " + ", ".join(f"{k} {a} -> {b}" for k, (a, b) in changes.items()))
        return cfg
    cfg = cls(**values)
    cfg.validate()  # before anything is made on disk
    return cfg


def _record_command(out: str | Path) -> None:
    """Append this invocation to ``<out>/commands.txt`` (model cards quote it)."""
    path = Path(out) / "commands.txt"
    with path.open("a") as f:
        f.write(" ".join(["poldist", *sys.argv[1:]]) + "\n")


def _cmd_train_teacher(args: argparse.Namespace) -> None:
    from poldist.dqn import DQNConfig, DQNTrainer

    cfg = _build_config(DQNConfig, args)
    _check_capture_path(args)
    with DQNTrainer(cfg, args.out, resume=args.resume) as trainer:
        _record_command(trainer.run_dir)  # the run dir is set up: a killed run keeps its command too
        trainer.run(cfg.total_steps)
        summary = trainer.finish(stopped_early=False)
    print(json.dumps(summary["final_eval"], indent=2))
    print(f"teacher checkpoint: {Path(args.out) / 'teacher'}")
    if args.capture_video is not None:
        # the final evaluation of train_dqn: seed + 10**6, eval_epsilon, eval_episodes, 8 copies
        _capture_final(args, Path(args.out) / "teacher", cfg.seed + 10**6, cfg.eval_episodes, cfg)


def _check_capture_path(args: argparse.Namespace) -> None:
    """Refuse a bad ``--capture-video`` file name before any work."""
    if getattr(args, "capture_video", None) is not None:
        from poldist.record import check_video_path

        check_video_path(args.capture_video)


def _capture_final(args: argparse.Namespace, checkpoint: Path, seed: int, episodes: int, cfg: Any) -> None:
    """Record the first episode of a run's final evaluation of ``checkpoint`` (task 0) again."""
    from poldist.networks import resolve_device
    from poldist.record import capture_episode
    from poldist.teachers import load_teacher

    device = resolve_device(cfg.device)
    model = load_teacher(checkpoint, device=device)
    epsilon = getattr(cfg, "eval_epsilon", 0.05)
    rec = capture_episode(
        model,
        model.env,
        args.capture_video,
        name=str(checkpoint),
        episodes=episodes,
        seed=seed,
        epsilon=epsilon,
        device=device,
    )
    print(rec)


def _distill_table(summary: dict[str, Any]) -> str:
    rows = []
    for t in summary["tasks"]:
        rows.append(
            [
                t["env_id"],
                t.get("teacher_score", float("nan")),
                t["student_score"],
                t.get("percent_of_teacher", float("nan")),
                t["agreement"] * 100,
            ]
        )
    table = format_table(["env", "teacher score", "student score", "% of teacher", "% same action"], rows)
    sizes = format_table(
        ["teacher params", "student params", "compression", "wall time (s)"],
        [
            [
                summary["teacher_params"],
                summary["student_params"],
                f"{100 * summary['compression']:.1f}% ({1 / summary['compression']:.1f}x smaller)",
                summary["wall_seconds"],
            ]
        ],
    )
    return table + "\n\n" + sizes


def _cmd_distill(args: argparse.Namespace) -> None:
    from poldist.distillation import DistillConfig, distill
    from poldist.plotting import plot_learning_curve

    cfg = _build_config(DistillConfig, args)
    _check_capture_path(args)
    summary = distill(cfg, args.out, resume=args.resume)
    out = Path(args.out)
    plot_learning_curve(
        out / "evals.csv",
        out / "curve.png",
        teacher_scores=[t.get("teacher_score") for t in summary["tasks"]] if cfg.evaluate_teacher else None,
        task_names=[t["env_id"] for t in summary["tasks"]],
    )
    print(_distill_table(summary))
    print(
        f"student checkpoint: {out / 'student'}\nplot: {out / 'curve.png'}\nsummary: {out / 'summary.json'}"
    )
    if args.capture_video is not None:
        from poldist.envs import run_env_seed

        # the final evaluation of distill: its "final" env seed, epsilon 0.05, 8 copies
        seed = run_env_seed(cfg.env_seeds, cfg.seed, "final")
        _capture_final(args, out / "student", seed, cfg.final_eval_episodes, cfg)


def _cmd_evaluate(args: argparse.Namespace) -> None:
    from poldist.envs import make_env_spec
    from poldist.evaluation import evaluate
    from poldist.networks import resolve_device
    from poldist.runs import write_json
    from poldist.teachers import check_teacher_fits, load_teacher

    _check_capture_path(args)
    device = resolve_device(args.device)
    model = load_teacher(args.checkpoint, task=args.task, env_id=args.env_id, device=device)
    spec = model.env
    if args.env_id:
        spec = make_env_spec(args.env_id)
        check_teacher_fits(model, spec)
    res = evaluate(
        model,
        spec,
        args.episodes,
        epsilon=args.epsilon,
        seed=args.seed,
        num_envs=args.num_envs,
        max_total_steps=args.max_steps,
        device=device,
    )
    print(f"{spec.env_id}: {res}")
    if args.capture_video is not None:
        from poldist.record import capture_episode

        rec = capture_episode(
            model,
            spec,
            args.capture_video,
            name=str(args.checkpoint),
            episodes=args.episodes,
            seed=args.seed,
            epsilon=args.epsilon,
            num_envs=args.num_envs,
            max_total_steps=args.max_steps,
            device=device,
        )
        print(rec)
    if args.json:
        write_json(
            args.json,
            {
                "env_id": spec.env_id,
                "checkpoint": str(args.checkpoint),
                "epsilon": args.epsilon,
                "seed": args.seed,
                "device": str(device),
                **res.to_dict(),
            },
        )


def _cmd_record(args: argparse.Namespace) -> None:
    import torch

    from poldist.networks import resolve_device
    from poldist.record import record

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one observation a step: a second thread only waits (14 ms -> 1 ms a step)
    try:
        rec = record(
            args.checkpoint,
            args.out,
            vs=args.vs,
            episodes=args.episodes,
            seed=args.seed,
            epsilon=args.epsilon,
            max_steps=args.max_steps,
            task=args.task,
            env_id=args.env_id,
            fps=args.fps,
            scale=args.scale,
            device=resolve_device(args.device),
        )
    finally:
        torch.set_num_threads(threads)
    print(rec)


def _cmd_demo(args: argparse.Namespace) -> None:
    import time

    from poldist.distillation import DistillConfig, distill
    from poldist.evaluation import percent_of_teacher
    from poldist.plotting import plot_learning_curve
    from poldist.runs import write_json
    from poldist.zoo import reference_mean

    game = args.game.lower().replace("-", "_")
    out = Path(args.out or f"runs/demo-{game}-{time.strftime('%Y%m%d-%H%M%S')}")
    cfg = DistillConfig(
        teacher=f"minatar/{game}",
        student=args.student,
        updates=args.updates,
        batch_size=64,
        eval_interval=max(1, args.updates // 10),
        eval_episodes=20,
        final_eval_episodes=args.episodes,
        seed=args.seed,
    )
    reference = reference_mean(cfg.teacher)  # the yardstick (issue 18), checked before any work
    if reference is None:
        raise PoldistError(f"{cfg.teacher} has no reference score: poldist reference-score {cfg.teacher}")
    print(
        f"poldist demo: distilling the shipped MinAtar {game} teacher into a {cfg.student} student "
        f"({cfg.updates:,} KL updates of batch {cfg.batch_size}, tau 0.01), run directory {out}"
    )
    start = time.perf_counter()
    summary = distill(cfg, out)
    wall = time.perf_counter() - start
    task = summary["tasks"][0]
    plot_learning_curve(
        out / "evals.csv",
        out / "curve.png",
        teacher_scores=[task["teacher_score"]],
        task_names=[f"{task['env_id']}: {cfg.student} student (KL) vs teacher"],
    )
    demo = {
        "env_id": task["env_id"],
        "teacher_reference_score": reference,
        "teacher_score": task["teacher_score"],
        "teacher_ci": task["teacher_ci"],
        "student_score": task["student_score"],
        "student_ci": task["student_ci"],
        "percent_of_teacher": percent_of_teacher(task["student_score"], reference),
        "percent_of_teacher_paired": task["percent_of_teacher"],
        "agreement": task["agreement"],
        "teacher_params": summary["teacher_params"],
        "student_params": summary["student_params"],
        "compression": summary["compression"],
        "eval_episodes": cfg.final_eval_episodes,
        "updates": summary["updates"],
        "wall_seconds": wall,
        "machine": summary["machine"],
        "command": " ".join(["poldist", "demo", *sys.argv[2:]]),
        "config": summary["config"],
    }
    write_json(out / "summary.json", demo)
    print()
    print(_distill_table({**summary, "wall_seconds": wall}))
    print(
        f"\nagainst the teacher's reference score {reference:.2f} (1,000 episodes on reserved env seeds): "
        f"student at {demo['percent_of_teacher']:.1f}%"
    )
    print(f"plot: {out / 'curve.png'}\nsummary: {out / 'summary.json'}")


def _cmd_online(args: argparse.Namespace) -> None:
    from poldist.online import OnlineConfig, online_distill

    cfg = _build_config(OnlineConfig, args)
    summary = online_distill(cfg, args.out, resume=args.resume)
    out = Path(args.out)
    student = summary["student"]["tasks"][0]
    print(
        f"final teacher {student.get('teacher_score', float('nan')):.2f}, "
        f"student {student['student_score']:.2f} ({student.get('percent_of_teacher', float('nan')):.1f}%)"
    )
    print(f"scores on one time axis: {out / 'online.csv'}\nplot: {out / 'online.png'}")


def _cmd_export(args: argparse.Namespace) -> None:
    from poldist.export import export_onnx

    path = export_onnx(args.checkpoint, args.out, opset=args.opset)
    info = json.loads(path.with_name(path.name + ".json").read_text())
    rows = [
        [i, env, "x".join(map(str, shape)), n]
        for i, (env, shape, n) in enumerate(zip(info["env_ids"], info["obs_shapes"], info["n_actions"]))
    ]
    print(format_table(["task", "env", "obs shape", "actions"], rows))
    inputs = "obs uint8 (batch, " + ", ".join(map(str, info["input_shape"])) + ")"
    if len(info["n_actions"]) > 1:
        inputs += ", task int64 (batch,)"
    print(
        f"\nexported {args.checkpoint} to {path} "
        f"({path.stat().st_size:,} bytes, ONNX opset {info['opset']})\n"
        f"inputs: {inputs}\noutputs: outputs float32 (batch, {info['max_actions']}), actions int64 (batch,)\n"
        f"metadata: {path}.json\n"
        f"run it without PyTorch: poldist.deploy.OnnxPolicy({str(path)!r}).act(obs)"
    )


def _cmd_publish_teacher(args: argparse.Namespace) -> None:
    from poldist.zoo import check_zoo_name, publish_teacher

    check_zoo_name(args.name)
    dest = publish_teacher(
        args.run_dir,
        args.name,
        episodes=args.episodes,
        seed=args.seed,
        reference_episodes=args.reference_episodes,
        half=args.half,
        notes=args.notes,
    )
    print((dest / "MODEL_CARD.md").read_text())
    print(f"published: {dest}")


def _cmd_reference_score(args: argparse.Namespace) -> None:
    from poldist.teachers import zoo_names
    from poldist.zoo import reference_score

    names = zoo_names() if args.name == "all" else [args.name]
    if args.name != "all" and args.name not in zoo_names():
        raise PoldistError(f"no shipped teacher {args.name!r}: choose from {zoo_names()} or 'all'")
    if args.episodes <= 0:
        raise PoldistError("--episodes must be positive")
    for name in names:
        ref = reference_score(name, episodes=args.episodes)
        ci = f"[{ref['ci_low']:.2f}, {ref['ci_high']:.2f}]"
        print(f"{name}: {ref['mean']:.2f} {ci} ({ref['episodes']} episodes)", flush=True)


def _int_list(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError as e:
        raise PoldistError(f"expected comma-separated integers, got {text!r}") from e


def _cmd_reproduce(args: argparse.Namespace) -> None:
    from poldist.experiments.reproduce import run_experiment, run_online

    if args.experiment == "online":
        for d in run_online(_int_list(args.seeds), runs=args.runs):
            print(f"online distillation: {d}")
        return
    try:
        i, n = (int(x) for x in args.shard.split("/"))
    except ValueError as e:
        raise PoldistError(f"--shard wants i/n (e.g. 0/2), got {args.shard!r}") from e
    games = [g.strip() for g in args.games.split(",") if g.strip()] or None
    records = run_experiment(
        args.experiment,
        _int_list(args.seeds),
        games=games,
        runs=args.runs,
        results=args.results,
        shard=(i, n),
    )
    rows = [
        [r["game"], r["student"], r["variant"], r["seed"], r["student_score"], r["percent_of_teacher"]]
        for r in records
    ]
    print(format_table(["game", "student", "loss", "seed", "score", "% of teacher"], rows))
    print(f"raw results: {Path(args.results) / 'raw'}; tables: poldist report")


def _cmd_report(args: argparse.Namespace) -> None:
    from poldist.experiments.report import write_report

    path = write_report(Path(args.results), Path(args.out))
    print(f"wrote {path} (plots in {Path(args.results) / 'plots'})")


def _cmd_bench(args: argparse.Namespace) -> None:
    from poldist.experiments.bench import run_from_args

    run_from_args(args)


def _cmd_zoo(args: argparse.Namespace) -> None:
    from poldist.zoo import zoo_table

    print(zoo_table(markdown=args.markdown))


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
        _cmd_train_teacher,
        help="train a Double-DQN teacher",
        description="Train a Double-DQN teacher on one env; writes <out>/teacher.",
    )
    p.add_argument("--capture-video", type=Path, help=_CAPTURE_HELP.format(what="final evaluation"))

    from poldist.distillation import DistillConfig

    p = _add_run_command(
        sub,
        "distill",
        DistillConfig,
        _cmd_distill,
        help="distil a teacher into a student",
        description="Distil a teacher (checkpoint dir or shipped name) into a smaller student; "
        "writes <out>/student, <out>/summary.json and <out>/curve.png.",
    )
    p.add_argument("--capture-video", type=Path, help=_CAPTURE_HELP.format(what="student's final evaluation"))

    p = sub.add_parser(
        "evaluate",
        help="score a teacher or student",
        description="Mean episode return with epsilon-greedy play and a 95%% bootstrap CI.",
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
    p.set_defaults(func=_cmd_evaluate)

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
    p.add_argument("--device", default="auto", help=DEVICE_HELP + " (default: 'auto')")
    p.set_defaults(func=_cmd_record)

    p = sub.add_parser(
        "demo",
        help="distil a shipped MinAtar teacher, compare, plot (a few minutes on CPU)",
        description="Distil a shipped MinAtar teacher into a student with ~7%% of its parameters, "
        "evaluate both, print a table, save a plot and summary.json.",
    )
    p.add_argument("--game", default="breakout", help="shipped MinAtar teacher (default: breakout)")
    p.add_argument("--student", default="net2", help="student size (default net2, ~7%% of the teacher)")
    p.add_argument("--updates", type=_count(1), default=60_000, help="student minibatch updates (batch 64)")
    p.add_argument("--episodes", type=_count(1), default=200, help="final evaluation episodes of each")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="", help="run directory (default runs/demo-<game>-<time>)")
    p.set_defaults(func=_cmd_demo)

    from poldist.online import OnlineConfig

    _add_run_command(
        sub,
        "online",
        OnlineConfig,
        _cmd_online,
        help="online distillation: distil a teacher while it is still learning",
        description="Train a Double-DQN teacher and distil it into a student as it learns; writes "
        "<out>/online.csv (both scores against teacher env steps) and <out>/online.png.",
    )

    p = sub.add_parser(
        "zoo",
        help="list the shipped teachers and their scores",
        description="The shipped teachers (use them by name, e.g. --teacher minatar/breakout), their "
        "model-card scores (epsilon 0.05, 95%% CI), a random policy's, and the MinAtar paper's DQN.",
    )
    p.add_argument("--markdown", action="store_true", help="a Markdown table")
    p.set_defaults(func=_cmd_zoo)

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
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser(
        "reproduce",
        help="run one of the paper's experiments on MinAtar (raw results per game and seed)",
        description="Run one experiment on every shipped MinAtar teacher: 'losses' (NLL, MSE, KL with "
        "tau 0.01/0.1/1, teacher-size students), 'compression' (KL students at 100/25/7/4%% of the "
        "teacher), 'control' (teacher-, student-driven and mixed control, KL and entropy-regularised) "
        "'kickstart' (kickstarting vs distillation vs DQN from scratch, net1 students) or 'online' "
        "(online distillation on Breakout, 1M teacher steps per seed, into results/online). One raw "
        "JSON per game, variant and seed in "
        "<results>/raw; finished runs are skipped and interrupted ones resume. Then: poldist report.",
    )
    p.add_argument("experiment", choices=["losses", "compression", "control", "kickstart", "online"])
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    p.add_argument("--games", default="", help="comma-separated MinAtar games (default: all five)")
    p.add_argument("--runs", default="runs/reproduce", help="where the run directories go")
    p.add_argument("--results", default="results/reproduce", help="where raw results go")
    p.add_argument("--shard", default="0/1", help="i/n: run every n-th cell from i (n processes, n cores)")
    p.set_defaults(func=_cmd_reproduce)

    p = sub.add_parser(
        "report",
        help="turn committed raw results into RESULTS.md tables and PNG plots",
        description="Read <results>/reproduce/raw, <results>/multitask, <results>/online-* and "
        "<results>/bench.json; write RESULTS.md (tables with 95%% bootstrap CIs over seeds, IQM and "
        "geometric mean by rliable) and PNG plots in <results>/plots.",
    )
    p.add_argument("--results", default="results", help="the results folder (default: results)")
    p.add_argument("--out", default="RESULTS.md", help="the Markdown file to write")
    p.set_defaults(func=_cmd_report)

    from poldist.experiments import bench

    p = sub.add_parser(
        "bench",
        help="measure speed and memory on this machine (updates, collection, inference, time to 95%%)",
        description="The library against bare baselines, each ratio measured in one run: distillation "
        "updates/s vs a bare PyTorch loop, teacher-labelled transitions/s vs random env steps, "
        "inference of teacher vs students (torch, onnxruntime), wall time to 95%% of the teacher by "
        "distillation vs Double DQN from scratch, replay-memory bytes per transition. About 3-6 min.",
    )
    bench.add_arguments(p)
    p.set_defaults(func=_cmd_bench)

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
    p.set_defaults(func=_cmd_publish_teacher)

    p = sub.add_parser(
        "reference-score",
        help="score a shipped teacher on reserved env seeds: the yardstick of percent-of-teacher",
        description="Evaluate a shipped teacher (or all) for --episodes episodes at epsilon 0.05 on env "
        "seeds that no training, selection or student evaluation uses, and store the mean, its 95%% CI "
        "and every return in its card.json (as 'reference') and MODEL_CARD.md. Reports divide by it.",
    )
    p.add_argument("name", help="shipped teacher, e.g. minatar/breakout, or 'all'")
    p.add_argument("--episodes", type=_count(1), default=1000, help="episodes (default 1000)")
    p.set_defaults(func=_cmd_reference_score)
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
