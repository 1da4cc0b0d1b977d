"""Run an exported network (see :mod:`poldist.export`) with onnxruntime, without PyTorch.

This module imports only numpy, onnxruntime and :mod:`poldist.errors`, so a process that uses it
never loads torch::

    from poldist.deploy import OnnxPolicy

    policy = OnnxPolicy("student.onnx")
    actions = policy.act(obs)              # obs uint8 (B, C, H, W) -> int64 (B,)
    action = policy.act(obs[0])            # one observation (C, H, W) -> int
    q = policy.outputs(obs, task=1)        # (B, n_actions[1]) float32

Observations are the env's uint8 arrays, unscaled (the model applies ``obs_scale``). An
observation with fewer channels than the network's input (a game with 4 channels fed to a
multi-task MinAtar student built for 10) is zero-padded after its last channel, as the
network does in PyTorch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from poldist.errors import PoldistError

METADATA_KEY = "poldist"  # the same as poldist.export.METADATA_KEY (not imported: it imports torch)


class OnnxPolicy:
    """A policy from an ONNX file written by :func:`poldist.export.export_onnx`.

    Attributes:
        path: the ONNX file.
        metadata: the export's metadata (``metadata_props["poldist"]``, else ``<path>.json``).
        n_actions: action count of each task, e.g. ``(3, 6)``.
        input_shape: ``(C, H, W)`` of the network's input.
        env_ids: the env of each task.
        output_kind: ``"q"`` (Q-values) or ``"logits"``.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        providers: list[str] | None = None,
        threads: int | None = None,
    ):
        """Load the model.

        Args:
            path: an ``.onnx`` file written by :func:`poldist.export.export_onnx`.
            providers: onnxruntime execution providers (default ``["CPUExecutionProvider"]``).
            threads: onnxruntime intra-op threads (default: onnxruntime's, one per core).

        Raises:
            PoldistError: missing file, onnxruntime not installed, a file onnxruntime cannot
                load, or a model without poldist metadata.
        """
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise PoldistError(f"OnnxPolicy needs onnxruntime ({e}): pip install 'poldist[deploy]'") from e
        self.path = Path(path)
        if not self.path.is_file():
            raise PoldistError(f"no ONNX model at {self.path}")
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(
                str(self.path), opts, providers=providers or ["CPUExecutionProvider"]
            )
        except Exception as e:  # onnxruntime raises its own types
            raise PoldistError(f"cannot load ONNX model {self.path}: {e}") from e
        self.metadata = self._read_metadata()
        try:
            self.n_actions: tuple[int, ...] = tuple(int(n) for n in self.metadata["n_actions"])
            self.input_shape: tuple[int, int, int] = tuple(int(d) for d in self.metadata["input_shape"])
            self.env_ids: list[str] = list(self.metadata.get("env_ids", []))
            self.output_kind: str = str(self.metadata.get("output_kind", "q"))
        except (KeyError, TypeError, ValueError) as e:
            raise PoldistError(f"{self.path}: bad poldist metadata ({e})") from e
        self._takes_task = "task" in {i.name for i in self.session.get_inputs()}

    def _read_metadata(self) -> dict[str, Any]:
        custom = self.session.get_modelmeta().custom_metadata_map
        text = custom.get(METADATA_KEY)
        sidecar = self.path.with_name(self.path.name + ".json")
        if text is None and sidecar.is_file():
            text = sidecar.read_text()
        if text is None:
            raise PoldistError(
                f"{self.path} has no poldist metadata (metadata_props['{METADATA_KEY}'] or "
                f"{sidecar.name}): export it with `poldist export`"
            )
        try:
            meta = json.loads(text)
        except json.JSONDecodeError as e:
            raise PoldistError(f"{self.path}: poldist metadata is not valid JSON ({e})") from e
        if not isinstance(meta, dict):
            raise PoldistError(f"{self.path}: poldist metadata is not a JSON object")
        return meta

    @property
    def n_tasks(self) -> int:
        """Number of heads."""
        return len(self.n_actions)

    def __repr__(self) -> str:
        return (
            f"OnnxPolicy({str(self.path)!r}, envs={self.env_ids}, n_actions={self.n_actions}, "
            f"input_shape={self.input_shape})"
        )

    def _prepare(self, obs: np.ndarray) -> tuple[np.ndarray, bool]:
        """``(C', H, W)`` or ``(B, C', H, W)`` -> contiguous uint8 ``(B, C, H, W)``, and whether one obs."""
        x = np.asarray(obs)
        if x.dtype == np.bool_:
            x = x.astype(np.uint8)
        elif x.dtype != np.uint8:
            if not np.issubdtype(x.dtype, np.integer):
                raise PoldistError(
                    f"observations must be unscaled uint8 (the env's arrays), not {x.dtype}: "
                    "the model applies obs_scale itself"
                )
            x = x.astype(np.uint8)
        single = x.ndim == 3
        if single:
            x = x[None]
        c, h, w = self.input_shape
        if x.ndim != 4 or x.shape[2:] != (h, w) or x.shape[1] > c:
            raise PoldistError(
                f"observations of shape {tuple(np.shape(obs))} do not fit the network's input "
                f"(B, {c}, {h}, {w}) (or (B, C, {h}, {w}) with C <= {c}, or one (C, {h}, {w}))"
            )
        if x.shape[1] < c:
            x = np.concatenate([x, np.zeros((x.shape[0], c - x.shape[1], h, w), np.uint8)], axis=1)
        return np.ascontiguousarray(x), single

    def _check_task(self, task: int) -> int:
        if not 0 <= int(task) < self.n_tasks:
            raise PoldistError(f"{self.path} has {self.n_tasks} task(s); task {task} does not exist")
        return int(task)

    def _run(self, names: list[str], x: np.ndarray, task: int) -> list[np.ndarray]:
        feed = {"obs": x}
        if self._takes_task:
            feed["task"] = np.full(x.shape[0], task, dtype=np.int64)
        return self.session.run(names, feed)

    def outputs(self, obs: np.ndarray, task: int = 0) -> np.ndarray:
        """The network's outputs (Q-values or logits) for one task.

        Args:
            obs: uint8 ``(B, C, H, W)``, or one observation ``(C, H, W)``; ``C`` may be less than
                the network's channel count (zero-padded).
            task: the head to read (``0 <= task < n_tasks``).

        Returns:
            float32 ``(B, n_actions[task])``, or ``(n_actions[task],)`` for one observation.

        Raises:
            PoldistError: an observation that does not fit, a float dtype, or a task out of range.
        """
        task = self._check_task(task)
        x, single = self._prepare(obs)
        (out,) = self._run(["outputs"], x, task)
        out = out[:, : self.n_actions[task]]
        return out[0] if single else out

    def act(
        self,
        obs: np.ndarray,
        task: int = 0,
        epsilon: float = 0.0,
        rng: np.random.Generator | None = None,
    ) -> np.ndarray | int:
        """Greedy (``epsilon=0``) or epsilon-greedy actions.

        Greedy actions are the argmax of :meth:`outputs` (the first maximum on ties, as
        ``torch.argmax``). With ``epsilon > 0`` each row independently takes a uniformly random
        action of the task's action set with probability ``epsilon``.

        Args:
            obs: uint8 ``(B, C, H, W)``, or one observation ``(C, H, W)`` (see :meth:`outputs`).
            task: the head to read.
            epsilon: exploration probability in ``[0, 1]``.
            rng: random generator for exploration (default: a fresh ``np.random.default_rng()``).

        Returns:
            int64 ``(B,)`` actions, or a Python ``int`` for one observation ``(C, H, W)``.

        Raises:
            PoldistError: as :meth:`outputs`, or ``epsilon`` outside ``[0, 1]``.
        """
        if not 0.0 <= epsilon <= 1.0:
            raise PoldistError(f"epsilon must be in [0, 1], got {epsilon}")
        task = self._check_task(task)
        x, single = self._prepare(obs)
        (actions,) = self._run(["actions"], x, task)
        actions = actions.astype(np.int64, copy=False)
        if epsilon > 0:
            rng = rng if rng is not None else np.random.default_rng()
            explore = rng.random(len(actions)) < epsilon
            actions[explore] = rng.integers(self.n_actions[task], size=int(explore.sum()))
        return int(actions[0]) if single else actions
