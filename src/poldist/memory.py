"""Replay memory: a bounded ring buffer of named fields, shared by DQN and distillation.

Distillation stores ``obs`` (uint8) with the teacher's output vector; DQN stores
``obs``, ``action``, ``reward``, ``next_obs`` and ``done``. Observations stay in
their compact uint8 form; nothing is converted to float until a minibatch is drawn.

:class:`FrameStackMemory` is a drop-in for distillation on Atari: it stores each frame of
the stacked ``(k, H, W)`` observations once instead of ``k`` times, so the paper's
540,000-transition memory takes about 4.2 GB instead of 15 GB.
"""

from __future__ import annotations

import io
import math
from collections.abc import Hashable, Mapping
from typing import BinaryIO

import numpy as np


def pack_binary_fields(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``field_<name>`` arrays of uint8 0s and 1s become flat bit-packed ``bits_<name>`` arrays
    (:meth:`ReplayMemory.load_bytes` restores them); other arrays are kept as they are."""
    out = {}
    for key, rows in arrays.items():
        name = key.removeprefix("field_")
        if key != name and rows.dtype == np.uint8 and rows.size and rows.max() <= 1:
            out[f"bits_{name}"] = np.packbits(rows, axis=None)
        else:
            out[key] = rows
    return out


class ReplayMemory:
    """Ring buffer of ``capacity`` rows; each field is one preallocated numpy array.

    Args:
        capacity: rows kept; the oldest are overwritten first.
        fields: ``name -> (shape of one row, dtype)``, e.g.
            ``{"obs": ((4, 10, 10), np.uint8), "teacher_out": ((3,), np.float32)}``.
    """

    def __init__(self, capacity: int, fields: Mapping[str, tuple[tuple[int, ...], np.dtype]]):
        if capacity <= 0:
            raise ValueError(f"capacity must be positive, got {capacity}")
        self.capacity = int(capacity)
        self.data = {k: np.zeros((capacity, *shape), dtype) for k, (shape, dtype) in fields.items()}
        self.next = 0  # index of the next row to write
        self.size = 0
        self.added = 0  # rows ever added

    def __len__(self) -> int:
        return self.size

    def empty_like(self, capacity: int) -> ReplayMemory:
        """A new, empty memory with the same fields (row shapes and dtypes) and ``capacity`` rows."""
        return ReplayMemory(capacity, {k: (v.shape[1:], v.dtype) for k, v in self.data.items()})

    def all_rows(self) -> dict[str, np.ndarray]:
        """Every stored row in storage order: each field as ``(size, *row_shape)`` (views)."""
        return {k: v[: self.size] for k, v in self.data.items()}

    def select_stream(self, key: Hashable) -> None:
        """Name the env stream the next ``add`` comes from; rows do not depend on it here.

        :class:`FrameStackMemory` shares frames along a stream, so a caller feeding one memory
        from several vector envs (e.g. one Ray actor each) selects each env's stream first.
        """

    def add(self, **rows: np.ndarray) -> None:
        """Append a batch: each field's array has shape ``(n, *row_shape)``, same ``n`` for all."""
        if set(rows) != set(self.data):
            raise KeyError(f"expected fields {sorted(self.data)}, got {sorted(rows)}")
        n = len(next(iter(rows.values())))
        # a slice when the rows do not wrap: no index array (a vector step's add, ~25 us sooner)
        idx = (
            slice(self.next, self.next + n)
            if self.next + n <= self.capacity
            else (self.next + np.arange(n)) % self.capacity
        )
        for k, v in rows.items():
            self.data[k][idx] = v
        self.next = int((self.next + n) % self.capacity)
        self.size = min(self.size + n, self.capacity)
        self.added += n

    def sample(self, batch_size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Uniform sample with replacement: each field as ``(batch_size, *row_shape)``."""
        if self.size == 0:
            raise RuntimeError("cannot sample from an empty replay memory")
        idx = rng.integers(0, self.size, batch_size)
        return {k: v[idx] for k, v in self.data.items()}

    def nbytes_per_row(self) -> int:
        """Bytes one stored transition takes."""
        return sum(v[0].nbytes for v in self.data.values())

    def write_npz(self, file: BinaryIO) -> None:
        """Write the ``.npz`` of :meth:`to_bytes` into ``file`` (open for binary writing), streaming.

        Arrays go to ``file`` in chunks of at most 16 MiB, so no second copy of the memory is
        made (only bit-packed fields are packed first, an eighth of their size); a checkpoint
        writes it this way. A seekable ``file`` gets the same bytes as :meth:`to_bytes`.
        """
        arrays = pack_binary_fields({f"field_{k}": v[: self.size] for k, v in self.data.items()})
        counters = np.array([self.capacity, self.next, self.size, self.added], np.int64)
        np.savez(file, counters=counters, **arrays)

    def to_bytes(self) -> bytes:
        """Serialise as an ``.npz`` (no pickle): the filled rows and the counters.

        A uint8 field holding only 0s and 1s (MinAtar's frames) is stored bit-packed
        (``bits_<name>``): 8x smaller checkpoints, restored bit-identical. The whole file is
        built in memory; :meth:`write_npz` streams the same bytes into a file instead.
        """
        buf = io.BytesIO()
        self.write_npz(buf)
        return buf.getvalue()

    def load_bytes(self, blob: bytes) -> None:
        """Restore what :meth:`to_bytes` wrote into this (same-shaped) memory."""
        with np.load(io.BytesIO(blob), allow_pickle=False) as z:
            capacity, nxt, size, added = (int(x) for x in z["counters"])
            if capacity != self.capacity:
                raise ValueError(f"memory capacity {capacity} != {self.capacity}")
            for k, v in self.data.items():
                if f"bits_{k}" in z.files:
                    count = size * math.prod(v.shape[1:])
                    v[:size] = np.unpackbits(z[f"bits_{k}"], count=count).reshape(size, *v.shape[1:])
                else:
                    v[:size] = z[f"field_{k}"]
        self.next, self.size, self.added = nxt, size, added


class FrameStackMemory:
    """Replay memory of stacked-frame observations that stores every frame once, not ``k`` times.

    A drop-in for :class:`ReplayMemory` in distillation: ``add`` takes the ``(n, k, H, W)``
    observations of one vector env per call (env ``e`` in row ``e`` every call, newest frame
    last) and ``sample`` gives them back bit-identical. Between two calls env ``e``'s stack
    normally shifts by one frame, so a row costs one new frame plus ``k`` frame numbers.

    Layout:
        ``frames``: ``(frame_capacity, H, W)`` ring of single frames. Frame number ``g``
        (counted over the memory's life, ``0 <= g < frames_added``) lives in slot
        ``g % frame_capacity`` and is still there iff ``g >= frames_added - frame_capacity``.
        ``refs``: ``(capacity, k)`` int64, the frame numbers of each row's stack, oldest first.
        ``data``: the other fields, ``name -> (capacity, *row_shape)`` as in ReplayMemory.
        ``last_refs``: ``(n, k)``, the stacks of the previous ``add`` (where to look for frames).

    Finding frames: for each env, if ``obs[e, :-1]`` equals the previous call's ``obs[e, 1:]``
    (bytes compared, all envs at once) only ``obs[e, -1]`` is stored. Otherwise (autoreset,
    another env count, an unrelated batch) each frame is looked up among the earlier frames of
    its own stack (reset padding: repeated first frame or zeros) and env ``e``'s previous stack,
    and stored if not found: a reset costs 1-2 frames, an unrelated stack at most ``k``. Only
    frames still in the ring and at most ``k * n + (frame_capacity - capacity) // 2`` frames old
    are reused, so a row's oldest frame is never much older than the row itself.

    Ring size and overwritten frames: the default ``frame_capacity`` is
    ``capacity + capacity // 10 + 16 * k``. In steady state each row adds one frame, and the
    oldest frame of the oldest row is ``(k - 1) * n`` frames older than that row, so the
    ``16 * k`` covers that lag for up to 16 envs and the 10% covers the extra frames of
    resets (at most one per reset with either padding, i.e. episodes longer than ~10 steps).
    Sizing cannot make overwriting impossible for every input (a stream of unrelated stacks
    needs ``k`` frames per row), so correctness does not rest on it: a row is valid iff all
    its frame numbers are still in the ring, and :meth:`sample` rejects and redraws invalid
    rows, so it never returns a wrong frame. :meth:`valid_mask` says which rows are valid.

    Args:
        capacity: rows kept; the oldest are overwritten first.
        fields: ``name -> (shape of one row, dtype)``; ``fields[frame_field]`` must be
            ``((k, H, W), np.uint8)``, e.g. ``{"obs": ((4, 84, 84), np.uint8),
            "teacher_out": ((18,), np.float32)}``.
        frame_field: the stacked-frame field.
        next_frame_field: a second stacked-frame field holding each row's next observation (DQN's
            ``next_obs``), sharing the ring: ``obs`` of one call is usually the previous call's
            ``next_obs`` and ``next_obs`` is ``obs`` shifted by a frame, so a DQN transition
            costs one new frame as well. Its frame numbers are kept in ``next_refs``.
        frame_capacity: frames in the ring (default above); at least ``k``.
    """

    def __init__(
        self,
        capacity: int,
        fields: Mapping[str, tuple[tuple[int, ...], np.dtype]],
        frame_field: str = "obs",
        frame_capacity: int | None = None,
        next_frame_field: str | None = None,
    ):
        if capacity <= 0:
            raise ValueError(f"capacity must be positive, got {capacity}")
        for name in (frame_field, next_frame_field):
            if name is not None and name not in fields:
                raise KeyError(f"frame field {name!r} is not among the fields {sorted(fields)}")
        self.fields = {
            name: (tuple(int(d) for d in shape), np.dtype(dt)) for name, (shape, dt) in fields.items()
        }
        shape, dtype = self.fields[frame_field]
        if next_frame_field is not None and self.fields[next_frame_field] != (shape, dtype):
            raise ValueError(f"fields {frame_field!r} and {next_frame_field!r} must have the same shape")
        if len(shape) != 3 or min(shape) <= 0:
            raise ValueError(f"field {frame_field!r} must have row shape (k, H, W), got {shape}")
        k, height, width = shape
        if frame_capacity is None:
            frame_capacity = capacity + capacity // 10 + 16 * k
        if frame_capacity < k:
            raise ValueError(
                f"frame_capacity must hold at least one stack ({k} frames), got {frame_capacity}"
            )
        self.capacity = int(capacity)
        self.frame_field = frame_field
        self.next_frame_field = next_frame_field
        self.frame_capacity = int(frame_capacity)
        self.k = k
        self.frame_shape = (height, width)
        # np.zeros: pages are committed only when written, so a large ring costs nothing up front
        self.frames = np.zeros((self.frame_capacity, height, width), dtype)
        self.refs = np.zeros((self.capacity, k), np.int64)
        # DQN's next observations: their own frame numbers into the same ring (1 new frame a row)
        self.next_refs = np.zeros((self.capacity if next_frame_field else 0, k), np.int64)
        self.data = {
            name: np.zeros((self.capacity, *s), dt)
            for name, (s, dt) in self.fields.items()
            if name not in (frame_field, next_frame_field)
        }
        self.last_refs = np.zeros((0, k), np.int64)
        self._stream: Hashable = None  # the stream last_refs belongs to
        self._other_streams: dict[Hashable, np.ndarray] = {}  # last_refs of the other streams
        self.next = 0  # index of the next row to write
        self.size = 0
        self.added = 0  # rows ever added
        self.frames_added = 0  # frames ever stored; the next frame's number

    def __len__(self) -> int:
        return self.size

    def empty_like(self, capacity: int) -> FrameStackMemory:
        """A new, empty memory with the same fields and ``capacity`` rows (default frame ring for it)."""
        return FrameStackMemory(
            capacity, self.fields, frame_field=self.frame_field, next_frame_field=self.next_frame_field
        )

    def select_stream(self, key: Hashable) -> None:
        """Make the next ``add`` continue the env stream ``key`` (its own previous stacks).

        Frames are shared between an env's consecutive stacks; with several vector envs feeding
        one memory in turns, each ``add`` must be compared with the same env's previous call,
        not with whichever env added last. A single stream (the default) never needs this.
        """
        if key == self._stream:
            return
        self._other_streams[self._stream] = self.last_refs
        self.last_refs = self._other_streams.pop(key, self.last_refs[:0])
        self._stream = key

    def add(self, **rows: np.ndarray) -> None:
        """Append a batch: ``rows[frame_field]`` is ``(n, k, H, W)``, every other field ``(n, *row_shape)``.

        Call it once per vector-env step with the envs in the same order; any other batch is
        also stored correctly, just with less sharing of frames.
        """
        if set(rows) != set(self.fields):
            raise KeyError(f"expected fields {sorted(self.fields)}, got {sorted(rows)}")
        names = (self.frame_field, self.next_frame_field)
        stacks = {name: self._stacks(rows, name) for name in names if name}
        n = len(stacks[self.frame_field])
        for name in (*self.data, *stacks):
            if len(rows[name]) != n:
                raise ValueError(f"field {name!r} has {len(rows[name])} rows, {self.frame_field!r} has {n}")
        if n == 0:
            return
        obs = stacks[self.frame_field]
        if self.next_frame_field is None:
            # consecutive calls of an env stream: obs[e] is the previous obs[e] shifted by one frame
            refs = self._add_stacks(obs, self.last_refs, shift=1)
            self.last_refs = refs
        else:
            # obs[e] is the previous call's next_obs[e] (unless env e was reset), and next_obs[e] is
            # obs[e] shifted by one frame (also the true last stack of an episode that just ended)
            refs = self._add_stacks(obs, self.last_refs, shift=0)
            next_refs = self._add_stacks(stacks[self.next_frame_field], refs, shift=1)
            self.last_refs = next_refs
        # a batch larger than the memory keeps its newest rows, in the slots ReplayMemory would use
        first = max(0, n - self.capacity)
        idx = (self.next + np.arange(first, n)) % self.capacity
        self.refs[idx] = refs[first:]
        if self.next_frame_field is not None:
            self.next_refs[idx] = next_refs[first:]
        for name, v in self.data.items():
            v[idx] = np.asarray(rows[name])[first:]
        self.next = int((self.next + n) % self.capacity)
        self.size = min(self.size + n, self.capacity)
        self.added += n

    def _stacks(self, rows: dict[str, np.ndarray], name: str) -> np.ndarray:
        """``rows[name]`` as ``(n, k, H, W)`` in the ring's dtype (as ReplayMemory stores a field)."""
        obs = np.asarray(rows[name])
        want = (self.k, *self.frame_shape)
        if obs.ndim != 4 or obs.shape[1:] != want:
            raise ValueError(
                f"field {name!r} must have shape (n, {', '.join(map(str, want))}), got {obs.shape}"
            )
        return obs.astype(self.frames.dtype, copy=False)

    def _add_stacks(self, obs: np.ndarray, prev_refs: np.ndarray, shift: int) -> np.ndarray:
        """Store the new frames of stacks ``obs`` ``(n, k, H, W)``; return their numbers ``(n, k)``."""
        refs, new_e, new_j = self._find_frames(obs, prev_refs, shift)
        self._store_frames(obs[new_e, new_j])
        return refs

    def _find_frames(
        self, obs: np.ndarray, last_refs: np.ndarray, shift: int = 1
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Frame numbers for the stacks ``obs`` ``(n, k, H, W)``.

        ``last_refs`` ``(m, k)``: the stacks that env ``e``'s stack most likely continues, ``shift``
        (0 or 1) frames later.

        Returns:
            ``refs`` ``(n, k)`` int64, and the positions ``(e, j)`` (two ``(m,)`` arrays) of the
            frames to store, which get numbers ``frames_added, ..., frames_added + m - 1`` in order.
        """
        n, k = obs.shape[:2]
        ring = self.frame_capacity
        # reuse only recent frames: a row's oldest frame then stays close to the row's own age
        window = min(ring, k * n + max(ring - self.capacity, 0) // 2)
        reuse_lo = self.frames_added - window
        # env e continues env e of the previous call; bytes are compared, so a wrong guess costs only space
        m = min(n, len(last_refs))
        prev_refs = last_refs[:m]
        prev = self.frames[prev_refs % ring]  # (m, k, H, W); stale numbers are masked by prev_ok
        prev_ok = prev_refs >= reuse_lo
        shifted = np.zeros(n, bool)
        if k == shift:
            shifted[:] = True  # nothing to share: every row stores its one frame
        elif m:
            same = (obs[:m, : k - shift] == prev[:, shift:]).all(axis=(1, 2, 3))
            shifted[:m] = prev_ok[:, shift:].all(1) & same
        refs = np.empty((n, k), np.int64)
        sh = np.flatnonzero(shifted)
        if k > shift:
            refs[sh, : k - shift] = last_refs[sh, shift:]
        new_e, new_j = [], []
        if shift:
            refs[sh, -1] = self.frames_added + np.arange(len(sh))
            new_e, new_j = list(sh), [k - 1] * len(sh)
        for e in np.flatnonzero(~shifted):  # resets and unrelated stacks: few, so a plain loop
            for j in range(k):
                ref = -1
                for j2 in range(j):  # repeated within the stack (reset padding)
                    if np.array_equal(obs[e, j], obs[e, j2]):
                        ref = refs[e, j2]
                        break
                if ref < 0 and e < m:
                    for i in range(k):
                        if prev_ok[e, i] and np.array_equal(obs[e, j], prev[e, i]):
                            ref = prev_refs[e, i]
                            break
                if ref < 0:
                    ref = self.frames_added + len(new_e)
                    new_e.append(e)
                    new_j.append(j)
                refs[e, j] = ref
        return refs, np.asarray(new_e, np.intp), np.asarray(new_j, np.intp)

    def _store_frames(self, new: np.ndarray) -> None:
        """Write ``new`` ``(m, H, W)`` as the next ``m`` frame numbers (only the last ring-full fits)."""
        m = len(new)
        keep = min(m, self.frame_capacity)
        numbers = self.frames_added + np.arange(m - keep, m)
        self.frames[numbers % self.frame_capacity] = new[m - keep :]
        self.frames_added += m

    def _oldest(self, idx: np.ndarray | slice) -> np.ndarray:
        """The oldest frame number of each row ``idx`` (a next stack may reach back to a reset)."""
        oldest = self.refs[idx].min(1)
        if self.next_frame_field is not None:
            oldest = np.minimum(oldest, self.next_refs[idx].min(1))
        return oldest

    def valid_mask(self) -> np.ndarray:
        """``(size,)`` bool: rows whose frames are all still in the ring; only these are sampled."""
        return self._oldest(slice(0, self.size)) >= self.frames_added - self.frame_capacity

    def _gather(self, idx: np.ndarray) -> dict[str, np.ndarray]:
        """Rows ``idx`` ``(B,)``: frame fields as ``(B, k, H, W)``, others as ``(B, *row_shape)``."""
        out = {self.frame_field: self.frames[self.refs[idx] % self.frame_capacity]}
        if self.next_frame_field is not None:
            out[self.next_frame_field] = self.frames[self.next_refs[idx] % self.frame_capacity]
        out.update({name: v[idx] for name, v in self.data.items()})
        return out

    def sample(self, batch_size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Uniform sample with replacement over valid rows: ``frame_field`` as ``(batch_size, k, H, W)``,
        other fields as ``(batch_size, *row_shape)``."""
        if self.size == 0:
            raise RuntimeError("cannot sample from an empty replay memory")
        lowest = self.frames_added - self.frame_capacity
        idx = rng.integers(0, self.size, batch_size)
        # reject and redraw rows with an overwritten frame: conditioned on acceptance each draw is
        # uniform over valid rows, and so is the exact fallback for draws still rejected
        for _ in range(8):
            bad = np.flatnonzero(self._oldest(idx) < lowest)
            if len(bad) == 0:
                break
            idx[bad] = rng.integers(0, self.size, len(bad))
        else:
            bad = np.flatnonzero(self._oldest(idx) < lowest)
            if len(bad):
                valid = np.flatnonzero(self.valid_mask())
                if len(valid) == 0:
                    raise RuntimeError("no stored row has all its frames left in the frame ring")
                idx[bad] = valid[rng.integers(0, len(valid), len(bad))]
        return self._gather(idx)

    def all_rows(self) -> dict[str, np.ndarray]:
        """Every valid row in storage order: ``frame_field`` ``(V, k, H, W)``, others ``(V, *row_shape)``."""
        return self._gather(np.flatnonzero(self.valid_mask()))

    def nbytes_per_row(self) -> int:
        """Bytes per transition, rounded up: all arrays (frame ring, frame numbers, other fields,
        ``last_refs``) over ``capacity``; the ring is counted in full even before it is filled."""
        total = self.frames.nbytes + self.refs.nbytes + self.next_refs.nbytes + self.last_refs.nbytes
        total += sum(v.nbytes for v in self.data.values())
        return math.ceil(total / self.capacity)

    def write_npz(self, file: BinaryIO) -> None:
        """Write the ``.npz`` of :meth:`to_bytes` into ``file`` (open for binary writing), streaming.

        Arrays go to ``file`` in chunks of at most 16 MiB, so no second copy of the frame ring
        is made (a checkpoint writes it this way); a seekable ``file`` gets the same bytes as
        :meth:`to_bytes`.
        """
        arrays = {f"field_{k}": v[: self.size] for k, v in self.data.items()}
        if self.next_frame_field is not None:
            arrays["next_refs"] = self.next_refs[: self.size]
        counters = np.array(
            [self.capacity, self.next, self.size, self.added, self.frame_capacity, self.frames_added],
            np.int64,
        )
        used = min(self.frames_added, self.frame_capacity)
        np.savez(
            file,
            counters=counters,
            frames=self.frames[:used],
            refs=self.refs[: self.size],
            last_refs=self.last_refs,
            **arrays,
        )

    def to_bytes(self) -> bytes:
        """Serialise as an ``.npz`` (no pickle): filled rows, used frame slots, ``last_refs``, counters.

        The whole file is built in memory; :meth:`write_npz` streams the same bytes into a file.
        """
        buf = io.BytesIO()
        self.write_npz(buf)
        return buf.getvalue()

    def load_bytes(self, blob: bytes) -> None:
        """Restore what :meth:`to_bytes` wrote into this (same-shaped) memory; adding continues as before."""
        with np.load(io.BytesIO(blob), allow_pickle=False) as z:
            capacity, nxt, size, added, frame_capacity, frames_added = (int(x) for x in z["counters"])
            if capacity != self.capacity:
                raise ValueError(f"memory capacity {capacity} != {self.capacity}")
            if frame_capacity != self.frame_capacity:
                raise ValueError(f"frame ring capacity {frame_capacity} != {self.frame_capacity}")
            frames, refs = z["frames"], z["refs"]
            if (
                frames.shape[1:] != self.frame_shape
                or frames.dtype != self.frames.dtype
                or refs.shape[1] != self.k
            ):
                raise ValueError(
                    f"stored frames {frames.shape[1:]} {frames.dtype} x {refs.shape[1]} do not fit "
                    f"{self.frame_shape} {self.frames.dtype} x {self.k}"
                )
            # every check before the first write: a refused blob leaves this memory as it was
            if self.next_frame_field is not None and (
                "next_refs" not in z.files or len(z["next_refs"]) != size
            ):
                raise ValueError("stored memory has no next-observation frame numbers")
            missing = [k for k in self.data if f"field_{k}" not in z.files]
            if missing:
                raise ValueError(f"stored memory lacks the fields {missing}")
            self.frames[: len(frames)] = frames
            self.refs[:size] = refs
            if self.next_frame_field is not None:
                self.next_refs[:size] = z["next_refs"]
            for k, v in self.data.items():
                v[:size] = z[f"field_{k}"]
            self.last_refs = z["last_refs"].astype(np.int64)
        self.next, self.size, self.added, self.frames_added = nxt, size, added, frames_added
