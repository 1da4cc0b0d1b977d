"""FrameStackMemory: frames stored once, stacks returned bit-identical, overwritten rows never sampled."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest

from poldist.memory import FrameStackMemory, ReplayMemory

K, H, W = 4, 6, 6
FIELDS = {"obs": ((K, H, W), np.uint8), "row_id": ((), np.int64), "teacher_out": ((3,), np.float32)}


class StackingEnvs:
    """``n`` envs whose observation is their last ``K`` frames, newest last, like FrameStackObservation.

    Frames are random and never all zero. A fresh episode's stack is padded with copies of its
    first frame (``"repeat"``), with zero frames (``"zeros"``), or either at random (``"mixed"``).
    """

    def __init__(self, n: int, padding: str, seed: int, p_end: float = 0.0, shape: tuple[int, int] = (H, W)):
        self.rng = np.random.default_rng(seed)
        self.padding, self.p_end, self.shape = padding, p_end, shape
        self.stacks = np.stack([self._reset_stack() for _ in range(n)])

    def _frame(self) -> np.ndarray:
        return self.rng.integers(1, 256, self.shape, dtype=np.uint8)

    def _reset_stack(self) -> np.ndarray:
        first = self._frame()
        padding = self.padding if self.padding != "mixed" else self.rng.choice(["repeat", "zeros"])
        pad = first if padding == "repeat" else np.zeros_like(first)
        return np.stack([pad] * (K - 1) + [first])

    def step(self, ends: list[bool] | None = None) -> np.ndarray:
        """Advance every env one frame; envs with ``ends[e]`` (default: at random) start a new episode."""
        if ends is None:
            ends = list(self.rng.random(len(self.stacks)) < self.p_end)
        for e, end in enumerate(ends):
            if end:
                self.stacks[e] = self._reset_stack()
            else:
                self.stacks[e] = np.concatenate([self.stacks[e, 1:], self._frame()[None]])
        return self.stacks.copy()


class Recorder:
    """Adds batches to a memory with unique row ids and keeps the exact stack of each id."""

    def __init__(self, mem: FrameStackMemory) -> None:
        self.mem = mem
        self.stacks: dict[int, np.ndarray] = {}
        self.next_id = 0

    def add(self, obs: np.ndarray) -> None:
        ids = np.arange(self.next_id, self.next_id + len(obs))
        out = np.stack([ids, -ids, np.full(len(ids), 0.5)], axis=1).astype(np.float32)
        self.mem.add(obs=obs, row_id=ids, teacher_out=out)
        self.stacks.update({int(i): o.copy() for i, o in zip(ids, obs)})
        self.next_id += len(obs)

    def check(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        """Assert every row of ``batch`` is exactly what was added under its id, and live; return the ids."""
        ids = batch["row_id"]
        assert batch["obs"].dtype == np.uint8
        assert batch["obs"].shape == (len(ids), K, *self.mem.frame_shape)
        for i, o, t in zip(ids, batch["obs"], batch["teacher_out"]):
            np.testing.assert_array_equal(o, self.stacks[int(i)])
            np.testing.assert_array_equal(t, [i, -i, 0.5])
        # only rows among the last `capacity` added can be returned
        assert (ids >= self.next_id - self.mem.capacity).all() and (ids < self.next_id).all()
        return ids


def test_shifting_stacks_store_one_frame_per_env_per_step() -> None:
    mem = FrameStackMemory(100, FIELDS)
    envs = StackingEnvs(3, "repeat", seed=0)
    rec = Recorder(mem)
    rec.add(envs.stacks.copy())
    assert mem.frames_added == 3  # each reset stack is one frame repeated K times
    for _ in range(9):
        rec.add(envs.step())
    assert mem.frames_added == 3 + 9 * 3
    assert (len(mem), mem.added, mem.size, mem.next) == (30, 30, 30, 30)
    # a row of env e references the previous row's last K - 1 frames plus one new frame
    np.testing.assert_array_equal(mem.refs[27, :-1], mem.refs[24, 1:])
    assert mem.refs[27, -1] == mem.frames_added - 3
    rec.check(mem.all_rows())
    assert set(rec.check(mem.sample(300, np.random.default_rng(0)))) == set(range(30))


def test_interleaved_streams_share_frames_when_selected() -> None:
    """Two vector envs (e.g. two Ray actors) feeding one memory in turns: one new frame per row
    if each add names its stream, about K per row if the memory compares with the other env."""
    stored = {}
    for select in (True, False):
        mem = FrameStackMemory(200, FIELDS)
        a, b = StackingEnvs(2, "repeat", seed=2), StackingEnvs(2, "repeat", seed=3)
        rec = Recorder(mem)
        for t in range(10):
            for key, envs in (("a", a), ("b", b)):
                if select:
                    mem.select_stream(key)
                rec.add(envs.step([False, False]) if t else envs.stacks.copy())
        rec.check(mem.all_rows())
        stored[select] = mem.frames_added
    assert stored[True] == 2 * 2 + 9 * 2 * 2  # first stacks 1 frame each, then 1 frame per row
    assert stored[False] > 2 * stored[True]
    ReplayMemory(4, FIELDS).select_stream("a")  # the plain memory accepts (and ignores) it


def test_reset_costs_one_frame_with_repeat_padding_and_two_with_zeros() -> None:
    for padding, first_add, reset_step in [("repeat", 3, 3), ("zeros", 6, 4)]:
        mem = FrameStackMemory(100, FIELDS)
        envs = StackingEnvs(3, padding, seed=1)
        rec = Recorder(mem)
        rec.add(envs.stacks.copy())
        assert mem.frames_added == first_add  # zeros: one zero frame + the first frame per env
        for _ in range(5):
            rec.add(envs.step([False] * 3))
        before = mem.frames_added
        assert before == first_add + 5 * 3
        rec.add(envs.step([False, True, False]))  # env 1 starts a new episode
        assert mem.frames_added - before == reset_step
        assert len(set(mem.refs[mem.next - 2])) == (1 if padding == "repeat" else 2)
        rec.check(mem.all_rows())


@pytest.mark.parametrize("padding", ["repeat", "zeros", "mixed"])
def test_random_episodes_many_wraps_sample_exact_stacks(padding: str) -> None:
    mem = FrameStackMemory(50, FIELDS)
    assert mem.frame_capacity == 50 + 5 + 16 * K
    envs = StackingEnvs(3, padding, seed=2, p_end=0.15)
    rec = Recorder(mem)
    rng = np.random.default_rng(0)
    rec.add(envs.stacks.copy())
    for step in range(400):  # 1203 rows: the row ring wraps 24 times, the frame ring about 10 times
        rec.add(envs.step())
        if step % 50 == 0:
            rec.check(mem.sample(64, rng))
    assert mem.added == 1203 and len(mem) == 50
    assert mem.frames_added > 3 * mem.frame_capacity
    # with the default ring and ordinary episodes no row loses a frame
    assert mem.valid_mask().all()
    ids = rec.check(mem.sample(1000, rng))
    assert set(ids) == set(range(1203 - 50, 1203))
    # every frame is stored once, not K times: few more frames than rows were stored
    assert mem.frames_added < 1.25 * mem.added


def test_overwritten_frames_exclude_rows_unrelated_batches() -> None:
    # unrelated stacks of K distinct frames: every row stores K frames, the ring holds 5 rows' worth
    mem = FrameStackMemory(30, FIELDS, frame_capacity=20)
    rec = Recorder(mem)
    rng = np.random.default_rng(3)
    for _ in range(12):
        rec.add(rng.integers(1, 256, (1, K, H, W), dtype=np.uint8))
    assert mem.frames_added == 48
    np.testing.assert_array_equal(mem.valid_mask(), np.arange(12) >= 7)
    ids = rec.check(mem.sample(500, rng))
    assert set(ids) == {7, 8, 9, 10, 11}
    # one batch of 8 unrelated stacks (32 frames > 20 slots): only its last 5 rows keep their frames
    rec.add(rng.integers(1, 256, (8, K, H, W), dtype=np.uint8))
    assert mem.frames_added == 80
    np.testing.assert_array_equal(np.flatnonzero(mem.valid_mask()), np.arange(15, 20))
    assert set(rec.check(mem.sample(500, rng))) == {15, 16, 17, 18, 19}
    np.testing.assert_array_equal(mem.all_rows()["row_id"], [15, 16, 17, 18, 19])


def test_tight_ring_with_resets_and_mixed_batches_never_returns_a_wrong_frame() -> None:
    mem = FrameStackMemory(60, FIELDS, frame_capacity=40)
    envs = StackingEnvs(3, "mixed", seed=4, p_end=0.3)
    rec = Recorder(mem)
    rng = np.random.default_rng(4)
    saw_invalid = False
    for step in range(300):
        if step % 37 == 5:
            rec.add(rng.integers(0, 256, (2, K, H, W), dtype=np.uint8))  # unrelated, other n
        elif step % 23 == 7:
            rec.add(envs.step()[:2])  # fewer envs for one call
        else:
            rec.add(envs.step())
        valid = mem.valid_mask()
        saw_invalid |= not valid.all()
        assert valid.any()
        rec.check(mem.sample(16, rng))
    assert saw_invalid  # the ring is smaller than the rows: rejection really happened
    rec.check(mem.all_rows())


def test_frame_shared_by_every_reset_is_restored_before_it_ages_out() -> None:
    # one-step episodes with zero padding: every stack is [0 0 0 f], so the zero frame could be
    # reused forever; reusing only recent frames re-stores it in time and no row loses a frame
    mem = FrameStackMemory(20, FIELDS)
    envs = StackingEnvs(1, "zeros", seed=10)
    rec = Recorder(mem)
    rec.add(envs.stacks.copy())
    for _ in range(300):
        rec.add(envs.step([True]))
        assert mem.valid_mask().all()
    assert mem.frames_added > 3 * mem.frame_capacity
    # mostly one new frame per row: the zero frame is shared by many consecutive rows
    assert mem.frames_added < 1.1 * mem.added
    rec.check(mem.all_rows())


def test_env_count_changes_between_calls() -> None:
    mem = FrameStackMemory(100, FIELDS)
    envs = StackingEnvs(5, "repeat", seed=5)
    rec = Recorder(mem)
    rec.add(envs.stacks[:3].copy())
    assert mem.frames_added == 3
    obs = envs.step([False] * 5)
    rec.add(obs[:2])  # envs 0, 1 continue: one frame each
    assert mem.frames_added == 5
    obs = envs.step([False] * 5)
    rec.add(obs)  # envs 0, 1 shift: one frame each
    # envs 2-4 had no row in the last call: each stores its distinct frames a, b, c of [a a b c]
    assert mem.frames_added == 5 + 2 + 3 * 3
    rec.check(mem.all_rows())


def test_batch_larger_than_capacity_keeps_newest_rows() -> None:
    mem = FrameStackMemory(5, FIELDS)
    envs = StackingEnvs(7, "zeros", seed=6)
    rec = Recorder(mem)
    rec.add(envs.stacks.copy())
    assert (len(mem), mem.added, mem.next) == (5, 7, 2)
    assert sorted(mem.data["row_id"]) == [2, 3, 4, 5, 6]
    rec.add(envs.step())
    assert mem.frames_added == 14 + 7
    assert set(rec.check(mem.sample(200, np.random.default_rng(0)))) == {9, 10, 11, 12, 13}


def test_save_load_round_trip_then_continue() -> None:
    mem = FrameStackMemory(40, FIELDS)
    envs = StackingEnvs(3, "mixed", seed=7, p_end=0.1)
    rec = Recorder(mem)
    rec.add(envs.stacks.copy())
    for _ in range(30):
        rec.add(envs.step())
    blob = mem.to_bytes()
    assert blob[:2] == b"PK"
    with np.load(io.BytesIO(blob), allow_pickle=False) as z:
        assert set(z.files) == {
            "counters",
            "frames",
            "refs",
            "last_refs",
            "field_row_id",
            "field_teacher_out",
        }

    other = FrameStackMemory(40, FIELDS)
    other.load_bytes(blob)
    for attr in ("capacity", "next", "size", "added", "frame_capacity", "frames_added"):
        assert getattr(other, attr) == getattr(mem, attr), attr
    np.testing.assert_array_equal(other.last_refs, mem.last_refs)
    np.testing.assert_array_equal(other.refs[: mem.size], mem.refs[: mem.size])
    a, b = mem.sample(64, np.random.default_rng(1)), other.sample(64, np.random.default_rng(1))
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])

    # continuing: the restored memory still finds the shifted frames (3 new frames per step)
    rec.mem = other
    before = other.frames_added
    rec.add(envs.step([False] * 3))
    assert other.frames_added == before + 3
    for _ in range(50):
        rec.add(envs.step())
    rec.check(other.sample(256, np.random.default_rng(2)))
    rec.check(other.all_rows())


def test_load_into_other_shape_raises() -> None:
    mem = FrameStackMemory(10, FIELDS)
    Recorder(mem).add(StackingEnvs(2, "repeat", seed=8).stacks.copy())
    with pytest.raises(ValueError, match="capacity"):
        FrameStackMemory(11, FIELDS).load_bytes(mem.to_bytes())
    with pytest.raises(ValueError, match="frame ring"):
        FrameStackMemory(10, FIELDS, frame_capacity=30).load_bytes(mem.to_bytes())


def test_nbytes_about_four_times_smaller_than_replay_memory_same_data() -> None:
    fields = {"obs": ((K, 84, 84), np.uint8), "teacher_out": ((18,), np.float32)}
    frames = FrameStackMemory(2000, fields)
    plain = ReplayMemory(2000, fields)
    envs = StackingEnvs(3, "zeros", seed=9, p_end=0.05, shape=(84, 84))
    for _ in range(40):
        obs = envs.step()
        q = np.random.default_rng(0).standard_normal((3, 18)).astype(np.float32)
        frames.add(obs=obs, teacher_out=q)
        plain.add(obs=obs, teacher_out=q)
    # same data, same rng: the same rows come back (no row of `frames` is invalid)
    a, b = frames.sample(32, np.random.default_rng(5)), plain.sample(32, np.random.default_rng(5))
    for k in fields:
        np.testing.assert_array_equal(a[k], b[k])
    ring = 2000 + 200 + 16 * K
    assert frames.nbytes_per_row() == math.ceil((ring * 84 * 84 + 2000 * (K * 8 + 72) + 3 * K * 8) / 2000)
    assert plain.nbytes_per_row() == K * 84 * 84 + 72
    ratio = plain.nbytes_per_row() / frames.nbytes_per_row()
    print(f"ReplayMemory {plain.nbytes_per_row()} B/row, FrameStackMemory {frames.nbytes_per_row()} B/row")
    assert 3.4 < ratio < 4


def test_atari_sizing_fits_540k_rows_in_5gb() -> None:
    # np.zeros is lazily committed: constructing does not touch the ~4.2 GB of the ring
    mem = FrameStackMemory(540_000, {"obs": ((4, 84, 84), np.uint8), "teacher_out": ((18,), np.float32)})
    per_row = mem.nbytes_per_row()
    print(f"FrameStackMemory Atari bytes/row: {per_row} (limit 9259); total {per_row * 540_000 / 1e9:.2f} GB")
    assert mem.frame_capacity == 540_000 + 54_000 + 64
    assert per_row == math.ceil((594_064 * 84 * 84 + 540_000 * (4 * 8 + 18 * 4)) / 540_000) == 7867
    assert per_row < 5e9 / 540_000


def test_empty_like_both_classes() -> None:
    fields = {"x": ((2, 3, 3), np.uint8), "q": ((4,), np.float32)}
    mem = FrameStackMemory(10, fields, frame_field="x")
    mem.add(x=np.ones((2, 2, 3, 3), np.uint8), q=np.zeros((2, 4), np.float32))
    new = mem.empty_like(7)
    assert isinstance(new, FrameStackMemory)
    assert (new.capacity, new.size, new.added, new.frames_added, new.frame_field) == (7, 0, 0, 0, "x")
    assert new.fields == mem.fields and new.frame_capacity == 7 + 0 + 16 * 2
    new.add(x=np.full((1, 2, 3, 3), 9, np.uint8), q=np.ones((1, 4), np.float32))
    assert mem.size == 2  # the original is untouched
    np.testing.assert_array_equal(new.sample(2, np.random.default_rng(0))["x"], np.full((2, 2, 3, 3), 9))

    plain = ReplayMemory(10, fields)
    plain.add(x=np.ones((3, 2, 3, 3), np.uint8), q=np.zeros((3, 4), np.float32))
    other = plain.empty_like(4)
    assert isinstance(other, ReplayMemory)
    assert (other.capacity, other.size, other.added) == (4, 0, 0)
    assert {k: (v.shape, v.dtype) for k, v in other.data.items()} == {
        "x": ((4, 2, 3, 3), np.dtype(np.uint8)),
        "q": ((4, 4), np.dtype(np.float32)),
    }


def test_bad_input_raises_clear_errors() -> None:
    with pytest.raises(KeyError, match="frame field 'obs'"):
        FrameStackMemory(10, {"frames": ((K, H, W), np.uint8)})
    with pytest.raises(ValueError, match=r"row shape \(k, H, W\)"):
        FrameStackMemory(10, {"obs": ((H, W), np.uint8)})
    with pytest.raises(ValueError, match="capacity"):
        FrameStackMemory(0, FIELDS)
    with pytest.raises(ValueError, match="frame_capacity"):
        FrameStackMemory(10, FIELDS, frame_capacity=K - 1)
    mem = FrameStackMemory(10, FIELDS)
    ok = {"row_id": np.zeros(2, np.int64), "teacher_out": np.zeros((2, 3), np.float32)}
    with pytest.raises(KeyError, match="expected fields"):
        mem.add(obs=np.zeros((2, K, H, W), np.uint8), row_id=ok["row_id"])
    with pytest.raises(ValueError, match=r"must have shape \(n, 4, 6, 6\), got \(4, 6, 6\)"):
        mem.add(obs=np.zeros((K, H, W), np.uint8), **ok)  # one stack without the env axis
    with pytest.raises(ValueError, match="must have shape"):
        mem.add(obs=np.zeros((2, K + 1, H, W), np.uint8), **ok)
    with pytest.raises(ValueError, match="has 2 rows"):
        mem.add(obs=np.zeros((3, K, H, W), np.uint8), **ok)
    with pytest.raises(RuntimeError, match="empty"):
        mem.sample(1, np.random.default_rng(0))
    assert mem.size == 0 and mem.frames_added == 0  # nothing half-added


# --------------------------------------------------------------------------- next_frame_field (DQN)

DQN_FIELDS = {
    "obs": ((K, H, W), np.uint8),
    "next_obs": ((K, H, W), np.uint8),
    "row_id": ((), np.int64),
    "done": ((), np.float32),
}


class TransitionEnvs(StackingEnvs):
    """``StackingEnvs`` stepped as a ``SAME_STEP`` autoreset vector env gives DQN's transitions.

    :meth:`transition` returns ``(next_obs, done)``: every env's true next stack (an ended
    episode's last stack too, as ``final_observations`` stores it) and where an episode ended;
    ``stacks`` then holds what the env returns, a reset stack where the episode ended.
    """

    def transition(self, ends: list[bool] | None = None) -> tuple[np.ndarray, np.ndarray]:
        if ends is None:
            ends = list(self.rng.random(len(self.stacks)) < self.p_end)
        next_obs = self.step([False] * len(self.stacks))
        for e in np.flatnonzero(ends):
            self.stacks[e] = self._reset_stack()
        return next_obs, np.asarray(ends)


class TransitionRecorder:
    """Adds ``(obs, next_obs, done)`` rows with unique ids and keeps each id's exact stacks."""

    def __init__(self, mem: FrameStackMemory) -> None:
        self.mem = mem
        self.rows: dict[int, tuple[np.ndarray, np.ndarray, bool]] = {}
        self.next_id = 0

    def add(self, obs: np.ndarray, next_obs: np.ndarray, done: np.ndarray) -> None:
        ids = np.arange(self.next_id, self.next_id + len(obs))
        self.mem.add(obs=obs, next_obs=next_obs, row_id=ids, done=done.astype(np.float32))
        self.rows.update(
            {int(i): (o.copy(), n.copy(), bool(d)) for i, o, n, d in zip(ids, obs, next_obs, done)}
        )
        self.next_id += len(obs)

    def step(self, envs: TransitionEnvs, ends: list[bool] | None = None) -> np.ndarray:
        """One vector step of ``envs`` stored as transitions; returns where episodes ended."""
        obs = envs.stacks.copy()
        next_obs, done = envs.transition(ends)
        self.add(obs, next_obs, done)
        return done

    def check(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        """Assert every row of ``batch`` is bit-identical to what was added under its id; return the ids."""
        ids = batch["row_id"]
        for name in ("obs", "next_obs"):
            assert batch[name].dtype == np.uint8 and batch[name].shape == (len(ids), K, *self.mem.frame_shape)
        for i, o, n, d in zip(ids, batch["obs"], batch["next_obs"], batch["done"]):
            want_obs, want_next, want_done = self.rows[int(i)]
            np.testing.assert_array_equal(o, want_obs)
            np.testing.assert_array_equal(n, want_next)
            assert d == want_done
        assert (ids >= self.next_id - self.mem.capacity).all() and (ids < self.next_id).all()
        return ids


def test_next_field_continuing_streams_cost_one_frame_per_row() -> None:
    mem = FrameStackMemory(100, DQN_FIELDS, next_frame_field="next_obs")
    envs = TransitionEnvs(3, "repeat", seed=20)
    rec = TransitionRecorder(mem)
    rec.step(envs, [False] * 3)
    assert mem.frames_added == 3 + 3  # each reset stack is one frame; each next stack adds one
    for _ in range(59):
        rec.step(envs, [False] * 3)
    assert mem.added == 180 and len(mem) == 100
    assert mem.frames_added == 3 + 180  # obs is the previous next_obs: nothing new for it
    # next_obs of a row is its obs shifted by one frame; the next row of the env starts there
    r = (mem.next - 1) % mem.capacity
    np.testing.assert_array_equal(mem.next_refs[r, :-1], mem.refs[r, 1:])
    np.testing.assert_array_equal(mem.refs[r], mem.next_refs[r - 3])
    assert mem.valid_mask().all()
    assert sorted(rec.check(mem.all_rows())) == list(range(80, 180))
    assert set(rec.check(mem.sample(500, np.random.default_rng(0)))) == set(range(80, 180))


@pytest.mark.parametrize("padding, reset_cost", [("repeat", 1), ("zeros", 2)])
def test_next_field_episode_end_stores_final_stack_and_reset_stack_exactly(
    padding: str, reset_cost: int
) -> None:
    mem = FrameStackMemory(100, DQN_FIELDS, next_frame_field="next_obs")
    envs = TransitionEnvs(3, padding, seed=21)
    rec = TransitionRecorder(mem)
    for _ in range(5):
        rec.step(envs, [False] * 3)
    final = envs.stacks[1].copy()  # env 1's last obs; its episode ends at the next step
    before = mem.frames_added
    rec.step(envs, [False, True, False])
    assert mem.frames_added - before == 3  # the final stack is obs shifted: one frame, as any step
    reset = envs.stacks[1].copy()
    ended = mem.next - 2  # env 1's row
    rows = mem.all_rows()
    np.testing.assert_array_equal(rows["next_obs"][ended, :-1], final[1:])  # the true last stack
    assert rows["done"][ended] == 1 and rows["done"].sum() == 1
    assert not np.array_equal(rows["next_obs"][ended], reset)
    before = mem.frames_added
    rec.step(envs, [False] * 3)
    # the reset stack was no next_obs of any row: it costs its distinct frames, then one as usual
    assert mem.frames_added - before == 3 + reset_cost
    np.testing.assert_array_equal(mem.all_rows()["obs"][mem.next - 2], reset)
    rec.check(mem.all_rows())
    rec.check(mem.sample(200, np.random.default_rng(1)))


@pytest.mark.parametrize("padding", ["repeat", "zeros", "mixed"])
def test_next_field_random_episodes_about_one_frame_per_row(padding: str) -> None:
    mem = FrameStackMemory(50, DQN_FIELDS, next_frame_field="next_obs")
    envs = TransitionEnvs(3, padding, seed=22, p_end=0.1)
    rec = TransitionRecorder(mem)
    rng = np.random.default_rng(2)
    ends = 0
    for step in range(400):
        ends += int(rec.step(envs).sum())
        if step % 50 == 0:
            rec.check(mem.sample(64, rng))
    assert ends > 50 and mem.added == 1200
    assert mem.frames_added <= 3 * 2 + mem.added + 2 * ends  # first stacks, one per row, resets
    assert mem.valid_mask().all()  # the default ring holds every row's frames
    assert set(rec.check(mem.sample(1000, rng))) == set(range(1150, 1200))


def test_next_field_rows_with_overwritten_frames_are_never_returned() -> None:
    # a ring smaller than the rows, plus resets, unrelated batches and fewer envs for some calls
    mem = FrameStackMemory(60, DQN_FIELDS, next_frame_field="next_obs", frame_capacity=40)
    envs = TransitionEnvs(3, "mixed", seed=23, p_end=0.3)
    rec = TransitionRecorder(mem)
    rng = np.random.default_rng(3)
    saw_invalid = False
    for step in range(300):
        if step % 37 == 5:
            obs = rng.integers(0, 256, (2, K, H, W), dtype=np.uint8)
            rec.add(obs, rng.integers(0, 256, (2, K, H, W), dtype=np.uint8), np.zeros(2, bool))
        elif step % 23 == 7:
            obs = envs.stacks[:2].copy()
            next_obs, done = envs.transition()
            rec.add(obs, next_obs[:2], done[:2])
        else:
            rec.step(envs)
        valid = mem.valid_mask()
        saw_invalid |= not valid.all()
        assert valid.any()
        rec.check(mem.sample(16, rng))
        ids = rec.check(mem.all_rows())
        assert len(ids) == valid.sum()
    assert saw_invalid  # rows really lost frames, and none of them was returned


def test_next_field_of_wrong_shape_is_refused() -> None:
    with pytest.raises(KeyError, match="frame field 'next'"):
        FrameStackMemory(10, DQN_FIELDS, next_frame_field="next")
    bad = {**DQN_FIELDS, "next_obs": ((K, H, W + 1), np.uint8)}
    with pytest.raises(ValueError, match="must have the same shape"):
        FrameStackMemory(10, bad, next_frame_field="next_obs")
    with pytest.raises(ValueError, match="must have the same shape"):
        FrameStackMemory(10, {**DQN_FIELDS, "next_obs": ((K, H, W), np.float32)}, next_frame_field="next_obs")
    mem = FrameStackMemory(10, DQN_FIELDS, next_frame_field="next_obs")
    obs = np.ones((2, K, H, W), np.uint8)
    ok = {"row_id": np.zeros(2, np.int64), "done": np.zeros(2, np.float32)}
    with pytest.raises(ValueError, match=r"'next_obs' must have shape \(n, 4, 6, 6\), got \(2, 3, 6, 6\)"):
        mem.add(obs=obs, next_obs=np.ones((2, K - 1, H, W), np.uint8), **ok)
    with pytest.raises(ValueError, match="'next_obs' has 3 rows"):
        mem.add(obs=obs, next_obs=np.ones((3, K, H, W), np.uint8), **ok)
    with pytest.raises(KeyError, match="expected fields"):
        mem.add(obs=obs, **ok)
    assert mem.size == 0 and mem.frames_added == 0  # nothing half-added


def test_next_field_npz_round_trip_then_continue() -> None:
    mem = FrameStackMemory(40, DQN_FIELDS, next_frame_field="next_obs")
    envs = TransitionEnvs(3, "mixed", seed=24, p_end=0.1)
    rec = TransitionRecorder(mem)
    for _ in range(30):
        rec.step(envs)
    blob = mem.to_bytes()
    with np.load(io.BytesIO(blob), allow_pickle=False) as z:
        assert set(z.files) == {
            "counters",
            "frames",
            "refs",
            "next_refs",
            "last_refs",
            "field_row_id",
            "field_done",
        }
    other = FrameStackMemory(40, DQN_FIELDS, next_frame_field="next_obs")
    other.load_bytes(blob)
    for attr in ("capacity", "next", "size", "added", "frame_capacity", "frames_added"):
        assert getattr(other, attr) == getattr(mem, attr), attr
    np.testing.assert_array_equal(other.next_refs, mem.next_refs)
    a, b = mem.all_rows(), other.all_rows()
    assert all(np.array_equal(a[k], b[k]) for k in DQN_FIELDS)
    rec.check(b)
    # continuing: the restored memory's obs is its last next_obs, so a step costs one frame per env
    rec.mem = other
    before = other.frames_added
    rec.step(envs, [False] * 3)
    assert other.frames_added == before + 3
    for _ in range(40):
        rec.step(envs)
    rec.check(other.all_rows())
    rec.check(other.sample(256, np.random.default_rng(5)))


def test_next_field_memory_refuses_a_blob_without_next_frame_numbers() -> None:
    # the same fields, next_obs stored as a plain field (the memory DQN had before next_frame_field)
    plain = FrameStackMemory(20, DQN_FIELDS)
    rec = TransitionRecorder(plain)
    envs = TransitionEnvs(2, "repeat", seed=25)
    for _ in range(5):
        rec.step(envs)
    mem = FrameStackMemory(20, DQN_FIELDS, next_frame_field="next_obs")
    keep, other_envs = TransitionRecorder(mem), TransitionEnvs(2, "zeros", seed=26)
    for _ in range(4):
        keep.step(other_envs)
    frames, refs = mem.frames.copy(), mem.refs.copy()
    with pytest.raises(ValueError, match="no next-observation frame numbers"):
        mem.load_bytes(plain.to_bytes())
    # the refused blob changed nothing
    np.testing.assert_array_equal(mem.frames, frames)
    np.testing.assert_array_equal(mem.refs, refs)
    keep.check(mem.all_rows())
    # and the other way round: a blob with next frame numbers lacks the plain next_obs field
    with pytest.raises(ValueError, match=r"lacks the fields \['next_obs'\]"):
        FrameStackMemory(20, DQN_FIELDS).load_bytes(mem.to_bytes())
