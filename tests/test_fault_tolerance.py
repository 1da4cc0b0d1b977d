"""Fault tolerance, proved by hurting real runs.

- ``kill -9`` at random moments of ``poldist train-teacher`` and ``poldist distill`` (and once in
  the middle of a checkpoint write), each followed by ``--resume``: the run finishes with exactly
  the configured counts, every resume starts from the last complete checkpoint, at most one
  checkpoint interval of work is lost, and the checkpoint left behind always loads.
- Damaged or malicious files at the command line: exit code 2, one ``poldist: error:`` line, and a
  pickle payload is never run. (Function-level checks of the same files are in
  ``test_checkpoints.py`` and ``test_external.py``; a truncated model checkpoint given to
  ``poldist evaluate`` is in ``test_cli.py``.)
- NaN from the teacher or in the loss (distillation and DQN): a ``PoldistError`` naming it, and
  the last good checkpoint kept, loadable, with finite weights.
- Determinism: same seed, same student bit for bit; a resume is a deterministic function of its
  checkpoint.
"""

from __future__ import annotations

import csv
import fcntl
import io
import json
import math
import os
import pickle
import pty
import re
import shutil
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import poldist.distillation as distillation
import poldist.dqn as dqn
from poldist.checkpoints import META, load_checkpoint, load_model, metadata_digest
from poldist.cli import main
from poldist.distillation import DistillConfig, Distiller, distill
from poldist.dqn import DQNConfig, train_dqn
from poldist.errors import PoldistError
from poldist.teachers import NetworkTeacher, load_teacher

POLDIST = [sys.executable, "-m", "poldist.cli"]

# --------------------------------------------------------------------------- a run we can kill


class _Proc:
    """A ``poldist`` command in its own process group, with its stderr on a pseudo-terminal.

    tqdm redraws its progress bar every 0.5 s on a terminal but only every 30 s in a log
    (``poldist.progress``), so the pty is what makes the progress at the moment of a kill
    observable. stdout goes to a file so that a full pipe can never stall the run.
    """

    def __init__(self, argv: list[str], log: Path):
        master, slave = pty.openpty()
        # a pty starts 0 columns wide, where tqdm draws nothing
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 160, 0, 0))
        self._stdout = log.open("ab")
        self.popen = subprocess.Popen(
            [*POLDIST, *argv],
            stdin=subprocess.DEVNULL,
            stdout=self._stdout,
            stderr=slave,
            start_new_session=True,  # its own process group: killpg reaches it and nothing else
        )
        os.close(slave)
        self._master = master
        self._chunks: list[bytes] = []
        self._reader = threading.Thread(target=self._read, daemon=True)  # a full pty would block the run
        self._reader.start()
        self._closed = False

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self._master, 65536)
            except OSError:  # EIO: the run's side of the pty is closed
                return
            if not data:
                return
            self._chunks.append(data)

    def stderr(self) -> str:
        """Everything the run wrote to stderr so far (progress bars included)."""
        return b"".join(self._chunks).decode(errors="replace")

    def progress(self, total: int) -> list[int]:
        """Every count its progress bar has shown so far, in order."""
        return [int(n) for n in re.findall(rf"(\d+)/{total} \[", self.stderr())]

    def running(self) -> bool:
        """Whether the process is still alive."""
        return self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL its process group: no handler, no cleanup, as an OOM kill or a power cut of the job."""
        if self.running():
            try:
                os.killpg(self.popen.pid, signal.SIGKILL)
            except ProcessLookupError:  # ended between poll() and killpg()
                pass
        self.close(timeout=30)

    def close(self, timeout: float) -> int:
        """Wait for the process to end; return its exit code."""
        rc = self.popen.wait(timeout)
        if not self._closed:
            self._reader.join(5)
            os.close(self._master)
            self._stdout.close()
            self._closed = True
        return rc


@pytest.fixture
def procs() -> Iterator[list[_Proc]]:
    """Processes a test starts; any still alive at teardown (a failed test) are killed."""
    started: list[_Proc] = []
    yield started
    for p in started:
        p.kill()


def _counters(state: Path) -> dict | None:
    """The counters of the checkpoint ``meta.json`` names right now (None: no checkpoint yet).

    ``meta.json`` is replaced by rename, so a read sees one whole version of it.
    """
    try:
        return json.loads((state / META).read_text())["counters"]
    except FileNotFoundError:
        return None


def _wait(cond: Callable[[], bool], proc: _Proc, timeout: float, poll: float = 0.005) -> bool:
    """Poll ``cond`` until it holds, the process ends or ``timeout`` passes; return ``cond``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        if not proc.running():
            return cond()
        time.sleep(poll)
    return cond()


def _tmp_files(state: Path) -> set[str]:
    """Temporary files of checkpoint writes in progress (or left by a killed one)."""
    return {e.name for e in os.scandir(state) if e.name.endswith(".tmp")}


@dataclass
class _Kill:
    """What one kill left behind."""

    how: str  # "random": at a random moment; "write": while a checkpoint file was being written
    checkpoint: int  # the counter of the checkpoint left behind
    shown: int  # the last count the progress bar showed before the kill
    resumed_at: int = -1  # the first count the next (resumed) process showed
    stray: tuple[str, ...] = ()  # files in state/ that the checkpoint does not list


def _kill_and_resume(
    argv: list[str],
    run: Path,
    *,
    key: str,
    total: int,
    interval: int,
    procs: list[_Proc],
    seed: int,
    max_delay: float,
    plan: tuple[str, ...],
) -> list[_Kill]:
    """Start ``argv``, kill it as ``plan`` says (``--resume`` after each kill), let the last resume finish.

    Each kill comes after the process has written a checkpoint of its own (so every resume
    makes progress): ``"random"`` then waits a seeded random delay up to ``max_delay`` s,
    ``"write"`` stops the process (SIGSTOP) while a checkpoint file is being written and kills
    it there. Kill ``i`` also comes no later than the checkpoint counter ``key`` reaching
    ``total * (i + 1) / (len(plan) + 1)``, so work is left for the later ones. After each kill
    the checkpoint must load whole.
    """
    rng = np.random.default_rng(seed)
    state = run / "state"
    log = run.parent / f"{run.name}.stdout"
    kills: list[_Kill] = []
    last = 0

    def now_at() -> int:  # the counter of the checkpoint on disk now (0: none yet)
        return (_counters(state) or {key: 0})[key]

    for i, how in enumerate(plan):
        proc = _Proc(argv + (["--resume"] if i else []), log)
        procs.append(proc)
        assert _wait(lambda last=last: now_at() > last, proc, 120), (
            f"no new checkpoint after {last}:\n{proc.stderr()[-2000:]}"
        )
        cap = total * (i + 1) // (len(plan) + 1)
        if how == "random":
            until = time.monotonic() + rng.uniform(0, max_delay)
            _wait(lambda until=until, cap=cap: time.monotonic() >= until or now_at() >= cap, proc, 120)
        else:  # freeze the run as soon as a checkpoint file is being written; kill it if still mid-write
            caught = False
            while not caught:
                before = _tmp_files(state)
                seen = _wait(lambda before=before: bool(_tmp_files(state) - before), proc, 60, poll=0.0005)
                assert seen and proc.running(), "no checkpoint write was seen in progress"
                os.killpg(proc.popen.pid, signal.SIGSTOP)
                caught = bool(_tmp_files(state) - before)  # else the write ended before the stop: next one
                if not caught:
                    os.killpg(proc.popen.pid, signal.SIGCONT)
        assert proc.running(), f"the run ended before kill {i}:\n{proc.stderr()[-2000:]}"
        proc.kill()
        assert proc.popen.returncode == -signal.SIGKILL
        shown = max(proc.progress(total))  # read after the kill: all it wrote, still <= its progress
        if kills:
            kills[-1].resumed_at = proc.progress(total)[0]
        # the checkpoint left behind is whole: hashes verified, every file (memory too) read
        ckpt = load_checkpoint(state)
        counter = ckpt.metadata["counters"][key]
        listed = {f["file"] for f in ckpt.metadata["files"].values()} | {META}
        stray = tuple(sorted(p.name for p in state.iterdir() if p.name not in listed))
        kills.append(_Kill(how, counter, shown, stray=stray))
        assert counter > last and counter % interval == 0, (counter, last)  # progress, on the grid
        assert shown - counter <= interval, f"kill {i}: bar showed {shown}, checkpoint at {counter}"
        last = counter
    proc = _Proc(argv + ["--resume"], log)
    procs.append(proc)
    rc = proc.close(timeout=300)
    assert rc == 0, proc.stderr()[-3000:]
    kills[-1].resumed_at = proc.progress(total)[0]
    for k in kills:  # every resume started exactly at the checkpoint the kill left, not from zero
        assert k.resumed_at == k.checkpoint > 0, kills
    return kills


def _memory_counters(blob: bytes) -> dict[str, int]:
    """``ReplayMemory.to_bytes`` counters: capacity, next row, rows filled, rows ever added."""
    with np.load(io.BytesIO(blob), allow_pickle=False) as z:
        return dict(zip(("capacity", "next", "size", "added"), (int(x) for x in z["counters"][:4])))


def _csv_rows(path: Path) -> list[dict[str, str]]:
    """Rows of a CSV file."""
    with path.open() as f:
        return list(csv.DictReader(f))


DQN_TOTAL, DQN_STARTS, DQN_INTERVAL, DQN_ENVS = 20_000, 1_000, 2_000, 8


@pytest.mark.slow
def test_kill_9_during_teacher_training_and_resume(tmp_path: Path, procs: list[_Proc]) -> None:
    """Three kill -9 at random moments of ``train-teacher``, each resumed: counts as if never killed.

    Env steps come in vector steps of 8 and each vector step from ``learning_starts`` on does one
    update (updates_per_step 0.125 x 8 envs), so the uninterrupted run's counts are known exactly.
    """
    run = tmp_path / "teacher-run"
    argv = [
        "train-teacher",
        "--env-id",
        "MinAtar/Breakout-v1",
        "--total-steps",
        str(DQN_TOTAL),
        "--learning-starts",
        str(DQN_STARTS),
        "--checkpoint-interval",
        str(DQN_INTERVAL),
        "--eval-interval",
        "10000",
        "--eval-episodes",
        "1",
        "--out",
        str(run),
    ]
    start = time.perf_counter()
    kills = _kill_and_resume(
        argv,
        run,
        key="step",
        total=DQN_TOTAL,
        interval=DQN_INTERVAL,
        procs=procs,
        seed=20261126,
        max_delay=1.5,
        plan=("random", "random", "random"),
    )
    expected_updates = sum(1 for s in range(DQN_ENVS, DQN_TOTAL + 1, DQN_ENVS) if s >= DQN_STARTS)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["env_steps"] == DQN_TOTAL and summary["updates"] == expected_updates == 2376
    final = load_checkpoint(run / "state")
    assert final.metadata["counters"]["step"] == DQN_TOTAL
    assert final.metadata["counters"]["updates"] == expected_updates
    # every env step stored once: the steps done after a checkpoint and lost were redone, not doubled
    assert _memory_counters(final.blobs["memory_0"])["added"] == DQN_TOTAL
    load_model(run / "teacher")
    steps = [int(r["step"]) for r in _csv_rows(run / "evals.csv")]
    assert steps == [10_000, 20_000]  # evaluations after the resumed checkpoint are not duplicated
    print(f"train-teacher: {kills}; {time.perf_counter() - start:.1f} s")


DISTILL_UPDATES, DISTILL_INTERVAL = 3_000, 300


def _distill_argv(run: Path) -> list[str]:
    return [
        "distill",
        "--teacher",
        "minatar/breakout",
        "--updates",
        str(DISTILL_UPDATES),
        "--learning-starts",
        "500",
        "--checkpoint-interval",
        str(DISTILL_INTERVAL),
        "--eval-interval",
        "100000",
        "--eval-episodes",
        "2",
        "--final-eval-episodes",
        "2",
        "--agreement-states",
        "200",
        "--batch-size",
        "32",
        "--no-evaluate-teacher",
        "--recipe",
        "paper",  # the transition count below is the paper's 5.4 a update
        "--out",
        str(run),
    ]


@pytest.mark.slow
def test_kill_9_during_distillation_and_resume(tmp_path: Path, procs: list[_Proc]) -> None:
    """Three kill -9 at random moments of ``distill`` and one in the middle of a checkpoint write.

    The write kill comes while a checkpoint data file is half written (its temporary file exists):
    the checkpoint before it must still load, and the half-written file is ignored.
    """
    run = tmp_path / "distill-run"
    start = time.perf_counter()
    kills = _kill_and_resume(
        _distill_argv(run),
        run,
        key="updates",
        total=DISTILL_UPDATES,
        interval=DISTILL_INTERVAL,
        procs=procs,
        seed=1511,
        max_delay=0.8,
        plan=("random", "write", "random", "random"),
    )
    assert any(name.endswith(".tmp") for name in kills[1].stray)  # the write kill left a half-written file
    summary = json.loads((run / "summary.json").read_text())
    assert summary["updates"] == DISTILL_UPDATES
    final = load_checkpoint(run / "state")
    assert final.metadata["counters"]["updates"] == DISTILL_UPDATES
    assert final.metadata["counters"]["task_updates"] == [DISTILL_UPDATES]
    # the teacher labelled as many transitions as without kills: collection continues from the memory
    # restored with the checkpoint (in steps of 8 envs until learning_starts + 5.4 per update)
    transitions = math.ceil((500 + DISTILL_UPDATES * 5.4) / 8) * 8
    assert summary["tasks"][0]["transitions"] == transitions
    assert _memory_counters(final.blobs["memory_0"])["added"] == transitions
    load_model(run / "student")
    print(f"distill: {kills}; {time.perf_counter() - start:.1f} s")


# --------------------------------------------------------------------------- damaged files, CLI

TINY = dict(
    teacher="minatar/breakout",
    learning_starts=500,
    checkpoint_interval=300,
    eval_interval=10**6,
    eval_episodes=1,
    final_eval_episodes=1,
    agreement_states=50,
    batch_size=32,
    evaluate_teacher=False,
    seed=0,
)


def _tiny(updates: int) -> DistillConfig:
    return DistillConfig(updates=updates, **TINY)


def _tiny_argv(run: Path, updates: int) -> list[str]:
    """The CLI flags of ``_tiny(updates)``."""
    argv = ["distill", "--out", str(run), "--updates", str(updates), "--recipe", "paper"]
    for k, v in TINY.items():
        flag = "--" + k.replace("_", "-")
        argv += [f"--no-{flag[2:]}"] if v is False else [flag, str(v)]
    return argv


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished tiny distillation: ``student/`` and a resumable ``state/`` (300 updates)."""
    run = tmp_path_factory.mktemp("finished") / "run"
    distill(_tiny(300), run)
    return run


@pytest.fixture
def run_copy(finished_run: Path, tmp_path: Path) -> Path:
    """A copy of :func:`finished_run` this test may damage."""
    return Path(shutil.copytree(finished_run, tmp_path / "run"))


def _one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """Run the CLI in-process; it must exit 2 with exactly one ``poldist: error:`` line."""
    code = main(argv)
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(err) == 1 and err[0].startswith("poldist: error: "), err
    return err[0]


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same length: only the hash can tell
    path.write_bytes(bytes(data))


def _data_file(directory: Path, prefix: str) -> Path:
    (path,) = directory.glob(f"{prefix}-*")
    return path


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_evaluate_student_with_flipped_byte(capsys, run_copy: Path) -> None:
    _flip_byte(_data_file(run_copy / "student", "weights"))
    err = _one_line_error(capsys, ["evaluate", str(run_copy / "student"), "--episodes", "1"])
    assert "does not match its sha256" in err


def test_resume_from_state_with_flipped_byte_in_memory(capsys, run_copy: Path) -> None:
    memory = _data_file(run_copy / "state", "memory_0")
    _flip_byte(memory)
    before = _snapshot(run_copy / "state")
    err = _one_line_error(capsys, [*_tiny_argv(run_copy, 600), "--resume"])
    assert "does not match its sha256" in err and memory.name in err
    assert _snapshot(run_copy / "state") == before  # the refusal changed nothing


def test_resume_from_state_with_truncated_weights(capsys, run_copy: Path) -> None:
    weights = _data_file(run_copy / "state", "weights")
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    err = _one_line_error(capsys, [*_tiny_argv(run_copy, 600), "--resume"])
    assert "corrupted checkpoint" in err and weights.name in err


def test_evaluate_student_whose_meta_lacks_keys(capsys, run_copy: Path) -> None:
    meta_path = run_copy / "student" / META
    meta = json.loads(meta_path.read_text())
    del meta["architecture"], meta["envs"]
    meta_path.write_text(json.dumps(meta))
    err = _one_line_error(capsys, ["evaluate", str(run_copy / "student"), "--episodes", "1"])
    assert "does not match its meta_sha256" in err  # the edit itself is caught first
    meta["meta_sha256"] = metadata_digest(meta)  # as a tool that rewrites the hash would
    meta_path.write_text(json.dumps(meta))
    err = _one_line_error(capsys, ["evaluate", str(run_copy / "student"), "--episodes", "1"])
    assert "lacks keys" in err and "architecture" in err


def test_resume_from_state_whose_meta_lacks_keys(capsys, run_copy: Path) -> None:
    meta_path = run_copy / "state" / META
    meta = json.loads(meta_path.read_text())
    del meta["counters"]
    meta["meta_sha256"] = metadata_digest(meta)  # self-consistent, so the missing key is what fails
    meta_path.write_text(json.dumps(meta))
    err = _one_line_error(capsys, [*_tiny_argv(run_copy, 600), "--resume"])
    assert "counters" in err


# --------------------------------------------------------------------------- pickle payloads, CLI


class _Payload:
    """Unpickling this creates the file ``marker``: a stand-in for arbitrary code."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


PICKLE_CASES = ("raw-pickle.pt", "torch-save.pt", "raw-pickle.zip", "torch-save.zip")


def _payload_bytes(how: str, marker: Path) -> bytes:
    """A weights file that runs the payload when unpickled: a bare pickle or a ``torch.save`` archive."""
    state = {"network.0.weight": _Payload(marker)}
    if how == "raw-pickle":
        return pickle.dumps(state)
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


@pytest.fixture(scope="module")
def pickle_cli(
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, tuple[subprocess.CompletedProcess, Path]]:
    """``poldist evaluate`` on each poisoned file, in subprocesses (run together: each is mostly imports).

    A subprocess, not ``main()``: stderr is then exactly what a user sees, warnings included.
    """
    d = tmp_path_factory.mktemp("pickles")
    running = {}
    for case in PICKLE_CASES:
        how, suffix = case.split(".")
        marker = d / f"pwned-{case}"
        payload = _payload_bytes(how, marker)
        path = d / case
        if suffix == "pt":  # a CleanRL-style state dict file
            path.write_bytes(payload)
        else:  # an SB3 zip: the JSON "data" entry is read first, then policy.pth goes to torch.load
            with zipfile.ZipFile(path, "w") as z:
                z.writestr("data", "{}")
                z.writestr("policy.pth", payload)
        argv = [*POLDIST, "evaluate", str(path), "--env-id", "ALE/Breakout-v5", "--episodes", "1"]
        running[case] = (
            subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
            marker,
        )
    results = {}
    for case, (p, marker) in running.items():
        out, err = p.communicate(timeout=300)
        results[case] = (subprocess.CompletedProcess(p.args, p.returncode, out, err), marker)
    return results


def test_payloads_really_run_when_unpickled(tmp_path: Path) -> None:
    """The checks below can only fail if the payloads work: prove they do."""
    for how in ("raw-pickle", "torch-save"):
        marker = tmp_path / how
        data = _payload_bytes(how, marker)
        if how == "raw-pickle":
            pickle.loads(data)["network.0.weight"].close()
        else:
            torch.load(io.BytesIO(data), weights_only=False)["network.0.weight"].close()
        assert marker.exists()


@pytest.mark.parametrize("case", PICKLE_CASES)
def test_pickle_payload_is_never_run_by_the_cli(pickle_cli, case: str) -> None:
    proc, marker = pickle_cli[case]
    assert not marker.exists()
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("poldist: error: ")]
    assert len(errors) == 1 and "holds pickled Python objects" in errors[0]
    assert "weights_only" not in errors[0]  # torch's advice would run the payload: never repeated


@pytest.mark.parametrize("case", PICKLE_CASES)
def test_pickle_payload_error_is_one_line(pickle_cli, case: str) -> None:
    proc, _ = pickle_cli[case]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("poldist: error: "), lines


# --------------------------------------------------------------------------- NaN


@dataclass
class _NaNTeacher(NetworkTeacher):
    """A teacher whose outputs turn to NaN from its ``after``-th call on (a diverged teacher)."""

    after: int = 0
    calls: int = 0

    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        out = super().__call__(obs)
        return torch.full_like(out, float("nan")) if self.calls >= self.after else out


def _assert_finite_checkpoint(state: Path, prefixes: tuple[str, ...]) -> dict:
    """The checkpoint loads whole and its network tensors are finite; return its counters."""
    ckpt = load_checkpoint(state)
    nets = {k: v for k, v in ckpt.tensors.items() if k.startswith(prefixes)}
    assert nets and all(torch.isfinite(v).all() for v in nets.values())
    return ckpt.metadata["counters"]


def test_nan_teacher_outputs_stop_distillation_before_they_are_stored(tmp_path: Path) -> None:
    shipped = load_teacher("minatar/breakout")
    # 64 calls fill learning_starts, then about one call per 1.5 updates: NaN near update 450
    teacher = _NaNTeacher(**{f.name: getattr(shipped, f.name) for f in fields(shipped)}, after=366)
    run = tmp_path / "run"
    distiller = Distiller(_tiny(900), run, teachers=[teacher])
    try:
        with pytest.raises(PoldistError, match=r"teacher outputs are not finite \(NaN/inf\) at update") as e:
            distiller.run(show_progress=False)
        memory = distiller.tasks[0].memory
        assert np.isfinite(memory.all_rows()["teacher_out"]).all()  # the NaN never entered the memory
    finally:
        distiller.tasks[0].env.close()
        distiller.writer.close()
    nan_at = int(re.search(r"at update (\d+)", str(e.value))[1])
    assert 300 < nan_at < 600, e.value
    counters = _assert_finite_checkpoint(run / "state", ("student.",))
    assert counters["updates"] == 300  # the last checkpoint before the NaN
    state = load_checkpoint(run / "state")
    stored = np.load(io.BytesIO(state.blobs["memory_0"]), allow_pickle=False)["field_teacher_out"]
    assert np.isfinite(stored).all()
    assert not (run / "student").exists() and not (run / "summary.json").exists()


def test_nan_distillation_loss_stops_the_run_and_keeps_the_checkpoint(tmp_path: Path, monkeypatch) -> None:
    real = distillation.make_loss
    calls = 0

    def nan_after_450(name: str, tau: float):
        loss_fn = real(name, tau)

        def loss(student_out: torch.Tensor, teacher_out: torch.Tensor) -> torch.Tensor:
            nonlocal calls
            calls += 1
            value = loss_fn(student_out, teacher_out)
            return value * float("nan") if calls > 450 else value

        return loss

    monkeypatch.setattr(distillation, "make_loss", nan_after_450)
    run = tmp_path / "run"
    with pytest.raises(PoldistError, match="loss became nan at update 450; last good checkpoint kept"):
        distill(_tiny(900), run)
    assert _assert_finite_checkpoint(run / "state", ("student.",))["updates"] == 300
    assert not (run / "student").exists()
    monkeypatch.undo()  # the cause fixed, the kept checkpoint resumes to the end
    assert distill(_tiny(900), run, resume=True)["updates"] == 900


def test_nan_dqn_loss_stops_training_and_keeps_the_checkpoint(tmp_path: Path, monkeypatch) -> None:
    real = dqn.double_dqn_loss
    calls = 0

    def nan_after_400(*args, **kwargs) -> torch.Tensor:
        nonlocal calls
        calls += 1
        value = real(*args, **kwargs)
        return value * float("nan") if calls > 400 else value

    monkeypatch.setattr(dqn, "double_dqn_loss", nan_after_400)
    cfg = DQNConfig(
        total_steps=8_000,
        learning_starts=1_000,
        checkpoint_interval=2_000,
        eval_interval=10**6,
        eval_episodes=1,
    )
    run = tmp_path / "run"
    # update 400 runs at env step 1000 + 8 * 400; the last checkpoint was at 4000
    with pytest.raises(PoldistError, match=r"DQN loss became nan at update 400 \(env step 4200\)") as e:
        train_dqn(cfg, run)
    assert str(run / "state") in str(e.value)
    counters = _assert_finite_checkpoint(run / "state", ("online.", "target."))
    assert counters["step"] == 4_000 and counters["updates"] == (4_000 - 1_000) // 8 + 1
    assert not (run / "teacher").exists()
    monkeypatch.undo()
    summary = train_dqn(cfg, run, resume=True)
    assert summary["env_steps"] == 8_000 and summary["updates"] == (8_000 - 1_000) // 8 + 1


# --------------------------------------------------------------------------- determinism


def _student_tensors(run: Path) -> dict[str, torch.Tensor]:
    return load_file(_data_file(run / "student", "weights"))


def _assert_same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_same_seed_same_student(tmp_path: Path, finished_run: Path) -> None:
    """Two runs with one seed on one CPU give bit-identical students."""
    distill(_tiny(300), tmp_path / "again")
    _assert_same_tensors(_student_tensors(finished_run), _student_tensors(tmp_path / "again"))


def test_resume_is_a_deterministic_function_of_the_checkpoint(tmp_path: Path) -> None:
    """Two resumes of one checkpoint give bit-identical students; an uninterrupted run need not.

    What a kill -9 leaves is a complete checkpoint (the kill tests above), so resuming a copy of
    one is what a resume after a kill does. The resumed student is not the uninterrupted run's:
    a checkpoint holds no env state, so on resume the envs restart at fresh episodes (seeded
    with ``seed + updates``) and the transitions collected from then on differ. Weights,
    optimizer, memory, counters and both RNGs are restored exactly, hence the determinism.
    """
    run = tmp_path / "a"
    interrupted = Distiller(_tiny(600), run)
    interrupted.run(until=300, show_progress=False)  # writes its checkpoint at 300, then "dies"
    interrupted.tasks[0].env.close()
    interrupted.writer.close()
    twin = Path(shutil.copytree(run, tmp_path / "b"))
    for r in (run, twin):
        assert distill(_tiny(600), r, resume=True)["updates"] == 600
    _assert_same_tensors(_student_tensors(run), _student_tensors(twin))


# --------------------------------------------------------------------------- small gaps, closed


def test_checkpoint_write_removes_temp_files_of_a_killed_write(tmp_path: Path) -> None:
    """A kill during a write leaves ``.<name>.<random>.tmp``; the next checkpoint removes it."""
    from poldist.checkpoints import save_checkpoint

    d = tmp_path / "state"
    save_checkpoint(d, {"w": torch.zeros(2)}, {"kind": "test"})
    (d / ".weights-abc.safetensors.x1y2.tmp").write_bytes(b"half")
    save_checkpoint(d, {"w": torch.ones(2)}, {"kind": "test"})
    assert not list(d.glob(".*.tmp")) and load_checkpoint(d).tensors["w"].tolist() == [1.0, 1.0]


def test_run_stopped_before_its_first_checkpoint_says_what_to_do(tmp_path: Path) -> None:
    from poldist.runs import prepare_run_dir

    run = prepare_run_dir(tmp_path / "run", resume=False)
    (run / "config.json").write_text("{}")  # what a run writes before its first checkpoint
    with pytest.raises(PoldistError, match="stopped before its first checkpoint.*delete the directory"):
        prepare_run_dir(run, resume=False)


def test_resume_or_clear_keeps_a_checkpointed_run_and_removes_one_without(tmp_path: Path) -> None:
    from poldist.runs import resume_or_clear

    assert not resume_or_clear(tmp_path / "never-started")
    unfinished = tmp_path / "unfinished"
    (unfinished / "state").mkdir(parents=True)
    (unfinished / "config.json").write_text("{}")
    assert not resume_or_clear(unfinished) and not unfinished.exists()
    online = tmp_path / "online"  # an online run resumes from its teacher's checkpoint
    (online / "teacher-run" / "state").mkdir(parents=True)
    (online / "teacher-run" / "state" / META).write_text("{}")
    assert resume_or_clear(online, checkpoint_in="teacher-run")
    assert not resume_or_clear(online) and not online.exists()


def test_dqn_resume_keeps_the_fractional_update_owed(tmp_path: Path) -> None:
    """3 envs x 0.125 updates per step: 0.375 updates per vector step, owed across a resume."""
    kw = dict(num_envs=3, learning_starts=300, buffer_size=2_000, eval_interval=10**6, eval_episodes=1)
    whole = train_dqn(DQNConfig(total_steps=2_400, checkpoint_interval=2_400, **kw), tmp_path / "whole")
    cfg = DQNConfig(total_steps=1_203, checkpoint_interval=1_203, **kw)
    train_dqn(cfg, tmp_path / "split")
    cfg.total_steps = 2_400
    split = train_dqn(cfg, tmp_path / "split", resume=True)
    assert split["updates"] == whole["updates"]


def test_python_resume_refuses_a_changed_config_and_records_a_longer_run(
    finished_run: Path, tmp_path: Path
) -> None:
    """``distill(cfg, run, resume=True)`` from Python keeps the run's config as the CLI does."""
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    stored = (run / "config.json").read_text()
    with pytest.raises(PoldistError, match="--batch-size 64 differs from the run's") as e:
        distill(replace(_tiny(300), batch_size=64), run, resume=True)
    assert "\n" not in str(e.value) and (run / "config.json").read_text() == stored
    assert not (run / "config_changes.json").exists()
    distill(_tiny(400), run, resume=True)
    (change,) = json.loads((run / "config_changes.json").read_text())
    assert change["changes"] == {"updates": [300, 400]}
    assert json.loads((run / "summary.json").read_text())["updates"] == 400
