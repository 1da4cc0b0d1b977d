"""Carry an unfinished run to another machine (or a fresh clone): pack its last whole checkpoint
into one compressed file, unpack it there, and rerun the same command to resume.

The multi-task DQN baseline takes about three hours on one core, longer than one working session
on this project's machines, whose ``runs/`` folder does not survive; its seeds are carried::

    .venv/bin/python scripts/carry_run.py pack runs/multitask/multi-dqn-hh128 carry/multitask-seed0-dqn.tar.xz
    .venv/bin/python scripts/carry_run.py unpack carry/multitask-seed0-dqn.tar.xz runs/multitask

Stop the run first (a checkpoint being written cannot be packed). Packed: the checkpoint
(``state/``, verified whole, its replay memories' binary frames bit-packed), ``config.json``,
``evals.csv`` and any other small files; TensorBoard logs (``tb/``) stay behind. Unpacking
refuses to overwrite a run.
"""

from __future__ import annotations

import argparse
import io
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np

from poldist.checkpoints import load_checkpoint, save_checkpoint
from poldist.errors import PoldistError
from poldist.memory import pack_binary_fields


def compact_blob(blob: bytes) -> bytes:
    """A replay memory ``.npz`` with its binary frames bit-packed (as newer checkpoints store them)."""
    with np.load(io.BytesIO(blob), allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    if "counters" not in arrays or not any(k.startswith("field_") for k in arrays):
        return blob  # not a ReplayMemory blob (e.g. a frame-stack memory): as it is
    buf = io.BytesIO()
    np.savez(buf, **pack_binary_fields(arrays))
    return buf.getvalue()


def pack(run: Path, out: Path) -> None:
    """Write stopped run ``run`` to ``out``, an xz-compressed tar; its checkpoint is verified and
    rewritten with bit-packed frames on the way."""
    ckpt = load_checkpoint(run / "state")  # raises unless every file is there with its checksum
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    # preset 9: its 64 MB window also finds each next_obs in the obs stored 8 rows later
    with tempfile.TemporaryDirectory() as scratch, tarfile.open(tmp, "w:xz", preset=9) as tar:
        meta = {k: v for k, v in ckpt.metadata.items() if k not in ("format", "format_version", "files")}
        blobs = {name: compact_blob(blob) for name, blob in ckpt.blobs.items()}
        state = save_checkpoint(Path(scratch) / "state", ckpt.tensors, meta, blobs)
        for item in sorted(run.iterdir()):
            if item.name not in ("state", "tb"):  # TensorBoard logs stay behind
                tar.add(item, arcname=f"{run.name}/{item.name}")
        tar.add(state, arcname=f"{run.name}/state")
    tmp.replace(out)
    print(f"{out}: {out.stat().st_size / 1e6:.1f} MB")


def unpack(packed: Path, parent: Path) -> None:
    """Extract ``packed`` into ``parent``; the run directory must not exist yet."""
    with tarfile.open(packed, "r:xz") as tar:
        names = {m.name.split("/")[0] for m in tar.getmembers()}
        if len(names) != 1:
            raise PoldistError(f"{packed}: expected one run directory, found {sorted(names)}")
        run = parent / names.pop()
        if run.exists():
            raise PoldistError(f"{run} exists; move it away first (nothing was extracted)")
        tar.extractall(parent, filter="data")  # no absolute paths, links out or devices
    load_checkpoint(run / "state")
    print(f"{run}: checkpoint whole; rerun the run's command to resume it")


def weights(run: Path, out: Path, half: bool) -> None:
    """Write the online network of stopped DQN run ``run`` as a model checkpoint ``out`` (optionally
    in half precision): what a warm start (``--init-weights``) needs when the whole state is too large
    to carry (an Atari replay memory is hundreds of MB)."""
    from poldist.checkpoints import save_checkpoint

    ckpt = load_checkpoint(run / "state")
    model = load_checkpoint(run / "teacher", blobs=False) if (run / "teacher").exists() else None
    prefix = "online."
    tensors = {k[len(prefix) :]: v for k, v in ckpt.tensors.items() if k.startswith(prefix)}
    if not tensors:
        raise PoldistError(f"{run}/state holds no online network (not a train-teacher run)")
    if half:
        tensors = {k: v.half() for k, v in tensors.items()}
    if model is not None:
        meta = {k: v for k, v in model.metadata.items() if k not in ("format", "format_version", "files")}
    else:  # an unfinished run has no teacher/ yet: rebuild its model metadata from the state's config
        from dataclasses import replace

        from poldist.dqn import config_from_dict, teacher_architecture
        from poldist.envs import make_env_spec
        from poldist.networks import student_architecture

        cfg = config_from_dict(ckpt.metadata["config"])
        spec = make_env_spec(cfg.env_id)
        arch = replace(
            student_architecture(teacher_architecture(spec), cfg.network), head_hidden=cfg.head_hidden
        )
        meta = {"kind": "model", "architecture": arch.to_dict(), "envs": [spec.to_dict()], "output_kind": "q"}
    meta["carried_from"] = {"run": run.name, "counters": ckpt.metadata["counters"], "half": half}
    save_checkpoint(out, tensors, meta)
    size = sum(f.stat().st_size for f in out.iterdir())
    print(f"{out}: {size / 1e6:.1f} MB ({'half' if half else 'full'} precision)")


def main() -> None:
    """Parse the subcommand and run it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack", help="RUN_DIR OUT.tar.xz")
    p.add_argument("run", type=Path)
    p.add_argument("out", type=Path)
    u = sub.add_parser("unpack", help="PACKED.tar.xz PARENT_DIR")
    u.add_argument("packed", type=Path)
    u.add_argument("parent", type=Path)
    w = sub.add_parser("weights", help="RUN_DIR OUT_DIR: the DQN's online network alone (a warm start)")
    w.add_argument("run", type=Path)
    w.add_argument("out", type=Path)
    w.add_argument("--half", action="store_true", help="store the weights in half precision")
    args = parser.parse_args()
    try:
        if args.cmd == "pack":
            pack(args.run, args.out)
        elif args.cmd == "unpack":
            unpack(args.packed, args.parent)
        else:
            weights(args.run, args.out, args.half)
    except (PoldistError, FileNotFoundError) as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
