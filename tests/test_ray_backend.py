"""Teacher play in Ray actors (poldist.ray_backend): one local Ray instance for the whole file.

MinAtar Breakout with the shipped teacher, 2 actors of 8 envs each, tiny runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

ray = pytest.importorskip("ray")

from poldist.checkpoints import load_checkpoint  # noqa: E402
from poldist.distillation import DistillConfig, Distiller, distill, make_collector  # noqa: E402
from poldist.errors import PoldistError  # noqa: E402
from poldist.experiments import bench_collection, bench_common  # noqa: E402
from poldist.memory import ReplayMemory  # noqa: E402
from poldist.ray_backend import DEFAULT_CHUNK, DEFAULT_IN_FLIGHT, RayCollector, init_ray  # noqa: E402
from poldist.teachers import load_teacher  # noqa: E402

ACTORS = 2
NUM_ENVS = 8
CHUNK = DEFAULT_CHUNK * NUM_ENVS  # transitions per chunk


@pytest.fixture(scope="module", autouse=True)
def ray_instance() -> Any:
    """One small local Ray for every test here (start-up takes seconds); collectors reuse it."""
    started = init_ray("", num_cpus=2)  # the library's own start-up (False: one was running)
    yield ray
    if started:
        ray.shutdown()


def _cfg(**overrides: Any) -> DistillConfig:
    """A few hundred updates on a small memory; no periodic evaluation, one final episode."""
    base = dict(
        teacher="minatar/breakout",
        backend="ray",
        ray_actors=ACTORS,
        num_envs=NUM_ENVS,
        updates=200,
        learning_starts=400,
        memory_size=4_000,
        batch_size=32,
        eval_interval=10**9,
        eval_episodes=1,
        final_eval_episodes=1,
        evaluate_teacher=False,
        agreement_states=100,
        checkpoint_interval=10**9,
    )
    return DistillConfig(**{**base, **overrides})


def _assert_teacher_labelled(rows: dict[str, np.ndarray], teacher_net: torch.nn.Module) -> None:
    """Every stored ``teacher_out`` is what the teacher outputs for the stored ``obs``."""
    obs, stored = torch.as_tensor(np.array(rows["obs"])), torch.as_tensor(np.array(rows["teacher_out"]))
    assert len(obs) > 0 and obs.dtype == torch.uint8
    with torch.no_grad():
        expected = teacher_net(obs)
    # the actors compute in batches of num_envs on 1 thread: not bit-identical to one big batch
    torch.testing.assert_close(stored, expected, rtol=1e-4, atol=1e-4)


def _take_older_requests(collector: RayCollector, d: Distiller) -> None:
    """``collect`` chunk by chunk until every request outstanding now has been taken (each actor
    is then asked again, with the networks as they are now)."""
    older = set(collector.pending(0))
    deadline = time.monotonic() + 60  # by time, not by count: a busy machine may stall one actor
    while not older.isdisjoint(collector.pending(0)):
        assert time.monotonic() < deadline, "outstanding requests were never taken"
        collector.collect(d.tasks[0], d.controller, d.student, CHUNK, d.rng, d.updates)


def test_ray_workers_run_at_the_learners_priority() -> None:
    # Ray's default nice 15 starves the actors behind any other job on a busy machine
    @ray.remote
    def niceness() -> int:
        return os.nice(0)

    assert ray.get(niceness.remote()) == os.nice(0)


@pytest.mark.slow
def test_ray_distill_stores_teacher_labelled_play(tmp_path: Path) -> None:
    cfg = _cfg()
    summary = distill(cfg, tmp_path / "run")
    assert summary["updates"] == cfg.updates
    transitions = summary["tasks"][0]["transitions"]
    needed = cfg.learning_starts + cfg.updates * cfg.transitions_per_update
    assert needed <= transitions < needed + CHUNK  # whole chunks, no more than needed
    assert transitions % CHUNK == 0
    # the final checkpoint holds the memory: recompute the teacher on every stored observation
    ckpt = load_checkpoint(tmp_path / "run" / "state")
    teacher = load_teacher("minatar/breakout")
    memory = ReplayMemory(
        cfg.memory_size,
        {"obs": (teacher.env.obs_shape, np.uint8), "teacher_out": ((teacher.n_actions,), np.float32)},
    )
    memory.load_bytes(ckpt.blobs["memory_0"])
    assert memory.added == transitions
    _assert_teacher_labelled(memory.all_rows(), teacher.net)
    assert (tmp_path / "run" / "student" / "meta.json").exists()


@pytest.mark.slow
def test_student_control_ships_student_and_changed_teacher_weights(tmp_path: Path) -> None:
    d = Distiller(_cfg(control="student", updates=120), tmp_path / "run")
    try:
        collector = d.collector
        assert isinstance(collector, RayCollector)
        initial = {k: v.clone() for k, v in d.student.state_dict().items()}
        d.run(show_progress=False)
        assert collector.stats["student_sends"] > 0 and collector.stats["teacher_sends"] == 0

        # once every request made before now has been taken, each actor holds the student as it is now
        task = d.tasks[0]
        current = d.student.state_dict()
        assert any(not torch.equal(initial[k], current[k]) for k in current)  # it did learn
        _take_older_requests(collector, d)
        for j in range(ACTORS):
            copy = collector.actor_student_state(0, j)
            assert copy is not None and copy.keys() == current.keys()
            assert all(torch.equal(copy[k], current[k]) for k in current)

        # a teacher that changes (online distillation): the new weights reach the actors once
        # each, and the play requested after the change is labelled by the new teacher
        with torch.no_grad():
            for p in task.teacher.net.parameters():
                p.mul_(0.5)
        task.teacher.weights_changed()  # whoever writes a live teacher's weights says so
        sends = collector.stats["teacher_sends"]
        _take_older_requests(collector, d)
        assert collector.stats["teacher_sends"] == sends + ACTORS
        for j in range(ACTORS):
            copy = collector.actor_teacher_state(0, j)
            assert all(torch.equal(copy[k], v) for k, v in task.teacher.net.state_dict().items())
        n = ACTORS * DEFAULT_IN_FLIGHT * CHUNK
        collector.collect(task, d.controller, d.student, n, d.rng, d.updates)
        last = (task.memory.next - n + np.arange(n)) % task.memory.capacity
        _assert_teacher_labelled({k: v[last] for k, v in task.memory.data.items()}, task.teacher.net)
    finally:
        d.collector.close()


@pytest.mark.slow
def test_a_killed_actor_is_replaced_and_the_run_finishes(tmp_path: Path) -> None:
    d = Distiller(_cfg(updates=400), tmp_path / "run")
    collector = d.collector
    d.run(until=20, show_progress=False)
    victim = collector.actors[0][0]
    ray.kill(victim)
    with pytest.warns(RuntimeWarning, match="died"):
        d.run(show_progress=False)  # the dead actor's requests fail at the front of the queue
    assert collector.stats["replacements"] == 1
    assert collector.actors[0][0] is not victim and len(collector.actors[0]) == ACTORS
    assert collector.stats["teacher_sends"] == 0  # a fixed teacher is sent once, at actor start
    _assert_teacher_labelled(d.tasks[0].memory.all_rows(), d.tasks[0].teacher.net)
    summary = d.finish()
    assert summary["updates"] == 400
    with pytest.raises(PoldistError, match="closed"):
        collector.collect(d.tasks[0], d.controller, d.student, 1, d.rng)


def test_non_finite_teacher_outputs_stop_the_run(tmp_path: Path) -> None:
    teacher = load_teacher("minatar/breakout")
    with torch.no_grad():
        next(teacher.net.parameters()).fill_(float("nan"))
    d = Distiller(_cfg(ray_actors=1), tmp_path / "run", teachers=[teacher])
    try:
        with pytest.raises(PoldistError, match="not finite"):
            d.run(show_progress=False)
    finally:
        d.collector.close()


def test_unknown_backend_is_refused_before_work_starts(tmp_path: Path) -> None:
    run_dir = tmp_path / "never-created"
    with pytest.raises(
        PoldistError, match=r"backend \(--backend\) must be one of \['local', 'ray'\], got 'bogus'"
    ):
        distill(_cfg(backend="bogus"), run_dir)
    assert not run_dir.exists()
    refused = r"backend \(--backend\) must be one of \['local', 'ray'\], got 'bogus'"
    with pytest.raises(PoldistError, match=refused):
        _cfg(backend="bogus").validate()  # the one check: make_collector trusts it
    with pytest.raises(KeyError):  # past the config, an unknown name is a programming error
        make_collector(_cfg(backend="bogus"), [])


def test_local_backend_never_imports_ray(tmp_path: Path) -> None:
    code = textwrap.dedent(
        f"""
        import sys
        import poldist, poldist.distillation, poldist.cli
        from poldist.distillation import DistillConfig, distill
        assert "ray" not in sys.modules
        distill(DistillConfig(updates=20, learning_starts=100, memory_size=500, eval_interval=10**9,
                              eval_episodes=1, final_eval_episodes=1, evaluate_teacher=False,
                              agreement_states=50), {str(tmp_path / "run")!r})
        assert "ray" not in sys.modules and "poldist.ray_backend" not in sys.modules, "ray imported"
        print("no ray")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "no ray" in out.stdout


@pytest.mark.slow
def test_bench_ray_rows_on_the_shared_instance() -> None:
    res = bench_collection.bench_ray_collection(bench_common.QUICK, seed=0)
    assert [(r["backend"], r["actors"]) for r in res["rows"]] == [("local", 0), ("ray", 1), ("ray", 2)]
    for r in res["rows"]:
        assert r["transitions_per_s"] > 0 and r["ratio_vs_local"] > 0
    assert "Ray actors" in bench_collection.ray_table(res["rows"])


@pytest.mark.slow
def test_online_distillation_with_ray_actors(tmp_path: Path) -> None:
    """The teacher keeps learning in the learner process; the actors' copies follow it."""
    from poldist.online import OnlineConfig, online_distill

    cfg = OnlineConfig(
        total_steps=4_000,
        interval=2_000,
        updates_per_interval=40,
        memory_size=1_000,
        eval_episodes=1,
        backend="ray",
        ray_actors=1,
    )
    summary = online_distill(cfg, tmp_path / "online")
    assert summary["student"]["updates"] == 2 * 40
    assert (tmp_path / "online" / "online.png").exists()
