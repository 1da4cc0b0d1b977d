"""Online distillation: the student is distilled from a teacher that is still learning."""

import csv

from poldist.checkpoints import load_model
from poldist.cli import main


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
