"""Checkpoints: safetensors weights + JSON metadata, written atomically, loaded without pickle.

A checkpoint is a directory::

    meta.json                      # written last: the completion marker
    weights-<sha12>.safetensors    # tensors (model, optimizer, RNG state)
    memory-<sha12>.npz             # optional blobs (replay memory), numpy without pickle

Data files carry their content hash in their names and ``meta.json`` lists them
with their full sha256; ``meta.json`` holds the sha256 of its own content too (``meta_sha256``,
over its canonical JSON without that field), so a changed metadata value is refused on load,
not silently used. Each file is written to a temporary name, flushed, fsynced and
renamed, and ``meta.json`` is renamed into place only after the data files are whole, so
a reader sees either the previous complete checkpoint or the new one, never half of
one; files no longer referenced are removed afterwards.

A blob may be given as a writer, ``write(file)`` (e.g. ``ReplayMemory.write_npz``), instead
of bytes: it streams into the temporary file, so a replay memory is never held twice in RAM
while its checkpoint is written.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from poldist._version import __version__
from poldist.envs import EnvSpec
from poldist.errors import PoldistError
from poldist.networks import Architecture, QNetwork
from poldist.schema import require

FORMAT = "poldist-checkpoint"
# 2: meta.json carries meta_sha256, the hash of its own canonical JSON; 1 (before 0.3) does not
FORMAT_VERSION = 2
OUTPUT_KINDS = ("q", "logits")
META = "meta.json"

# writes a blob's content into a binary file object open for writing (seekable, at offset 0)
BlobWriter = Callable[[BinaryIO], None]
Blob = bytes | BlobWriter  # a blob: its content, or a writer of it


@dataclass
class Checkpoint:
    """What :func:`load_checkpoint` returns."""

    tensors: dict[str, torch.Tensor]
    metadata: dict[str, Any]
    blobs: dict[str, bytes] = field(default_factory=dict)


def atomic_write(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader sees the old file or the new one, never half of one.

    A temporary file in ``path``'s directory (made if missing) is written, flushed, fsynced, given
    mode 0644, then renamed over ``path``; it is removed on any error. The one atomic write of the
    library (checkpoints, exported models, run JSON files).

    Raises:
        PoldistError: the directory cannot be made or written to.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise PoldistError(f"cannot write {path}: {e}") from e
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; checkpoints are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _sha256_of_file(f: BinaryIO, chunk: int = 1 << 20) -> str:
    """sha256 (hex) of everything in ``f``, read from the start in ``chunk``-byte pieces."""
    f.seek(0)
    h = hashlib.sha256()
    buf = bytearray(chunk)
    view = memoryview(buf)
    while n := f.readinto(buf):
        h.update(view[:n])
    return h.hexdigest()


def _atomic_write_stream(directory: Path, name: str, ext: str, write: BlobWriter) -> tuple[str, str]:
    """Stream ``write(file)`` into ``directory/<name>-<sha12>.<ext>`` atomically; return (file name, sha256).

    As :func:`atomic_write` (temporary file in ``directory``, flushed, fsynced, mode 0644, then
    renamed; removed on any error), but the content never exists as one ``bytes`` object. The
    hash is read back from the written file: ``np.savez`` into a seekable file rewrites each zip
    entry's header after its data, so hashing the bytes as they are written would be wrong.
    """
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.{ext}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w+b") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
            digest = _sha256_of_file(f)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; checkpoints are meant to be shared
        fname = f"{name}-{digest[:12]}.{ext}"
        os.replace(tmp, directory / fname)  # an existing file of that name has the same content
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return fname, digest


def save_checkpoint(
    directory: str | Path,
    tensors: dict[str, torch.Tensor],
    metadata: dict[str, Any],
    blobs: Mapping[str, Blob] | None = None,
) -> Path:
    """Write a checkpoint atomically (see module docstring).

    Args:
        directory: created if missing; an existing checkpoint there is replaced.
        tensors: name -> tensor; stored in one safetensors file.
        metadata: JSON-serialisable; stored in ``meta.json`` with format fields added.
        blobs: name -> the content of a ``<name>-<sha12>.npz`` file: ``bytes``, or a writer
            ``write(file)`` that streams it into a binary file object (e.g. a replay memory's
            ``write_npz``: the same bytes as its ``to_bytes()`` without a copy in RAM).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    payload: dict[str, tuple[Blob, str]] = {
        "weights": (st_save({k: v.contiguous().cpu() for k, v in tensors.items()}), "safetensors")
    }
    for name, blob in (blobs or {}).items():
        payload[name] = (blob, "npz")
    files = {}
    for name, (data, ext) in payload.items():
        if callable(data):
            fname, digest = _atomic_write_stream(directory, name, ext, data)
        else:
            digest = hashlib.sha256(data).hexdigest()
            fname = f"{name}-{digest[:12]}.{ext}"
            if not (directory / fname).exists():
                atomic_write(directory / fname, data)
        files[name] = {"file": fname, "sha256": digest}
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "library_version": __version__}
    meta.update(metadata)
    meta["files"] = files
    meta = json.loads(json.dumps(meta))  # the form a reader sees (tuples are lists), hashed below
    meta["meta_sha256"] = metadata_digest(meta)
    atomic_write(directory / META, json.dumps(meta, indent=2, sort_keys=True).encode())
    keep = {f["file"] for f in files.values()} | {META}
    for p in directory.iterdir():  # stale data files of the previous checkpoint, temp files of a killed write
        stale = p.suffix in (".safetensors", ".npz") and "-" in p.name
        if p.name not in keep and (stale or (p.name.startswith(".") and p.suffix == ".tmp")):
            p.unlink(missing_ok=True)
    return directory


def load_checkpoint(directory: str | Path, *, blobs: bool = True) -> Checkpoint:
    """Read and verify a checkpoint. Never unpickles.

    Raises:
        PoldistError: missing directory, no ``meta.json`` (incomplete), unreadable
            JSON, missing or truncated files, sha256 mismatch, bad safetensors.
    """
    directory = Path(directory)
    if not directory.exists():
        raise PoldistError(f"no checkpoint at {directory}")
    meta_path = directory / META if directory.is_dir() else directory
    if not meta_path.exists():
        raise PoldistError(f"{directory} is not a complete checkpoint (no {META})")
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise PoldistError(f"corrupted checkpoint {directory}: {META} is not valid JSON ({e})") from e
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or "files" not in meta:
        raise PoldistError(f"{meta_path} is not a {FORMAT} metadata file")
    directory = meta_path.parent
    version = meta.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= FORMAT_VERSION:
        raise PoldistError(
            f"{meta_path}: format_version {version!r} is not one this poldist reads (1 to {FORMAT_VERSION}); "
            "a newer poldist wrote it, or the file was edited"
        )
    recorded = meta.get("meta_sha256")
    if (version >= 2 or recorded is not None) and recorded != metadata_digest(meta):
        raise PoldistError(
            f"corrupted checkpoint {directory}: {META} does not match its meta_sha256 "
            "(edited or damaged); restore it from the original"
        )
    files = meta["files"]
    if (
        not isinstance(files, dict)
        or "weights" not in files
        or not all(isinstance(i, dict) and {"file", "sha256"} <= set(i) for i in files.values())
    ):
        raise PoldistError(f"corrupted checkpoint {directory}: {META} lists its files wrongly")
    loaded: dict[str, bytes] = {}
    for name, info in files.items():
        if name != "weights" and not blobs:
            continue
        path = directory / info["file"]
        if not path.exists():
            raise PoldistError(f"corrupted checkpoint {directory}: missing {info['file']}")
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != info["sha256"]:
            raise PoldistError(f"corrupted checkpoint {directory}: {info['file']} does not match its sha256")
        loaded[name] = data
    try:
        tensors = st_load(loaded.pop("weights"))
    except Exception as e:  # safetensors' error type moved between versions
        raise PoldistError(f"corrupted checkpoint {directory}: bad weights file ({e})") from e
    return Checkpoint(tensors, meta, loaded)


def metadata_digest(meta: dict[str, Any]) -> str:
    """sha256 (hex) of a checkpoint's metadata: its canonical JSON (sorted keys, no spaces)
    without the ``meta_sha256`` field itself."""
    body = {k: v for k, v in meta.items() if k != "meta_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def require_metadata(ckpt: Checkpoint, keys: tuple[str, ...], directory: str | Path) -> None:
    """Fail in one line, not a traceback, when a checkpoint's metadata lacks ``keys``."""
    missing = [k for k in keys if k not in ckpt.metadata]
    if missing:
        raise PoldistError(
            f"checkpoint {directory} lacks keys {missing}: not a complete resumable state "
            "(hand-edited, or written by another version); start a new run with another --out"
        )


def save_model(
    directory: str | Path,
    net: QNetwork,
    env: EnvSpec | list[EnvSpec],
    *,
    output_kind: str = "q",
    extra: dict[str, Any] | None = None,
) -> Path:
    """Save a network with what rebuilds it and its env(s).

    Args:
        net: the network.
        env: the env of each task (one per head).
        output_kind: ``"q"`` (Q-values) or ``"logits"`` (policy logits).
        extra: more metadata (training config, seed, scores, ...).
    """
    envs = env if isinstance(env, list) else [env]
    meta = {
        "kind": "model",
        "architecture": net.arch.to_dict(),
        "envs": [e.to_dict() for e in envs],
        "output_kind": output_kind,
    }
    meta.update(extra or {})
    return save_checkpoint(directory, net.state_dict(), meta)


def load_model(directory: str | Path) -> tuple[QNetwork, dict[str, Any]]:
    """Rebuild a network saved by :func:`save_model`.

    Returns:
        ``(network in eval mode, metadata)``; ``metadata["envs"]`` holds the env
        specs (see :func:`model_envs`).

    Raises:
        PoldistError: as :func:`load_checkpoint`, or metadata/weights that do not fit.
    """
    ckpt = load_checkpoint(directory, blobs=False)
    meta = ckpt.metadata
    missing = [k for k in ("architecture", "envs", "output_kind") if k not in meta]
    if missing:
        raise PoldistError(f"checkpoint {directory} metadata lacks keys {missing}")
    arch = model_architecture(meta, directory)
    try:
        net = QNetwork(arch)
        net.load_state_dict(ckpt.tensors)
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise PoldistError(f"checkpoint {directory}: weights do not fit its architecture ({e})") from e
    net.eval()
    return net, meta


def model_architecture(meta: dict[str, Any], directory: str | Path = "") -> Architecture:
    """The architecture of a model checkpoint's metadata, checked against its envs and output kind.

    Raises:
        PoldistError: one line naming the field that is wrong: a wrong type or value, an output
            kind other than ``q`` / ``logits``, or a head whose action count is not its env's.
    """
    where = f"checkpoint {directory}" if directory else "checkpoint metadata"
    require(meta, "output_kind", where, "str", choices=OUTPUT_KINDS)
    arch = Architecture.from_dict(meta.get("architecture"), f"{where}: architecture")
    envs = model_envs(meta, directory)
    if len(envs) != len(arch.n_actions):
        raise PoldistError(f"{where}: {len(envs)} envs for {len(arch.n_actions)} output heads")
    for i, (spec, n) in enumerate(zip(envs, arch.n_actions, strict=True)):
        if spec.n_actions != n:
            raise PoldistError(
                f"{where}: head {i} has {n} outputs but its env {spec.env_id} has {spec.n_actions} actions"
            )
    return arch


def model_envs(meta: dict[str, Any], directory: str | Path = "") -> list[EnvSpec]:
    """The env spec of each task of a model checkpoint's metadata (each checked, see
    :meth:`EnvSpec.from_dict`)."""
    where = f"checkpoint {directory}" if directory else "checkpoint metadata"
    envs = require(meta, "envs", where, "list")
    if not envs:
        raise PoldistError(f"{where}: envs is empty")
    return [EnvSpec.from_dict(e, f"{where}: envs[{i}]") for i, e in enumerate(envs)]


def pack_optimizer(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer's state dict into tensors (for safetensors) and JSON (the rest)."""
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, state in sd["state"].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                tensors[f"optim.{pid}.{key}"] = value
            else:
                scalars.setdefault(str(pid), {})[key] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def unpack_optimizer(
    opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], info: dict[str, Any]
) -> None:
    """Inverse of :func:`pack_optimizer`: load the state into ``opt``."""
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, pid, key = name.split(".", 2)
            state.setdefault(int(pid), {})[key] = value
    for pid, extra in info["scalars"].items():
        state.setdefault(int(pid), {}).update(extra)
    opt.load_state_dict({"state": state, "param_groups": info["param_groups"]})
