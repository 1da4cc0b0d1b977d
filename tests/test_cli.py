"""The command line: error cases give one line and a non-zero exit before any work starts."""

import json
import subprocess
import sys

import pytest
import torch
from cli_errors import one_line_error

from poldist.checkpoints import save_model
from poldist.cli import main
from poldist.envs import make_env_spec
from poldist.networks import QNetwork, minatar_dqn


@pytest.fixture
def teacher_dir(tmp_path):
    spec = make_env_spec("MinAtar/Breakout-v1")
    torch.manual_seed(0)
    return save_model(tmp_path / "teacher", QNetwork(minatar_dqn(4, 3)), spec)


_error = one_line_error


def test_unknown_env_id(capsys, tmp_path):
    err = _error(capsys, ["train-teacher", "--env-id", "MinAtar/Pong-v1", "--out", str(tmp_path / "r")])
    assert "Pong" in err
    assert not (tmp_path / "r").exists()


def test_teacher_action_count_mismatch(capsys, tmp_path, teacher_dir):
    out = tmp_path / "r"
    err = _error(
        capsys,
        ["distill", "--teacher", str(teacher_dir), "--env-id", "MinAtar/Breakout-v0", "--out", str(out)],
    )
    assert "3 actions" in err and "6 actions" in err
    assert not out.exists()


def test_teacher_observation_shape_mismatch(capsys, tmp_path, teacher_dir):
    err = _error(
        capsys,
        [
            "distill",
            "--teacher",
            str(teacher_dir),
            "--env-id",
            "MinAtar/Freeway-v1",
            "--out",
            str(tmp_path / "r"),
        ],
    )
    assert "shape" in err and "(4, 10, 10)" in err and "(7, 10, 10)" in err


def test_missing_checkpoint(capsys, tmp_path):
    err = _error(capsys, ["evaluate", str(tmp_path / "nothing")])
    assert "no checkpoint" in err


def test_corrupted_checkpoint(capsys, teacher_dir):
    weights = next(teacher_dir.glob("weights-*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:100])
    err = _error(capsys, ["evaluate", str(teacher_dir)])
    assert "corrupted" in err


def test_unwritable_output_directory(capsys, tmp_path, teacher_dir):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    err = _error(capsys, ["distill", "--teacher", str(teacher_dir), "--out", str(blocker / "run")])
    assert "not writable" in err


def test_existing_run_needs_resume_and_resume_needs_a_checkpoint(capsys, tmp_path, teacher_dir):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text("{}")  # a run that never reached its first checkpoint
    err = _error(capsys, ["distill", "--teacher", str(teacher_dir), "--out", str(out)])
    assert "before its first checkpoint" in err and "delete the directory" in err
    err = _error(capsys, ["distill", "--teacher", str(teacher_dir), "--out", str(out), "--resume"])
    assert "no checkpoint" in err
    (out / "state").mkdir()
    (out / "state" / "meta.json").write_text("{}")  # a run with a checkpoint: continue it or move on
    err = _error(capsys, ["distill", "--teacher", str(teacher_dir), "--out", str(out)])
    assert "--resume" in err


def test_bad_config_file(capsys, tmp_path, teacher_dir):
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"updates": 10, "not_a_field": 1}))
    err = _error(capsys, ["distill", "--config", str(cfg), "--out", str(tmp_path / "r")])
    assert "not_a_field" in err


def test_evaluate_command_writes_json(tmp_path, teacher_dir):
    out = tmp_path / "eval.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "poldist.cli",
            "evaluate",
            str(teacher_dir),
            "--episodes",
            "3",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "MinAtar/Breakout-v1" in proc.stdout
    result = json.loads(out.read_text())
    assert result["episodes"] == 3 and len(result["returns"]) == 3


def test_zoo_lists_shipped_teachers(capsys):
    assert main(["zoo"]) == 0
    out = capsys.readouterr().out
    assert "minatar/breakout" in out and "MinAtar paper DQN" in out


# ------------------------------------------------------------- every bad input at the edge (issue 21)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["evaluate", "minatar/breakout", "--episodes", "0"], "--episodes: must be at least 1, got 0"),
        (["evaluate", "minatar/breakout", "--epsilon", "1.5"], "--epsilon: must be between 0 and 1"),
        (["evaluate", "minatar/breakout", "--num-envs", "-2"], "--num-envs: must be at least 1"),
        (
            ["record", "minatar/breakout", "--out", "x.gif", "--episodes", "-1"],
            "--episodes: must be at least 1",
        ),
        (["distill", "--updates", "many", "--out", "OUT"], "--updates: invalid int value: 'many'"),
        (["evaluat", "minatar/breakout"], "invalid choice: 'evaluat'"),
        (["distill"], "the following arguments are required: --out"),
    ],
)
def test_bad_arguments_are_one_line(capsys, tmp_path, argv, message):
    argv = [str(tmp_path / "out") if a == "OUT" else a for a in argv]
    err = _error(capsys, argv)
    assert message in err and "--help" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ([1, 2], "must hold a JSON object of DistillConfig fields, got list"),
        ({"updates": "10"}, "updates (--updates) must be an int, got '10'"),
        ({"updates": 10.5}, "updates (--updates) must be an int, got 10.5"),
        ({"lr": True}, "lr (--lr) must be a float, got True"),
        ({"evaluate_teacher": "yes"}, "evaluate_teacher (--evaluate-teacher) must be a bool"),
        ({"teacher": 3}, "teacher (--teacher) must be a str, got 3"),
        ({"updatez": 10}, "unknown keys ['updatez']"),
    ],
)
def test_a_bad_config_file_is_one_line_and_creates_nothing(capsys, tmp_path, config, message):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    err = _error(capsys, ["distill", "--config", str(path), "--out", str(tmp_path / "run")])
    assert message in err
    assert not (tmp_path / "run").exists()


def test_a_config_file_that_is_not_json_is_one_line(capsys, tmp_path):
    path = tmp_path / "config.json"
    path.write_bytes(b"\xff\xfe{")
    err = _error(capsys, ["train-teacher", "--config", str(path), "--out", str(tmp_path / "run")])
    assert "cannot read config" in err
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------- resume keeps the run's config (issue 21)

TINY_DISTILL = [
    "--teacher", "minatar/breakout", "--learning-starts", "500", "--checkpoint-interval", "300",
    "--eval-interval", "1000000", "--eval-episodes", "1", "--final-eval-episodes", "1",
    "--agreement-states", "50", "--batch-size", "32", "--no-evaluate-teacher",
]  # fmt: skip


def test_resume_uses_the_stored_config_and_refuses_contradicting_flags(capsys, tmp_path):
    run = tmp_path / "run"
    assert main(["distill", "--out", str(run), "--updates", "300", *TINY_DISTILL]) == 0
    stored = (run / "config.json").read_text()
    # no flags: the run's own settings, not the defaults (which would say 30,000 updates)
    assert main(["distill", "--out", str(run), "--resume"]) == 0
    assert (run / "config.json").read_text() == stored
    assert json.loads((run / "summary.json").read_text())["updates"] == 300
    # a flag that contradicts the run: one line, naming it, and nothing changes
    capsys.readouterr()
    err = _error(capsys, ["distill", "--out", str(run), "--resume", "--batch-size", "64"])
    assert "--batch-size 64 differs from the run's 32" in err and "another --out" in err
    assert (run / "config.json").read_text() == stored
    # a longer run is allowed, and recorded
    assert main(["distill", "--out", str(run), "--resume", "--updates", "400"]) == 0
    assert json.loads((run / "config.json").read_text())["updates"] == 400
    assert json.loads((run / "summary.json").read_text())["updates"] == 400
    (change,) = json.loads((run / "config_changes.json").read_text())
    assert change["changes"] == {"updates": [300, 400]}
    # a shorter one ends the run where it stands (400 updates done: the summary says so)
    assert main(["distill", "--out", str(run), "--resume", "--updates", "200"]) == 0
    assert json.loads((run / "summary.json").read_text())["updates"] == 400


def test_every_help_page_renders_percent_signs_once():
    """argparse %-formats help strings but prints descriptions as written: a '%%' meant for one
    shows up doubled in the other."""
    import argparse

    from poldist.cli import build_parser

    parser = build_parser()
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    pages = [parser.format_help()] + [p.format_help() for p in subs.choices.values()]
    assert len(pages) > 10
    assert not [p.splitlines()[0] for p in pages if "%%" in p]
    assert any("95%" in p for p in pages)


def test_every_flag_of_every_command_has_help():
    import argparse

    from poldist.cli import build_parser

    subs = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    missing = [
        f"{name} {'/'.join(act.option_strings) or act.dest}"
        for name, sub in subs.choices.items()
        for act in sub._actions
        if not isinstance(act, argparse._HelpAction) and not act.help
    ]
    assert len(subs.choices) > 10 and not missing
