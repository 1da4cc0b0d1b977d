"""scripts/carry_run.py: a run packed on one machine resumes from the unpacked copy elsewhere."""

import io

import numpy as np
import pytest
import torch
from scripts_loader import load_script

from poldist.checkpoints import load_checkpoint
from poldist.dqn import DQNConfig, train_dqn
from poldist.errors import PoldistError
from poldist.memory import ReplayMemory

carry_run = load_script("carry_run")


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
    train_dqn(_cfg(3_000), run, resume=True)  # the same run, resumed where it was
    a, b = (load_checkpoint(r / "state").tensors for r in (run, moved))
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(PoldistError, match="exists"):
        carry_run.unpack(packed, tmp_path / "there")


def test_pack_refuses_a_run_without_a_whole_checkpoint(tmp_path):
    (tmp_path / "run" / "state").mkdir(parents=True)
    with pytest.raises(PoldistError):
        carry_run.pack(tmp_path / "run", tmp_path / "out.tar.xz")
    assert not (tmp_path / "out.tar.xz").exists()


def test_compact_blob_bit_packs_an_older_memory_blob_losslessly():
    rng = np.random.default_rng(0)
    mem = ReplayMemory(40, {"obs": ((4, 10, 10), np.uint8), "reward": ((), np.float32)})
    mem.add(obs=rng.integers(0, 2, (30, 4, 10, 10), dtype=np.uint8), reward=rng.random(30, dtype=np.float32))
    buf = io.BytesIO()  # the format before bit-packing: every field as it is
    np.savez(buf, counters=np.array([40, 30, 30, 30]), **{f"field_{k}": v[:30] for k, v in mem.data.items()})
    compact = carry_run.compact_blob(buf.getvalue())
    assert len(compact) < len(buf.getvalue()) / 4
    again = ReplayMemory(40, {"obs": ((4, 10, 10), np.uint8), "reward": ((), np.float32)})
    again.load_bytes(compact)
    for k in mem.data:
        np.testing.assert_array_equal(again.data[k], mem.data[k])


def test_weights_carry_warm_starts_a_new_run(tmp_path):
    """An unfinished run's online network alone (half precision) starts a new run (--init-weights)."""
    from dataclasses import replace

    from poldist.checkpoints import load_model

    run = tmp_path / "dqn"
    train_dqn(replace(_cfg(3_000), checkpoint_interval=1_000), run)
    (run / "teacher").rename(tmp_path / "finished-teacher")  # as if stopped before the end
    carry_run.weights(run, tmp_path / "online", half=True)
    net, meta = load_model(tmp_path / "online")
    state = load_checkpoint(run / "state").tensors
    assert meta["carried_from"]["counters"]["step"] == 3_000 and meta["carried_from"]["half"]
    for k, v in net.state_dict().items():
        assert torch.equal(v, state[f"online.{k}"].half().float())
    warm = replace(_cfg(600), init_weights=str(tmp_path / "online"), eps_start=0.01, learning_starts=10**6)
    train_dqn(warm, tmp_path / "warm")  # no update: the weights are the carried ones
    warmed, _ = load_model(tmp_path / "warm" / "teacher")
    assert all(torch.equal(a, b) for a, b in zip(warmed.state_dict().values(), net.state_dict().values()))
    wrong = replace(warm, network="net3")
    with pytest.raises(PoldistError, match="init-weights"):
        train_dqn(wrong, tmp_path / "wrong")
