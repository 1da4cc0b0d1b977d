"""Export a network (student or teacher checkpoint) to ONNX for deployment without PyTorch.

The exported graph (see :func:`export_onnx`) has a fixed interface:

=========  ===============================  ====================================================
name       type and shape                   meaning
=========  ===============================  ====================================================
obs        uint8 ``(batch, C, H, W)``       unscaled observations; ``C`` is the network's channel
                                            count (a game with fewer channels is zero-padded after
                                            its last channel: :class:`poldist.deploy.OnnxPolicy`
                                            does it, other callers must)
task       int64 ``(batch,)``               multi-task networks only: the head of each row
                                            (``0 <= task < n_tasks``; out of range is a runtime
                                            error of the ``GatherElements`` node)
outputs    float32 ``(batch, max_actions)`` the task's head (Q-values or logits, as the
                                            checkpoint's ``output_kind``); a head with fewer
                                            actions than ``max_actions`` is padded with
                                            :data:`PAD_VALUE`
actions    int64 ``(batch,)``               greedy actions, ``argmax(outputs)`` (first maximum on
                                            ties, like ``torch.argmax``); never a padded column
=========  ===============================  ====================================================

The batch axis is dynamic. The graph computes every head and selects each row's head with a
gather, so it has no control flow. :data:`PAD_VALUE` is -1e30 rather than ``-inf``: below any
real output, so argmax never picks it, softmax gives it probability 0, and arithmetic on it
(``outputs - outputs.max()``, ``0 * outputs``) stays finite.

Metadata (a JSON object: env ids, observation shape and action count per task, output kind,
``obs_scale``, the source checkpoint's weights sha256, ...) is embedded in the model's
``metadata_props`` under the key ``"poldist"`` and written beside the model as ``<out>.json``.

Export uses PyTorch's ``torch.export``-based exporter (``torch.onnx.export(..., dynamo=True)``,
which needs ``onnxscript``); install with ``pip install poldist[deploy]``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from poldist._version import __version__
from poldist.checkpoints import atomic_write, load_model
from poldist.errors import PoldistError
from poldist.networks import QNetwork
from poldist.teachers import resolve_checkpoint

FORMAT = "poldist-onnx"
FORMAT_VERSION = 1
METADATA_KEY = "poldist"
PAD_VALUE = -1e30
"""Value of the ``outputs`` columns past a head's action count (see the module docstring)."""
PARITY_TOLERANCE = 1e-5


class ExportWrapper(nn.Module):
    """The exported computation: all heads, padded to ``max_actions``, one selected per row.

    ``forward(obs)`` (single task) or ``forward(obs, task)`` (multi-task) takes ``obs`` uint8
    ``(B, C, H, W)`` and ``task`` int64 ``(B,)`` and returns ``(outputs (B, max_actions) float32,
    actions (B,) int64)``.
    """

    def __init__(self, net: QNetwork):
        super().__init__()
        self.net = net
        self.n_actions = tuple(net.arch.n_actions)
        self.max_actions = max(self.n_actions)
        self.multi_task = len(self.n_actions) > 1

    def _padded_head(self, features: torch.Tensor, task: int) -> torch.Tensor:
        out = self.net.heads[task](features)
        missing = self.max_actions - self.n_actions[task]
        if missing:  # torch.cat rather than F.pad: the Pad op does not convert down to opset 17
            pad = torch.full((1, missing), PAD_VALUE, dtype=out.dtype, device=out.device)
            out = torch.cat([out, pad.expand(out.shape[0], missing)], dim=1)
        return out

    def forward(
        self, obs: torch.Tensor, task: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``obs (B, C, H, W)`` uint8 [, ``task (B,)`` int64] -> ``(outputs, actions)``."""
        features = self.net.features(obs)
        if not self.multi_task:
            outputs = self.net.heads[0](features)
        else:
            assert task is not None
            heads = torch.stack([self._padded_head(features, t) for t in range(len(self.n_actions))], 1)
            index = task.reshape(-1, 1, 1).expand(-1, 1, self.max_actions)
            outputs = torch.gather(heads, 1, index).squeeze(1)  # (B, T, A) -> (B, A)
        return outputs, outputs.argmax(dim=1)


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporter's progress logs and deprecation warnings (errors still raise)."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "onnxscript", "onnx_ir")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _example_inputs(net: QNetwork, batch: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    high = 2 if net.arch.obs_scale == 1.0 else 256  # MinAtar grids are {0, 1}; frames 0..255
    obs = torch.randint(0, high, (batch, *net.arch.obs_shape), generator=g, dtype=torch.uint8)
    if len(net.arch.n_actions) == 1:
        return (obs,)
    task = torch.randint(0, len(net.arch.n_actions), (batch,), generator=g, dtype=torch.int64)
    return obs, task


def export_metadata(net: QNetwork, meta: dict[str, Any], source: str, opset: int) -> dict[str, Any]:
    """The JSON object stored with an exported model (``metadata_props["poldist"]`` and ``<out>.json``).

    Args:
        net: the network being exported.
        meta: its checkpoint metadata (from :func:`~poldist.checkpoints.load_model`).
        source: the checkpoint's path or shipped name, as given.
        opset: the ONNX opset of the model.
    """
    arch = net.arch
    envs = meta.get("envs", [])
    multi = len(arch.n_actions) > 1
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "library_version": __version__,
        "source_checkpoint": source,
        "source_weights_sha256": meta.get("files", {}).get("weights", {}).get("sha256", ""),
        "output_kind": meta.get("output_kind", "q"),
        "env_ids": [e["env_id"] for e in envs],
        "obs_shapes": [list(e["obs_shape"]) for e in envs],
        "n_actions": list(arch.n_actions),
        "max_actions": max(arch.n_actions),
        "obs_scale": arch.obs_scale,
        "input_shape": list(arch.obs_shape),
        "inputs": ["obs", "task"] if multi else ["obs"],
        "outputs": ["outputs", "actions"],
        "pad_value": PAD_VALUE,
        "opset": opset,
        "architecture": arch.to_dict(),
        "envs": envs,
    }


def _max_abs_diff(model_bytes: bytes, wrapper: ExportWrapper, batch: int = 7) -> float:
    """Largest |onnxruntime - torch| over ``outputs`` on random inputs, relative to outputs above 1.

    Inputs are in the domain's range ({0, 1} for MinAtar, 0..255 for frames); padded columns count.
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    session = ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])
    inputs = _example_inputs(wrapper.net, batch, seed=1)
    names = ["obs", "task"][: len(inputs)]
    got, got_actions = session.run(None, {n: t.numpy() for n, t in zip(names, inputs)})
    with torch.no_grad():
        want, _ = wrapper(*inputs)
    if not np.array_equal(got_actions, got.argmax(axis=1)):
        return float("inf")
    want = want.numpy()
    return float(np.abs(got - want).max() / max(1.0, float(np.abs(want).max())))


def export_onnx(checkpoint: str | Path, out: str | Path, opset: int = 17, *, verify: bool = True) -> Path:
    """Export a model checkpoint to an ONNX file (interface in the module docstring).

    Args:
        checkpoint: checkpoint directory (student or teacher) or shipped name (``minatar/breakout``).
        out: the ``.onnx`` file to write (parent directories are created); the metadata is also
            written to ``<out>.json``.
        opset: ONNX opset (default 17; tested 16 to 21). The exporter builds at opset 18 or later
            and converts to the one asked for.
        verify: run the exported model with onnxruntime on random inputs ``(7, C, H, W)`` and
            raise unless it matches PyTorch within :data:`PARITY_TOLERANCE` (relative to the
            largest output where that is above 1).

    Returns:
        The path of the ``.onnx`` file.

    Raises:
        PoldistError: missing or corrupted checkpoint, missing ``onnx``/``onnxscript``/``onnxruntime``,
            an opset the exporter cannot produce, or a parity failure.
    """
    path = resolve_checkpoint(checkpoint)
    net, meta = load_model(path)
    try:
        import onnx
        import onnxscript  # noqa: F401  (needed by the torch.export-based exporter)
    except ImportError as e:
        raise PoldistError(
            f"ONNX export needs onnx and onnxscript ({e}): pip install 'poldist[deploy]'"
        ) from e
    wrapper = ExportWrapper(net).eval()
    inputs = _example_inputs(net, batch=2)  # not 1: torch.export specialises sizes 0 and 1
    batch = torch.export.Dim("batch")
    names = ["obs", "task"][: len(inputs)]
    with _quiet_exporter(), torch.no_grad():
        try:
            program = torch.onnx.export(
                wrapper,
                inputs,
                dynamo=True,
                opset_version=opset,
                input_names=names,
                output_names=["outputs", "actions"],
                dynamic_shapes={n: {0: batch} for n in names},
                verbose=False,
            )
        except Exception as e:  # the exporter raises many types
            raise PoldistError(f"ONNX export of {checkpoint} failed: {e}") from e
    model = program.model_proto
    got_opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if got_opset != opset:
        raise PoldistError(
            f"asked for ONNX opset {opset}, the exporter produced opset {got_opset} (it cannot convert "
            "this network to that opset; 16 to 21 work)"
        )
    info = export_metadata(net, meta, str(checkpoint), opset)
    env_names = ", ".join(info["env_ids"]) or "unknown env"
    model.doc_string = f"poldist {info['output_kind']} network for {env_names}; metadata_props['poldist']"
    del model.metadata_props[:]
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(info, sort_keys=True)
    onnx.checker.check_model(model)
    data = model.SerializeToString()
    if verify:
        try:
            diff = _max_abs_diff(data, wrapper)
        except ImportError as e:
            raise PoldistError(
                f"verifying the export needs onnxruntime ({e}): pip install 'poldist[deploy]'"
            ) from e
        if not diff < PARITY_TOLERANCE:
            raise PoldistError(
                f"exported model differs from PyTorch by {diff:.3g} (tolerance {PARITY_TOLERANCE})"
            )
    out = Path(out)
    atomic_write(out, data)
    atomic_write(
        out.with_name(out.name + ".json"), (json.dumps(info, indent=2, sort_keys=True) + "\n").encode()
    )
    return out
