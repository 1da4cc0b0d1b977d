"""scripts/carry_run.py: a run packed on one machine resumes from the unpacked copy elsewhere."""

import importlib.util
from pathlib import Path

import pytest

from poldist.dqn import DQNConfig, train_dqn
from poldist.errors import PoldistError

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "carry_run.py"
_spec = importlib.util.spec_from_file_location("carry_run", SCRIPT)
carry_run = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(carry_run)


def _cfg(total: int) -> DQNConfig:
    return DQNConfig(
        total_steps=total,
        learning_starts=500,
        buffer_size=2_000,
        eval_interval=1_000,
        eval_episodes=1,
        checkpoint_interval=1_000,
    )


def test_packed_run_resumes_elsewhere_and_unpack_keeps_existing_runs(tmp_path):
    run = tmp_path / "here" / "dqn"
    train_dqn(_cfg(2_000), run)
    packed = tmp_path / "carry" / "dqn.tar.xz"
    carry_run.pack(run, packed)
    carry_run.unpack(packed, tmp_path / "there")
    moved = tmp_path / "there" / "dqn"
    assert not (moved / "tb").exists() and (moved / "evals.csv").exists()
    assert train_dqn(_cfg(3_000), moved, resume=True)["env_steps"] == 3_000
    with pytest.raises(PoldistError, match="exists"):
        carry_run.unpack(packed, tmp_path / "there")


def test_pack_refuses_a_run_without_a_whole_checkpoint(tmp_path):
    (tmp_path / "run" / "state").mkdir(parents=True)
    with pytest.raises(PoldistError):
        carry_run.pack(tmp_path / "run", tmp_path / "out.tar.xz")
    assert not (tmp_path / "out.tar.xz").exists()
