"""ReplayMemory: ring buffer semantics, sampling, serialisation."""

from __future__ import annotations

import numpy as np
import pytest

from poldist.memory import ReplayMemory

FIELDS = {"obs": ((4, 10, 10), np.uint8), "teacher_out": ((3,), np.float32)}


def _rows(start: int, n: int) -> dict[str, np.ndarray]:
    """Rows whose content encodes their index: obs filled with i, teacher_out = [i, -i, 0.5]."""
    idx = np.arange(start, start + n)
    obs = np.broadcast_to(idx[:, None, None, None], (n, 4, 10, 10)).astype(np.uint8)
    out = np.stack([idx, -idx, np.full(n, 0.5)], axis=1).astype(np.float32)
    return {"obs": obs, "teacher_out": out}


def _stored_ids(mem: ReplayMemory) -> list[int]:
    return sorted(int(x) for x in mem.data["teacher_out"][: len(mem), 0])


def test_ring_wrap_around_one_row_at_a_time() -> None:
    mem = ReplayMemory(5, FIELDS)
    for i in range(7):
        mem.add(**_rows(i, 1))
    assert len(mem) == 5
    assert mem.size == 5
    assert mem.added == 7
    assert mem.next == 2
    assert _stored_ids(mem) == [2, 3, 4, 5, 6]  # 0 and 1 overwritten
    # rows 5 and 6 took the slots of 0 and 1
    assert mem.data["teacher_out"][0, 0] == 5
    assert mem.data["teacher_out"][1, 0] == 6
    assert (mem.data["obs"][1] == 6).all()


def test_ring_wrap_around_in_batches() -> None:
    mem = ReplayMemory(5, FIELDS)
    mem.add(**_rows(0, 3))
    assert len(mem) == 3 and mem.added == 3
    mem.add(**_rows(3, 4))
    assert len(mem) == 5
    assert mem.added == 7
    assert _stored_ids(mem) == [2, 3, 4, 5, 6]
    # obs and teacher_out of a row stay together
    for row in range(5):
        assert (mem.data["obs"][row] == mem.data["teacher_out"][row, 0]).all()


def test_one_batch_larger_than_capacity_keeps_the_newest_rows() -> None:
    mem = ReplayMemory(5, FIELDS)
    mem.add(**_rows(0, 7))
    assert (len(mem), mem.added, mem.next) == (5, 7, 2)
    assert _stored_ids(mem) == [2, 3, 4, 5, 6]


def test_sample_shapes_and_dtypes() -> None:
    mem = ReplayMemory(10, FIELDS)
    mem.add(**_rows(0, 4))
    batch = mem.sample(32, np.random.default_rng(0))
    assert set(batch) == {"obs", "teacher_out"}
    assert batch["obs"].shape == (32, 4, 10, 10)
    assert batch["obs"].dtype == np.uint8
    assert batch["teacher_out"].shape == (32, 3)
    assert batch["teacher_out"].dtype == np.float32
    # only filled rows are drawn, and rows stay consistent across fields
    ids = batch["teacher_out"][:, 0]
    assert set(ids.astype(int)) <= {0, 1, 2, 3}
    assert (batch["obs"][:, 0, 0, 0] == ids).all()
    assert (batch["teacher_out"][:, 1] == -ids).all()


def test_sample_is_deterministic_for_a_seed() -> None:
    mem = ReplayMemory(10, FIELDS)
    mem.add(**_rows(0, 10))
    a = mem.sample(16, np.random.default_rng(3))
    b = mem.sample(16, np.random.default_rng(3))
    np.testing.assert_array_equal(a["teacher_out"], b["teacher_out"])


def test_sample_covers_all_rows() -> None:
    mem = ReplayMemory(5, FIELDS)
    mem.add(**_rows(0, 7))
    ids = mem.sample(500, np.random.default_rng(0))["teacher_out"][:, 0].astype(int)
    assert set(ids) == {2, 3, 4, 5, 6}


def test_sample_from_empty_raises() -> None:
    mem = ReplayMemory(5, FIELDS)
    with pytest.raises(RuntimeError):
        mem.sample(1, np.random.default_rng(0))


def test_obs_stays_uint8() -> None:
    mem = ReplayMemory(4, FIELDS)
    rows = _rows(0, 2)
    rows["obs"] = rows["obs"].astype(np.float32)  # given as float, stored as uint8
    mem.add(**rows)
    assert mem.data["obs"].dtype == np.uint8
    assert mem.sample(3, np.random.default_rng(0))["obs"].dtype == np.uint8


def test_add_with_wrong_fields_raises() -> None:
    mem = ReplayMemory(4, FIELDS)
    with pytest.raises(KeyError):
        mem.add(obs=_rows(0, 1)["obs"])


def test_nonpositive_capacity_raises() -> None:
    with pytest.raises(ValueError):
        ReplayMemory(0, FIELDS)


def test_nbytes_per_row() -> None:
    mem = ReplayMemory(5, FIELDS)
    assert mem.nbytes_per_row() == 4 * 10 * 10 * 1 + 3 * 4
    dqn = ReplayMemory(
        2,
        {
            "obs": ((4, 84, 84), np.uint8),
            "action": ((), np.int64),
            "reward": ((), np.float32),
            "done": ((), np.bool_),
        },
    )
    assert dqn.nbytes_per_row() == 4 * 84 * 84 + 8 + 4 + 1


@pytest.mark.parametrize("n_added", [3, 7])
def test_to_bytes_load_bytes_round_trip(n_added: int) -> None:
    mem = ReplayMemory(5, FIELDS)
    mem.add(**_rows(0, n_added))
    blob = mem.to_bytes()
    assert blob[:2] == b"PK"  # an .npz (zip) archive

    other = ReplayMemory(5, FIELDS)
    other.load_bytes(blob)
    assert (other.size, other.next, other.added) == (mem.size, mem.next, mem.added)
    for k in FIELDS:
        np.testing.assert_array_equal(other.data[k][: other.size], mem.data[k][: mem.size])
        assert other.data[k].dtype == mem.data[k].dtype
    # the restored memory keeps wrapping where the original would
    mem.add(**_rows(100, 2))
    other.add(**_rows(100, 2))
    for k in FIELDS:
        np.testing.assert_array_equal(other.data[k], mem.data[k])
    assert other.added == n_added + 2


def test_load_bytes_into_other_capacity_raises() -> None:
    mem = ReplayMemory(5, FIELDS)
    mem.add(**_rows(0, 2))
    with pytest.raises(ValueError, match="capacity"):
        ReplayMemory(6, FIELDS).load_bytes(mem.to_bytes())


def test_binary_frames_are_stored_bit_packed_and_restored_exactly() -> None:
    rng = np.random.default_rng(0)
    mem = ReplayMemory(50, FIELDS)
    obs = rng.integers(0, 2, (37, 4, 10, 10), dtype=np.uint8)
    mem.add(obs=obs, teacher_out=rng.random((37, 3), dtype=np.float32))
    blob = mem.to_bytes()
    assert len(blob) < obs.nbytes / 4  # 8x fewer bytes for the frames
    other = ReplayMemory(50, FIELDS)
    other.load_bytes(blob)
    for k in FIELDS:
        np.testing.assert_array_equal(other.data[k], mem.data[k])
    obs[0, 0, 0, 0] = 2  # no longer binary: stored as is
    mem.add(obs=obs, teacher_out=rng.random((37, 3), dtype=np.float32))
    again = ReplayMemory(50, FIELDS)
    again.load_bytes(mem.to_bytes())
    np.testing.assert_array_equal(again.data["obs"], mem.data["obs"])
