"""What ran is what is recorded: the temperature a config left to the run, counts as integers in
``evals.csv`` and the summaries (before and after a resume), and a loss the progress bar can show."""

import csv
import json
import re
from dataclasses import replace
from pathlib import Path

import pytest

from poldist import distillation
from poldist.checkpoints import load_model
from poldist.cli import main
from poldist.distillation import DistillConfig, Distiller, distill
from poldist.dqn import DQNConfig, DQNTrainer
from poldist.runs import EvalLog, loss_text

TINY = dict(
    teacher="minatar/breakout",
    student="net3",
    num_envs=2,
    learning_starts=300,
    memory_size=2_000,
    batch_size=16,
    eval_interval=100,
    eval_episodes=1,
    final_eval_episodes=1,
    agreement_states=50,
    checkpoint_interval=100,
    evaluate_teacher=False,
    seed=0,
)
TINY_DQN = dict(
    total_steps=1_200,
    num_envs=4,
    learning_starts=400,
    buffer_size=2_000,
    eval_interval=400,
    eval_episodes=1,
    checkpoint_interval=400,
    target_update=50,
    seed=0,
)
COUNTS = ("step", "task", "updates", "env_steps", "episodes")  # the columns of counts
COUNT = re.compile(r"-?\d+")  # a count as written: no ".0"


def _argv(command: str, run: Path, values: dict) -> list[str]:
    argv = [command, "--out", str(run)]
    for k, v in values.items():
        flag = "--" + k.replace("_", "-")
        argv += [f"--no-{flag[2:]}"] if v is False else [flag, str(v)]
    return argv


def _csv_counts(path: Path) -> list[str]:
    """Every cell of ``path``'s count columns, as written."""
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows
    return [r[k] for r in rows for k in COUNTS]


# --------------------------------------------------------------------------- the temperature


def test_summary_and_student_record_the_temperature_that_ran(tmp_path: Path) -> None:
    """A tau of 0 stands for the teacher's default (0.01 for Q-values): the summary and the student
    checkpoint record 0.01 under "resolved", beside the config as given; config.json stays the
    config given, so it is a valid --config and a resume with no flags runs."""
    run = tmp_path / "run"
    summary = distill(DistillConfig(updates=200, **TINY), run)
    resolved = {"tau": 0.01, "task_taus": [0.01], "tau_from": "teacher_default"}
    assert summary["config"]["tau"] == 0.0 and summary["resolved"] == resolved
    assert summary["tasks"][0]["tau"] == 0.01
    stored = json.loads((run / "summary.json").read_text())
    assert stored["resolved"] == resolved
    assert json.loads((run / "config.json").read_text()) == stored["config"]
    _, meta = load_model(run / "student")
    assert meta["distillation"]["resolved"] == resolved and meta["config"]["tau"] == 0.0

    # a resume with no flags (and one that only grows --updates) takes config.json as it is
    assert main(["distill", "--out", str(run), "--resume", "--updates", "300"]) in (0, None)
    resumed = json.loads((run / "summary.json").read_text())
    assert resumed["updates"] == 300 and resumed["resolved"] == resolved
    assert resumed["config"] == {**stored["config"], "updates": 300}
    # config.json as a --config file: a new run with the same settings
    other = tmp_path / "other"
    assert main(["distill", "--config", str(run / "config.json"), "--out", str(other)]) in (0, None)
    assert json.loads((other / "summary.json").read_text())["resolved"] == resolved


@pytest.mark.parametrize(
    "change, resolved",
    [
        ({"tau": 0.1}, {"tau": 0.1, "task_taus": [0.1], "tau_from": "config"}),
        ({"loss": "erd"}, {"tau": 0.01, "task_taus": [0.01], "tau_from": "teacher_default"}),
        ({"loss": "nll"}, {"tau": None, "task_taus": [None], "tau_from": "none"}),
        ({"loss": "mse", "tau": 0.5}, {"tau": None, "task_taus": [None], "tau_from": "none"}),
        # measured at each task's first update: not yet
        ({"tau_gap": 2.0}, {"tau": None, "task_taus": [None], "tau_from": "tau_gap"}),
    ],
)
def test_resolved_says_where_the_temperature_came_from(tmp_path: Path, change: dict, resolved: dict) -> None:
    with Distiller(replace(DistillConfig(**TINY), **change), tmp_path / "run") as distiller:
        assert distiller.resolved() == resolved


def test_dqn_summary_records_the_kickstart_loss_auto_chose(tmp_path: Path) -> None:
    """kickstart_loss "auto" is MSE for a Q-value teacher (no temperature); without a teacher, none."""
    kick = DQNConfig(**TINY_DQN, kickstart_teacher="minatar/breakout")
    with DQNTrainer(kick, tmp_path / "kick", show_progress=False) as trainer:
        assert trainer.resolved == {"kickstart_loss": "mse", "kickstart_tau": None, "overlap_envs": False}
    with DQNTrainer(replace(kick, kickstart_loss="kl"), tmp_path / "kl", show_progress=False) as trainer:
        assert trainer.resolved == {"kickstart_loss": "kl", "kickstart_tau": 0.01, "overlap_envs": False}
    with DQNTrainer(DQNConfig(**TINY_DQN), tmp_path / "plain", show_progress=False) as trainer:
        assert trainer.resolved == {"kickstart_loss": None, "kickstart_tau": None, "overlap_envs": False}


# --------------------------------------------------------------------------- counts stay integers


def test_distill_evals_csv_counts_stay_integers_across_a_resume(tmp_path: Path) -> None:
    run = tmp_path / "run"
    distill(DistillConfig(updates=200, **TINY), run)
    distill(DistillConfig(updates=300, **TINY), run, resume=True)  # the resume cuts evals.csv back
    cells = _csv_counts(run / "evals.csv")
    assert all(COUNT.fullmatch(c) for c in cells), cells
    rows = EvalLog.read(run / "evals.csv")
    assert [r["step"] for r in rows] == [0, 100, 200, 300]
    assert all(type(r[k]) is int for r in rows for k in COUNTS)
    assert all(type(r["score"]) is float for r in rows)


def test_teacher_counts_are_ints_in_evals_csv_summary_and_what_the_cli_prints(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    values = {**TINY_DQN, "total_steps": 800}
    assert main(_argv("train-teacher", run, values)) in (0, None)
    argv = _argv("train-teacher", run, {"total_steps": 1_200}) + ["--resume"]
    capsys.readouterr()
    assert main(argv) in (0, None)
    printed = capsys.readouterr().out
    assert all(COUNT.fullmatch(c) for c in _csv_counts(run / "evals.csv"))
    summary = json.loads((run / "summary.json").read_text())
    assert summary["resolved"] == {"kickstart_loss": None, "kickstart_tau": None, "overlap_envs": False}
    assert type(summary["env_steps"]) is int and type(summary["updates"]) is int
    final = summary["final_eval"]
    assert final and all(type(r[k]) is int for r in final for k in COUNTS)
    assert final[0]["step"] == 1_200 and final[0]["episodes"] == 1
    # the CLI prints the final evaluation: its counts without ".0"
    assert '"step": 1200,' in printed and '"episodes": 1' in printed
    assert not re.search(r'"(step|task|updates|env_steps|episodes)": -?\d+\.\d', printed), printed


def test_evals_csv_of_an_older_resume_is_read_and_rewritten_as_integers(tmp_path: Path) -> None:
    """Files an older version cut back on a resume hold counts such as "5000.0"."""
    path = tmp_path / "evals.csv"
    path.write_text(
        "step,task,updates,env_steps,wall_seconds,score,ci_low,ci_high,episodes\n"
        "5000.0,0.0,5000.0,32000.0,12.5,3.25,2.0,4.5,20.0\n"
        "10000,0,10000,59000,25.0,4.0,3.0,5.0,20\n"
        "15000,0,15000,86000,37.5,5.0,4.0,6.0,20\n"
    )
    assert EvalLog.read(path)[0] == {
        "step": 5000, "task": 0, "updates": 5000, "env_steps": 32000, "wall_seconds": 12.5,
        "score": 3.25, "ci_low": 2.0, "ci_high": 4.5, "episodes": 20,
    }  # fmt: skip
    log = EvalLog(path, resume_step=10_000)
    log.append(step=15_000, task=0, updates=15_000, env_steps=86_100, wall_seconds=40.0, score=5.5,
               ci_low=4.5, ci_high=6.5, episodes=20)  # fmt: skip
    assert path.read_text().splitlines()[1:] == [
        "5000,0,5000,32000,12.5,3.25,2.0,4.5,20",
        "10000,0,10000,59000,25.0,4.0,3.0,5.0,20",
        "15000,0,15000,86100,40.0,5.5,4.5,6.5,20",
    ]


# --------------------------------------------------------------------------- the progress bar's loss


def test_loss_text_keeps_small_losses_readable() -> None:
    assert loss_text(2.5e-05) == "2.5e-05"  # a KL at tau 0.01: four decimals said 0.0000
    assert loss_text(0.08754) == "0.0875" and loss_text(12.3456) == "12.3"


def test_distill_bar_shows_a_small_loss_not_zero(tmp_path: Path, monkeypatch, capsys) -> None:
    real = distillation.distill_step

    def tiny_loss(*args, **kw):  # the loss of a KL at tau 0.01 on a teacher's Q-values
        real(*args, **kw)
        return 2.5e-05

    monkeypatch.setattr(distillation, "distill_step", tiny_loss)
    with Distiller(DistillConfig(updates=100, **TINY), tmp_path / "run") as distiller:
        distiller.run()
    err = capsys.readouterr().err
    assert "loss=2.5e-05" in err and "loss=0.0000" not in err, err


def test_teacher_bar_shows_the_dqn_loss(tmp_path: Path, capsys) -> None:
    """train-teacher's bar shows the mean loss of the updates since the last evaluation."""
    with DQNTrainer(DQNConfig(**TINY_DQN), tmp_path / "run") as trainer:
        trainer.run(TINY_DQN["total_steps"])
    err = capsys.readouterr().err
    losses = [float(x) for x in re.findall(r"loss=([-+.e\d]+)", err)]
    assert losses and all(x > 0 for x in losses), err


def test_a_resume_may_end_a_run_sooner_where_it_stands(tmp_path: Path) -> None:
    """--total-steps / --updates at or below what is done: the resumed run ends at its checkpoint
    (a teacher kept where its evaluations peaked); the summary records the counters that ran."""
    teacher_run = tmp_path / "teacher"
    with DQNTrainer(DQNConfig(**TINY_DQN), teacher_run, show_progress=False) as trainer:
        trainer.run(800)  # then killed: the checkpoint at 400 is on disk (800's is due on the next step)
    argv = ["train-teacher", "--out", str(teacher_run), "--resume", "--total-steps", "400"]
    assert main(argv) in (0, None)
    summary = json.loads((teacher_run / "summary.json").read_text())
    assert summary["env_steps"] == 400 and summary["config"]["total_steps"] == 400
    assert [r["step"] for r in summary["final_eval"]] == [400]  # its evaluation at 400 is the final one
    assert (teacher_run / "teacher" / "meta.json").exists()
    changes = json.loads((teacher_run / "config_changes.json").read_text())
    assert changes[-1]["changes"] == {"total_steps": [1200, 400]}

    student_run = tmp_path / "student"
    with Distiller(DistillConfig(updates=300, **TINY), student_run) as distiller:
        distiller.run(200, show_progress=False)  # then killed: the checkpoint at 200 is on disk
    assert main(["distill", "--out", str(student_run), "--resume", "--updates", "150"]) in (0, None)
    summary = json.loads((student_run / "summary.json").read_text())
    assert summary["updates"] == 200 and summary["config"]["updates"] == 150
