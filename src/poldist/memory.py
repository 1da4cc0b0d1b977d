"""Replay memory: a bounded ring buffer of named fields, shared by DQN and distillation.

Distillation stores ``obs`` (uint8) with the teacher's output vector; DQN stores
``obs``, ``action``, ``reward``, ``next_obs`` and ``done``. Observations stay in
their compact uint8 form; nothing is converted to float until a minibatch is drawn.
"""

from __future__ import annotations

import io
from collections.abc import Mapping

import numpy as np


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

    def add(self, **rows: np.ndarray) -> None:
        """Append a batch: each field's array has shape ``(n, *row_shape)``, same ``n`` for all."""
        if set(rows) != set(self.data):
            raise KeyError(f"expected fields {sorted(self.data)}, got {sorted(rows)}")
        n = len(next(iter(rows.values())))
        idx = (self.next + np.arange(n)) % self.capacity
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

    def to_bytes(self) -> bytes:
        """Serialise as an ``.npz`` (no pickle): the filled rows and the counters."""
        buf = io.BytesIO()
        arrays = {f"field_{k}": v[: self.size] for k, v in self.data.items()}
        counters = np.array([self.capacity, self.next, self.size, self.added], np.int64)
        np.savez(buf, counters=counters, **arrays)
        return buf.getvalue()

    def load_bytes(self, blob: bytes) -> None:
        """Restore what :meth:`to_bytes` wrote into this (same-shaped) memory."""
        with np.load(io.BytesIO(blob), allow_pickle=False) as z:
            capacity, nxt, size, added = (int(x) for x in z["counters"])
            if capacity != self.capacity:
                raise ValueError(f"memory capacity {capacity} != {self.capacity}")
            for k, v in self.data.items():
                v[:size] = z[f"field_{k}"]
        self.next, self.size, self.added = nxt, size, added
