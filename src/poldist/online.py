"""Online distillation: the student follows a Double-DQN teacher that is still learning.

Two steppable loops, interleaved: the teacher's (:class:`poldist.dqn.DQNTrainer`) runs to its
next periodic evaluation, then the distillation loop (:class:`poldist.distillation.Distiller`)
takes a chunk of student updates, labelling fresh teacher play with the teacher's *current*
weights; a small replay memory keeps the labels recent. Both scores are logged on one time
axis (teacher env steps) in ``online.csv`` and drawn in ``online.png``.

Resuming: the teacher checkpoints every ``checkpoint_every`` chunks (after that chunk's student
updates: the trainer writes a checkpoint due at a step when it leaves that step), the student on
the same schedule. After a kill, the teacher resumes from its last
checkpoint; each chunk then runs the student up to ``(teacher steps // interval) *
updates_per_interval`` updates, so a student checkpoint one chunk ahead of the teacher's (a kill
between the two writes) waits for the teacher instead of running ahead, and ``online.csv``
is cut back to the teacher's checkpoint.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from poldist.config import DistillConfig, OnlineConfig
from poldist.distillation import Distiller
from poldist.dqn import DQNConfig, DQNTrainer
from poldist.envs import make_env_spec
from poldist.errors import PoldistError
from poldist.networks import resolve_device
from poldist.runs import prepare_run_dir, record_config_changes, resume_or_clear, write_json
from poldist.teachers import NetworkTeacher, load_teacher

FIELDS = ("teacher_env_steps", "teacher_score", "teacher_ci_low", "teacher_ci_high")
FIELDS += ("student_updates", "student_score", "student_ci_low", "student_ci_high")


def online_distill(cfg: OnlineConfig, run_dir: str | Path, *, resume: bool = False) -> dict[str, Any]:
    """Train a teacher and distil it while it learns; write ``online.csv``, ``online.png``.

    Layout: ``<run_dir>/teacher-run`` (the DQN run), ``<run_dir>/student-run`` (the
    distillation run), ``<run_dir>/online.csv``, ``online.png`` and ``summary.json``.
    ``resume`` continues from the teacher's last checkpoint (see the module docstring).
    The learning teacher and the student share ``cfg.device`` (the student reads the teacher's
    live network there); both replay memories stay in host memory.
    """
    cfg.validate()  # a bad value fails in one line before the run dir exists
    spec = make_env_spec(cfg.env_id)
    device = resolve_device(cfg.device)  # an unknown or absent device fails before the run dir
    run_dir = Path(run_dir)
    teacher_state = run_dir / "teacher-run" / "state" / "meta.json"
    if resume and not teacher_state.exists():
        raise PoldistError(f"--resume: no teacher checkpoint in {teacher_state.parent} to resume from")
    if not resume and teacher_state.exists():
        raise PoldistError(f"{run_dir} already holds an online run: pass --resume to continue it")
    if not resume:
        prepare_run_dir(run_dir, resume=False)
    chunks = max(1, cfg.total_steps // cfg.interval)
    dqn_cfg = DQNConfig(
        env_id=cfg.env_id,
        total_steps=cfg.total_steps,
        seed=cfg.seed,
        eval_interval=cfg.interval,
        eval_episodes=cfg.eval_episodes,
        checkpoint_interval=cfg.interval * cfg.checkpoint_every,
        learning_starts=min(DQNConfig.learning_starts, cfg.total_steps // 4),
        eval_seeds="fixed",  # seed + 10**6, as the student's evaluation below: paired readings
        device=str(device),
    )
    distill_cfg = DistillConfig(
        teacher="",
        student=cfg.student,
        loss=cfg.loss,
        tau=cfg.tau,
        updates=chunks * cfg.updates_per_interval,
        memory_size=cfg.memory_size,
        learning_starts=min(5_000, cfg.memory_size),
        batch_size=cfg.batch_size,
        eval_interval=10**12,  # this module evaluates, on the teacher's time axis
        checkpoint_interval=cfg.updates_per_interval * cfg.checkpoint_every,
        final_eval_episodes=cfg.eval_episodes,
        agreement_states=2_000,
        seed=cfg.seed,
        backend=cfg.backend,  # ray: actors get the learning teacher's new weights as they change
        ray_address=cfg.ray_address,
        ray_actors=cfg.ray_actors,
        device=str(device),
        # the learning teacher changes every chunk (an onnxruntime graph would be rebuilt each time),
        # and the committed online results were labelled by torch
        labeller="torch",
    )
    if resume:  # the run's own settings: refuse a change a resume may not make, record the others
        record_config_changes(run_dir, cfg)
    write_json(run_dir / "config.json", cfg)
    csv_path = run_dir / "online.csv"
    kept: list[list[str]] = []
    if resume:  # rows after the teacher's checkpoint are made again
        teacher_step = json.loads(teacher_state.read_text())["counters"]["step"]
        with csv_path.open(newline="") as f:
            kept = [r for r in csv.reader(f)][1:]
        kept = [r for r in kept if float(r[0]) <= teacher_step]
    with csv_path.open("w", newline="") as f:
        csv.writer(f).writerows([FIELDS, *kept])
    student_dir = run_dir / "student-run"
    # a student killed before its first checkpoint starts again
    student_resume = resume and resume_or_clear(student_dir)

    def make_distiller(teacher: NetworkTeacher) -> Distiller:
        return Distiller(
            distill_cfg, student_dir, teachers=[teacher], resume=student_resume, teacher_arch=teacher.net.arch
        )

    distiller: Distiller | None = None  # made at the teacher's first evaluation, on its live network
    try:
        with DQNTrainer(dqn_cfg, run_dir / "teacher-run", resume=resume) as trainer:
            while trainer.step < dqn_cfg.total_steps:
                teacher_res = trainer.run(trainer.next_eval)[0]
                if distiller is None:  # the live, still-training network; its version follows the updates
                    distiller = make_distiller(trainer.as_teacher(name="learning DQN teacher"))
                # a student checkpoint ahead of the teacher's waits here (run does nothing)
                target = min((trainer.step // cfg.interval) * cfg.updates_per_interval, distill_cfg.updates)
                distiller.run(until=target, show_progress=False)
                student_res = distiller.evaluate_student(cfg.eval_episodes, cfg.seed + 10**6)[0]
                row = (trainer.step, teacher_res.mean, teacher_res.ci_low, teacher_res.ci_high)
                row += (distiller.updates, student_res.mean, student_res.ci_low, student_res.ci_high)
                with csv_path.open("a", newline="") as f:
                    csv.writer(f).writerow(row)
            # the teacher's last checkpoint follows the last chunk and its row
            teacher_summary = trainer.finish(stopped_early=False)
        # no chunk ran if the teacher had already finished before a resume: label with its final weights
        if distiller is None:
            final = load_teacher(run_dir / "teacher-run" / "teacher").net
            distiller = make_distiller(NetworkTeacher(final, spec, "q", name="learning DQN teacher"))
        student_summary = distiller.finish()
    finally:
        if distiller is not None:
            distiller.close()  # Ray actors must not outlive a failed run
    plot_online(csv_path, run_dir / "online.png", title=f"{cfg.env_id}: online distillation")
    summary = {
        "config": asdict(cfg),
        "device": str(device),
        "teacher": {k: v for k, v in teacher_summary.items() if k != "config"},
        "student": {k: v for k, v in student_summary.items() if k != "config"},
    }
    write_json(run_dir / "summary.json", summary)
    return summary


def plot_online(csv_path: str | Path, out_png: str | Path, title: str = "") -> Path:
    """Teacher and student scores (with 95% CI bands) against teacher env steps."""
    from matplotlib.figure import Figure

    with Path(csv_path).open() as f:
        rows = [{k: float(v) for k, v in r.items()} for r in csv.DictReader(f)]
    x = [r["teacher_env_steps"] for r in rows]
    # the Figure API draws off screen with the Agg canvas: no global backend is chosen here
    fig = Figure(figsize=(6, 3.8))
    ax = fig.subplots()
    for who, color in (("teacher", "k"), ("student", "tab:blue")):
        ax.plot(x, [r[f"{who}_score"] for r in rows], color=color, marker="o", ms=3, label=who)
        lo, hi = [r[f"{who}_ci_low"] for r in rows], [r[f"{who}_ci_high"] for r in rows]
        ax.fill_between(x, lo, hi, color=color, alpha=0.15)
    ax.set_xlabel("teacher env steps")
    ax.set_ylabel("score (epsilon 0.05)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(out_png, dpi=120)
    return Path(out_png)
