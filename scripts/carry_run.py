"""Carry an unfinished run to another machine (or a fresh clone): pack its last whole checkpoint
into one compressed file, unpack it there, and rerun the same command to resume.

The multi-task DQN baseline takes about three hours on one core, longer than one working session
on this project's machines, whose ``runs/`` folder does not survive; its seeds are carried::

    .venv/bin/python scripts/carry_run.py pack runs/multitask/multi-dqn-hh128 carry/multitask-seed0-dqn.tar.xz
    .venv/bin/python scripts/carry_run.py unpack carry/multitask-seed0-dqn.tar.xz runs/multitask

Packed: the checkpoint (``state/``, verified whole first), ``config.json``, ``evals.csv`` and any
other small files; TensorBoard logs (``tb/``) stay behind. Unpacking refuses to overwrite a run.
"""

from __future__ import annotations

import argparse
import sys
import tarfile
from pathlib import Path

from poldist.checkpoints import load_checkpoint
from poldist.errors import PoldistError


def pack(run: Path, out: Path) -> None:
    """Write ``run`` (its checkpoint verified) to ``out``, an xz-compressed tar."""
    load_checkpoint(run / "state")  # raises unless every file is there with its checksum
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with tarfile.open(tmp, "w:xz", preset=3) as tar:  # preset 3: fast, and best on sparse frames
        tar.add(run, arcname=run.name, filter=lambda t: None if t.name.startswith(f"{run.name}/tb") else t)
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
    args = parser.parse_args()
    try:
        pack(args.run, args.out) if args.cmd == "pack" else unpack(args.packed, args.parent)
    except (PoldistError, FileNotFoundError) as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
