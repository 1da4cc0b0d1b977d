"""Run directories: the layout every long job (teacher training, distillation) shares.

::

    <run_dir>/
      config.json      the job's config dataclass, as given
      state/           latest resumable checkpoint (weights, optimizer, memory, counters)
      tb/              TensorBoard logs
      evals.csv        periodic evaluations (step, score, CI)
"""

from __future__ import annotations

import csv
import json
import os
import platform
import shutil
import tempfile
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import torch

from poldist.errors import PoldistError


def machine_info() -> dict[str, Any]:
    """Platform, CPU model, cores, torch version and threads, load average: recorded with every
    summary and benchmark, because float results for one seed differ between CPUs."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_model": cpu,
        "cpu_count": os.cpu_count(),
        "torch_version": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }
    if hasattr(os, "sched_getaffinity"):
        info["cpus_usable"] = len(os.sched_getaffinity(0))
    if hasattr(os, "getloadavg"):  # the background load the numbers were measured under
        info["load_average_1_5_15min"] = list(os.getloadavg())
    return info


def prepare_run_dir(run_dir: str | Path, *, resume: bool) -> Path:
    """Create (or, with ``resume``, reopen) a run directory, failing early and clearly.

    Raises:
        PoldistError: unwritable location; an existing run without ``resume`` (nothing
            is overwritten); ``resume`` with no checkpoint to resume from.
    """
    run_dir = Path(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=run_dir, prefix=".write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise PoldistError(f"output directory {run_dir} is not writable ({e.strerror})") from e
    has_state = (run_dir / "state" / "meta.json").exists()
    if resume and not has_state:
        raise PoldistError(f"--resume: no checkpoint in {run_dir / 'state'} to resume from")
    if not resume and has_state:
        raise PoldistError(
            f"{run_dir} already holds a run: pass --resume to continue it, or choose another --out"
        )
    if not resume and (run_dir / "config.json").exists():
        raise PoldistError(
            f"{run_dir} holds a run stopped before its first checkpoint (nothing to resume): "
            "delete the directory or choose another --out"
        )
    return run_dir


def write_json(path: str | Path, obj: Any) -> None:
    """Write JSON atomically (temp file + rename); dataclasses are converted."""
    path = Path(path)
    if is_dataclass(obj):
        obj = asdict(obj)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str))
    os.replace(tmp, path)


class EvalLog:
    """Append-only CSV of periodic evaluations, truncated on resume to the checkpointed step."""

    FIELDS = (
        "step",
        "task",
        "updates",
        "env_steps",
        "wall_seconds",
        "score",
        "ci_low",
        "ci_high",
        "episodes",
    )

    def __init__(self, path: str | Path, resume_step: int | None = None):
        self.path = Path(path)
        rows = self.read(self.path) if self.path.exists() else []
        if resume_step is not None:
            rows = [r for r in rows if r["step"] <= resume_step]
        with self.path.open("w", newline="") as f:
            w = csv.DictWriter(f, self.FIELDS)
            w.writeheader()
            w.writerows(rows)

    def append(self, **row: float) -> None:
        """Add one evaluation."""
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, self.FIELDS).writerow({k: row.get(k, "") for k in self.FIELDS})

    @staticmethod
    def read(path: str | Path) -> list[dict[str, float]]:
        """All rows, as numbers."""
        with Path(path).open() as f:
            return [{k: float(v) for k, v in r.items() if v != ""} for r in csv.DictReader(f)]


def resume_or_clear(run_dir: str | Path, checkpoint_in: str = "") -> bool:
    """For scripts that own their runs directory: True if ``run_dir`` holds a checkpoint to resume;
    a run killed before its first checkpoint has nothing to resume, so it is removed (False).

    ``checkpoint_in`` names the sub-run whose checkpoint decides (e.g. ``"teacher-run"`` for an
    online-distillation run); by default ``run_dir``'s own ``state/``.
    """
    run_dir = Path(run_dir)
    if (run_dir / checkpoint_in / "state" / "meta.json").exists():
        return True
    if run_dir.exists():
        shutil.rmtree(run_dir)
    return False
