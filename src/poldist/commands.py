"""What each ``poldist`` command does, given its parsed arguments (:mod:`poldist.cli` builds the parser).

A long job's config is built once, here (:func:`build_config`): the ``--config`` file, then the
flags given, checked by the config's ``validate()`` before anything is made on disk; on
``--resume``, the run's stored config with only the changes a resume may make.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from poldist.config import config_values, resumed_config
from poldist.errors import PoldistError
from poldist.tables import format_table


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PoldistError(f"cannot read {what} {path}: {e}") from e


def build_config(cls: type, args: argparse.Namespace) -> Any:
    """The command's config: its recipe (``--recipe``, where the command has one), then the
    ``--config`` file, then the flags given; on ``--resume`` of a run that recorded its config,
    that config, with only the changes a resume may make (recorded in
    ``<out>/config_changes.json``)."""
    values: dict[str, Any] = {}
    names = {f.name for f in dataclasses.fields(cls)}
    if args.config is not None:
        values.update(config_values(cls, _read_json(args.config, "config"), f"config {args.config}"))
    for name in names:
        v = getattr(args, name)
        if v is not None:
            values[name] = v
    given = dict(values)  # what a resume compares with the stored config
    out = Path(args.out)
    stored = out / "config.json"
    # only a run with a checkpoint can resume; without one the command says so itself
    has_checkpoint = any((out / d / "state" / "meta.json").exists() for d in (".", "teacher-run"))
    if args.resume and stored.exists() and has_checkpoint:
        cfg, changes = resumed_config(cls, _read_json(stored, "the run's config"), given, str(stored))
        if changes:  # the run records them (runs.record_config_changes) once it has checked them too
            print("resuming with " + ", ".join(f"{k} {a} -> {b}" for k, (a, b) in changes.items()))
        return cfg
    if getattr(args, "recipe", None) is not None:
        from poldist.recipes import recipe_for, with_recipe

        default_teacher = {f.name: f.default for f in dataclasses.fields(cls)}["teacher"]
        name, recipe = recipe_for(
            args.recipe, values.get("teacher", default_teacher), values.get("env_id", "")
        )
        values = with_recipe(recipe, values, cls)
        if recipe:
            print(f"recipe {name}: " + ", ".join(f"{k} {values[k]}" for k in recipe if k not in given))
    cfg = cls(**values)
    cfg.validate()  # before anything is made on disk
    return cfg


def _record_command(out: str | Path) -> None:
    """Append this invocation to ``<out>/commands.txt`` (model cards quote it)."""
    path = Path(out) / "commands.txt"
    with path.open("a") as f:
        f.write(" ".join(["poldist", *sys.argv[1:]]) + "\n")


def cmd_train_teacher(args: argparse.Namespace) -> None:
    """``poldist train-teacher``: see ``poldist train-teacher --help``."""
    from poldist.dqn import DQNConfig, DQNTrainer

    cfg = build_config(DQNConfig, args)
    _check_capture_path(args)
    with DQNTrainer(cfg, args.out, resume=args.resume) as trainer:
        _record_command(trainer.run_dir)  # the run dir is set up: a killed run keeps its command too
        trainer.run(cfg.total_steps)
        summary = trainer.finish(stopped_early=False)
    print(json.dumps(summary["final_eval"], indent=2))
    print(f"teacher checkpoint: {Path(args.out) / 'teacher'}")
    if args.capture_video is not None:
        # the final evaluation of train_dqn: its env seed, eval_epsilon, eval_episodes, 8 copies
        _capture_final(args, Path(args.out) / "teacher", trainer.eval_seed(), cfg.eval_episodes, cfg)


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
    if rec.path.suffix == ".gif" and (checkpoint.parent / "tb").is_dir():
        _video_to_tensorboard(rec.path, checkpoint.parent / "tb", f"capture/{checkpoint.name}")


def _video_to_tensorboard(gif: Path, tb_dir: Path, tag: str, frames: int = 16) -> None:
    """Up to ``frames`` evenly spaced frames of ``gif`` as an image summary in ``tb_dir`` (TensorBoard's
    video summary needs moviepy; a strip of frames needs nothing more)."""
    import numpy as np
    from torch.utils.tensorboard import SummaryWriter

    from poldist.video import read_gif

    video = read_gif(gif)
    picked = video[np.linspace(0, len(video) - 1, min(frames, len(video))).round().astype(int)]
    writer = SummaryWriter(str(tb_dir))
    try:
        writer.add_images(tag, picked, dataformats="NHWC")
    finally:
        writer.close()


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


def cmd_distill(args: argparse.Namespace) -> None:
    """``poldist distill``: see ``poldist distill --help``."""
    from poldist.distillation import DistillConfig, distill
    from poldist.plotting import plot_learning_curve

    cfg = build_config(DistillConfig, args)
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


def cmd_evaluate(args: argparse.Namespace) -> None:
    """``poldist evaluate``: see ``poldist evaluate --help``."""
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


def cmd_record(args: argparse.Namespace) -> None:
    """``poldist record``: see ``poldist record --help``."""
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
            labels=None if args.labels is None else args.labels.split(","),
        )
    finally:
        torch.set_num_threads(threads)
    print(rec)


def cmd_demo(args: argparse.Namespace) -> None:
    """``poldist demo``: see ``poldist demo --help``."""
    import time

    from poldist.distillation import distill
    from poldist.evaluation import percent_of_teacher
    from poldist.plotting import plot_learning_curve
    from poldist.recipes import recipe_config
    from poldist.runs import write_json
    from poldist.zoo import reference_mean

    game = args.game.lower().replace("-", "_")
    out = Path(args.out or f"runs/demo-{game}-{time.strftime('%Y%m%d-%H%M%S')}")
    # the settings `poldist distill --teacher minatar/<game>` starts from: the minatar recipe
    cfg = recipe_config(
        f"minatar/{game}",
        student=args.student,
        updates=args.updates,
        final_eval_episodes=args.episodes,
        seed=args.seed,
    )
    reference = reference_mean(cfg.teacher)  # the yardstick (issue 18), checked before any work
    if reference is None:
        raise PoldistError(f"{cfg.teacher} has no reference score: poldist reference-score {cfg.teacher}")
    print(
        f"poldist demo: distilling the shipped MinAtar {game} teacher into a {cfg.student} student "
        f"(the minatar recipe: {cfg.updates:,} KL updates of batch {cfg.batch_size}, tau {cfg.tau:g}, "
        f"{cfg.lr_schedule} learning rate, {cfg.control} acting, {cfg.num_envs} envs), run directory {out}"
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


def cmd_online(args: argparse.Namespace) -> None:
    """``poldist online``: see ``poldist online --help``."""
    from poldist.online import OnlineConfig, online_distill

    cfg = build_config(OnlineConfig, args)
    summary = online_distill(cfg, args.out, resume=args.resume)
    out = Path(args.out)
    student = summary["student"]["tasks"][0]
    print(
        f"final teacher {student.get('teacher_score', float('nan')):.2f}, "
        f"student {student['student_score']:.2f} ({student.get('percent_of_teacher', float('nan')):.1f}%)"
    )
    print(f"scores on one time axis: {out / 'online.csv'}\nplot: {out / 'online.png'}")


def cmd_export(args: argparse.Namespace) -> None:
    """``poldist export``: see ``poldist export --help``."""
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


def cmd_publish_teacher(args: argparse.Namespace) -> None:
    """``poldist publish-teacher``: see ``poldist publish-teacher --help``."""
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
        checkpoint=args.checkpoint,
    )
    print((dest / "MODEL_CARD.md").read_text())
    print(f"published: {dest}")


def cmd_reference_score(args: argparse.Namespace) -> None:
    """``poldist reference-score``: see ``poldist reference-score --help``."""
    from poldist.teachers import zoo_names
    from poldist.zoo import reference_score

    names = zoo_names() if args.name == "all" else [args.name]
    if args.name != "all" and args.name not in zoo_names():
        raise PoldistError(f"no shipped teacher {args.name!r}: choose from {zoo_names()} or 'all'")
    for name in names:
        ref = reference_score(name, episodes=args.episodes)
        ci = f"[{ref['ci_low']:.2f}, {ref['ci_high']:.2f}]"
        print(f"{name}: {ref['mean']:.2f} {ci} ({ref['episodes']} episodes)", flush=True)


def int_list(text: str) -> list[int]:
    """``"0,1,2"`` -> ``[0, 1, 2]`` (an argparse type)."""
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError as e:
        raise PoldistError(f"expected comma-separated integers, got {text!r}") from e


def cmd_reproduce(args: argparse.Namespace) -> None:
    """``poldist reproduce``: see ``poldist reproduce --help``."""
    from poldist.experiments.reproduce import FRESH_EXPERIMENTS, PROTOCOL_NAMES, run_experiment, run_online

    if args.experiment == "online":
        for d in run_online(int_list(args.seeds), runs=args.runs):
            print(f"online distillation: {d}")
        return
    try:
        i, n = (int(x) for x in args.shard.split("/"))
    except ValueError as e:
        raise PoldistError(f"--shard wants i/n (e.g. 0/2), got {args.shard!r}") from e
    games = [g.strip() for g in args.games.split(",") if g.strip()] or None
    protocol = args.protocol
    if protocol == "auto":
        protocol = "fresh" if args.experiment in FRESH_EXPERIMENTS else "legacy"
    records = run_experiment(
        args.experiment,
        int_list(args.seeds),
        games=games,
        runs=args.runs,
        results=args.results,
        shard=(i, n),
        protocol=PROTOCOL_NAMES[protocol],
    )
    rows = [
        [r["game"], r["student"], r["variant"], r["seed"], r["student_score"], r["percent_of_teacher"]]
        for r in records
    ]
    print(format_table(["game", "student", "loss", "seed", "score", "% of teacher"], rows))
    print(f"raw results: {Path(args.results) / 'raw'}; tables: poldist report")


def cmd_report(args: argparse.Namespace) -> None:
    """``poldist report``: see ``poldist report --help``."""
    from poldist.experiments.report import write_report

    path = write_report(Path(args.results), Path(args.out))
    print(f"wrote {path} (plots in {Path(args.results) / 'plots'})")


def cmd_bench(args: argparse.Namespace) -> None:
    """``poldist bench``: see ``poldist bench --help``."""
    from poldist.experiments.bench import run_from_args

    run_from_args(args)


def cmd_zoo(args: argparse.Namespace) -> None:
    """``poldist zoo``: see ``poldist zoo --help``."""
    from poldist.zoo import zoo_table

    print(zoo_table(markdown=args.markdown))
