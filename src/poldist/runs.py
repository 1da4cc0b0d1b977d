"""Run directories: the layout every long job (teacher training, distillation) shares.

::

    <run_dir>/
      config.json      the job's config dataclass, as given
      state/           latest resumable checkpoint (weights, optimizer, memory, counters)
      tb/              TensorBoard logs
      evals.csv        periodic evaluations (step, score, CI)
      summary.json     the finished run's summary; its "config" is config.json's, and what the
                       config left to the run (distillation: the temperature a tau of 0 stands
                       for, or tau_gap's per task) is under "resolved"

:class:`RunBook` keeps that layout for a job: the directory, the seeds and RNGs, the clock across
resumes, the logs and the resumable checkpoint's shared part (RNG states, optimizer, counters).
"""

from __future__ import annotations

import csv
import json
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from poldist.checkpoints import (
    Blob,
    Checkpoint,
    atomic_write,
    load_checkpoint,
    pack_optimizer,
    require_metadata,
    save_checkpoint,
    unpack_optimizer,
)
from poldist.errors import PoldistError

if TYPE_CHECKING:  # tensorboard is imported when a run opens its logs, not by readers of evals.csv
    from torch.utils.tensorboard import SummaryWriter

    from poldist.evaluation import EvalResult


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
    """Write JSON atomically (:func:`~poldist.checkpoints.atomic_write`); dataclasses are converted."""
    if is_dataclass(obj):
        obj = asdict(obj)
    atomic_write(path, json.dumps(obj, indent=2, sort_keys=True, default=str).encode())


def loss_text(value: float) -> str:
    """A loss for a progress bar, to three significant digits: a KL at temperature 0.01 is about
    1e-5, which four decimals show as ``0.0000``."""
    return f"{value:.3g}"


class EvalLog:
    """Append-only CSV of periodic evaluations, truncated on resume to the checkpointed step.

    The counts (:attr:`INT_FIELDS`) are written and read as integers, before and after a resume.
    """

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
    INT_FIELDS = ("step", "task", "updates", "env_steps", "episodes")

    def __init__(self, path: str | Path, resume_step: int | None = None):
        self.path = Path(path)
        rows = []
        if self.path.exists():
            with self.path.open(newline="") as f:
                rows = list(csv.DictReader(f))
        if resume_step is not None:
            rows = [r for r in rows if self._number("step", r["step"]) <= resume_step]
        with self.path.open("w", newline="") as f:
            w = csv.DictWriter(f, self.FIELDS)
            w.writeheader()
            # kept as written, but a count an older version rewrote as "5000.0" is written "5000" again
            w.writerows({k: self._text(k, v) for k, v in r.items()} for r in rows)

    def append(self, **row: float) -> None:
        """Add one evaluation."""
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, self.FIELDS).writerow({k: self._text(k, row.get(k, "")) for k in self.FIELDS})

    @classmethod
    def _number(cls, field: str, text: str) -> float:
        value = float(text)
        return int(value) if field in cls.INT_FIELDS and value.is_integer() else value

    @classmethod
    def _text(cls, field: str, value: Any) -> Any:
        """A cell as written: a whole count as an integer, anything else as given."""
        if field in cls.INT_FIELDS and value not in ("", None):
            number = cls._number(field, str(value))
            return str(number) if isinstance(number, int) else value
        return value

    @classmethod
    def read(cls, path: str | Path) -> list[dict[str, float]]:
        """All rows, as numbers: the counts (:attr:`INT_FIELDS`) as ints, the rest as floats."""
        with Path(path).open() as f:
            return [
                {k: cls._number(k, v) for k, v in r.items() if v not in ("", None)} for r in csv.DictReader(f)
            ]


def record_config_changes(run_dir: Path, config: Any) -> dict[str, list[Any]]:
    """On a resume, compare ``config`` with the run's stored ``config.json``: refuse a change a
    resume may not make (:func:`poldist.config.resumed_config`), and append the allowed ones (a
    longer run, another device) with the command to ``<run_dir>/config_changes.json``.

    Raises:
        PoldistError: a field differs where a resume must keep the run's setting (one line).
    """
    import sys

    from poldist.config import resumed_config

    stored = run_dir / "config.json"
    if not stored.exists():
        return {}
    try:
        raw = json.loads(stored.read_text())
    except (OSError, ValueError) as e:
        raise PoldistError(f"--resume: cannot read the run's config {stored}: {e}") from None
    _, changes = resumed_config(type(config), raw, asdict(config), str(stored))
    if changes:
        log = run_dir / "config_changes.json"
        history = json.loads(log.read_text()) if log.exists() else []
        command = (
            " ".join(["poldist", *sys.argv[1:]])
            if Path(sys.argv[0]).name == "poldist"
            else " ".join(sys.argv)
        )
        write_json(log, [*history, {"command": command, "changes": changes}])
    return changes


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


class RunBook:
    """The bookkeeping of one long job (teacher training, distillation), in the layout above.

    Used in three steps, because the job builds its networks between them (they draw their
    initial weights from the torch RNG seeded here)::

        book = RunBook(run_dir, resume=..., seed=cfg.seed, torch_threads=cfg.torch_threads)
        ...build networks and optimizer from book.rng / the seeded torch RNG...
        if resume: ckpt = book.restore(); ...load the job's own tensors from ckpt...
        book.open_logs(cfg, resume_step)  # config.json, tb/, evals.csv; the clock starts

    Then :meth:`log_eval` for every evaluation, :meth:`save_state` for checkpoints,
    :meth:`write_summary` at the end and :meth:`close`.
    """

    def __init__(self, run_dir: str | Path, *, resume: bool, seed: int, torch_threads: int):
        self.dir = prepare_run_dir(run_dir, resume=resume)
        self.resume = resume
        torch.set_num_threads(torch_threads)
        torch.manual_seed(seed)
        self.rng = np.random.default_rng(seed)
        self.wall_before = 0.0  # seconds of work before this process (resumes)
        # CPU seconds before this process; None when resumed from a checkpoint that predates the count
        self.cpu_before: float | None = 0.0
        self._start = time.perf_counter()
        self._cpu_start = time.process_time()
        self.writer: SummaryWriter | None = None
        self.evals: EvalLog | None = None

    def restore(self) -> Checkpoint:
        """Load ``<dir>/state`` and restore the shared part: both RNGs and the clock.

        Returns:
            The checkpoint, whose tensors (see :meth:`module_state`), optimizer state
            (:meth:`restore_optimizer`), counters and blobs the job restores itself.
        """
        ckpt = load_checkpoint(self.dir / "state")
        require_metadata(ckpt, ("counters", "optimizer", "rng"), self.dir / "state")
        self.wall_before = ckpt.metadata["counters"]["wall_seconds"]
        self.cpu_before = ckpt.metadata["counters"].get("cpu_seconds")
        self.rng.bit_generator.state = ckpt.metadata["rng"]
        torch.set_rng_state(ckpt.tensors["torch_rng"])
        return ckpt

    @staticmethod
    def module_state(ckpt: Checkpoint, prefix: str) -> dict[str, torch.Tensor]:
        """The state dict saved under ``prefix`` (e.g. ``"online"``) by :meth:`save_state`."""
        start = f"{prefix}."
        return {k[len(start) :]: v for k, v in ckpt.tensors.items() if k.startswith(start)}

    @staticmethod
    def restore_optimizer(ckpt: Checkpoint, optimizer: torch.optim.Optimizer) -> None:
        """Load the optimizer state saved by :meth:`save_state` into ``optimizer``."""
        unpack_optimizer(optimizer, ckpt.tensors, ckpt.metadata["optimizer"])

    def open_logs(self, config: Any, resume_step: int) -> None:
        """Write ``config.json``, open TensorBoard and ``evals.csv`` (cut back to ``resume_step``
        on a resume: rows after the checkpoint are made again) and start the clock."""
        from torch.utils.tensorboard import SummaryWriter

        if self.resume and is_dataclass(config):
            record_config_changes(self.dir, config)
        write_json(self.dir / "config.json", config)
        self.writer = SummaryWriter(str(self.dir / "tb"))
        self.evals = EvalLog(self.dir / "evals.csv", resume_step=resume_step if self.resume else None)
        self._start = time.perf_counter()
        self._cpu_start = time.process_time()

    def wall(self) -> float:
        """Seconds of work on this run, across resumes."""
        return self.wall_before + time.perf_counter() - self._start

    def cpu(self) -> float | None:
        """CPU seconds this run's process has used (all its threads; not Ray actors'), across
        resumes: unlike :meth:`wall`, not inflated by other jobs on the machine or a paused process.
        None when the run resumed from a checkpoint written before the count was kept."""
        if self.cpu_before is None:
            return None
        return self.cpu_before + time.process_time() - self._cpu_start

    def log_eval(
        self,
        step: int,
        results: Sequence[EvalResult],
        *,
        env_ids: Sequence[str],
        updates: int,
        env_steps: Sequence[int],
    ) -> None:
        """Log one evaluation, a row per task: TensorBoard ``eval/<env_id>/score`` and ``evals.csv``.

        ``step`` is the run's own time axis (DQN: env steps; distillation: updates);
        ``env_steps``: each task's env steps so far.
        """
        assert self.writer is not None and self.evals is not None, "open_logs first"
        for i, res in enumerate(results):
            self.writer.add_scalar(f"eval/{env_ids[i]}/score", res.mean, step)
            self.evals.append(
                step=step,
                task=i,
                updates=updates,
                env_steps=env_steps[i],
                wall_seconds=self.wall(),
                score=res.mean,
                ci_low=res.ci_low,
                ci_high=res.ci_high,
                episodes=res.episodes,
            )

    def save_state(
        self,
        kind: str,
        config: Any,
        modules: Mapping[str, torch.nn.Module],
        optimizer: torch.optim.Optimizer,
        counters: dict[str, Any],
        blobs: Mapping[str, Blob],
    ) -> None:
        """Write the resumable checkpoint ``<dir>/state`` atomically.

        Tensors: each module's state dict under ``<prefix>.``, the optimizer's (``optim.*``) and
        the torch RNG (``torch_rng``); metadata: ``kind``, ``config``, ``optimizer``, ``rng`` (the
        numpy generator) and ``counters`` with ``wall_seconds`` and ``cpu_seconds`` added.
        """
        opt_tensors, opt_info = pack_optimizer(optimizer)
        tensors = {f"{prefix}.{k}": v for prefix, m in modules.items() for k, v in m.state_dict().items()}
        tensors.update(opt_tensors, torch_rng=torch.get_rng_state())
        meta = {
            "kind": kind,
            "config": asdict(config) if is_dataclass(config) else config,
            "optimizer": opt_info,
            "rng": self.rng.bit_generator.state,
            "counters": {**counters, "wall_seconds": self.wall(), "cpu_seconds": self.cpu()},
        }
        save_checkpoint(self.dir / "state", tensors, meta, blobs)

    def write_summary(self, summary: dict[str, Any]) -> None:
        """Write ``summary.json``."""
        write_json(self.dir / "summary.json", summary)

    def close(self) -> None:
        """Close the TensorBoard writer (the CSV is written row by row)."""
        if self.writer is not None:
            self.writer.close()
