"""Online distillation: the student is distilled from a teacher that is still learning."""

import csv
import json
from dataclasses import replace

import pytest

from poldist.checkpoints import load_model
from poldist.cli import main
from poldist.errors import PoldistError
from poldist.online import OnlineConfig, online_distill


def test_online_distillation_logs_both_scores_on_one_axis(tmp_path):
    out = tmp_path / "online"
    code = main(
        ["online", "--total-steps", "6000", "--interval", "2000", "--updates-per-interval", "100",
         "--memory-size", "3000", "--eval-episodes", "2", "--out", str(out)]
    )  # fmt: skip
    assert code == 0
    with (out / "online.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["teacher_env_steps"]) for r in rows] == [2000, 4000, 6000]
    assert [int(r["student_updates"]) for r in rows] == [100, 200, 300]
    assert (out / "online.png").stat().st_size > 0
    student, meta = load_model(out / "student-run" / "student")
    assert meta["envs"][0]["env_id"] == "MinAtar/Breakout-v1"
    assert (out / "teacher-run" / "teacher" / "meta.json").exists()


ARGS = ["online", "--total-steps", "6000", "--interval", "2000", "--updates-per-interval", "100",
        "--memory-size", "3000", "--eval-episodes", "1", "--checkpoint-every", "1"]  # fmt: skip


class Killed(Exception):
    """Stands in for a kill -9 at a chosen point of the run."""


def _kill_at_student_eval(monkeypatch, n: int) -> None:
    """The ``n``-th student evaluation raises: after that chunk's student checkpoint, before the
    teacher's, the one moment where the student is a chunk ahead of the teacher's checkpoint."""
    from poldist.distillation import Distiller

    calls = {"n": 0}
    real = Distiller.evaluate_student

    def evaluate_student(self, *a, **kw):
        calls["n"] += 1
        if calls["n"] == n:
            raise Killed
        return real(self, *a, **kw)

    monkeypatch.setattr(Distiller, "evaluate_student", evaluate_student)


def test_online_run_resumes_with_the_student_waiting_for_the_teacher(tmp_path, monkeypatch):
    out = tmp_path / "online"
    _kill_at_student_eval(monkeypatch, 3)  # the 1st is at update 0; the 3rd after the chunk at step 4000
    try:
        main([*ARGS, "--out", str(out)])
        raise AssertionError("the run should have been killed")
    except Killed:
        pass
    monkeypatch.undo()
    meta = json.loads((out / "teacher-run" / "state" / "meta.json").read_text())
    assert meta["counters"]["step"] == 2000  # the teacher's last checkpoint
    student_meta = json.loads((out / "student-run" / "state" / "meta.json").read_text())
    assert student_meta["counters"]["updates"] == 200  # the student's: one chunk ahead
    assert main([*ARGS, "--out", str(out)]) == 2  # an existing run is not overwritten
    # from Python too, a resume keeps the run's settings
    stored = OnlineConfig(**json.loads((out / "config.json").read_text()))
    with pytest.raises(PoldistError, match="--memory-size 999 differs"):
        online_distill(replace(stored, memory_size=999), out, resume=True)
    assert main([*ARGS, "--out", str(out), "--resume"]) == 0
    with (out / "online.csv").open() as f:
        rows = list(csv.DictReader(f))
    # as if never killed: one row per teacher evaluation, the student 100 updates per chunk
    assert [int(r["teacher_env_steps"]) for r in rows] == [2000, 4000, 6000]
    assert [int(r["student_updates"]) for r in rows] == [100, 200, 300]
    assert (out / "summary.json").exists() and (out / "online.png").stat().st_size > 0


def test_online_resume_needs_a_teacher_checkpoint(tmp_path):
    assert main([*ARGS, "--out", str(tmp_path / "none"), "--resume"]) == 2
