"""The Atari path: ale-py vector env, Nature-DQN teacher, DQN, distillation, evaluation, checkpoints.

Atari episodes last hundreds of agent steps, so the tests that must cross episode ends (where
ale-py's autoreset differs from Gymnasium's) cap them with ``max_num_frames_per_episode`` and
assert that episodes really ended.
"""

import csv
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from poldist import dqn
from poldist.checkpoints import load_checkpoint, load_model, save_model
from poldist.collection import TeacherControl, collect
from poldist.distillation import DistillConfig, build_tasks, distill
from poldist.dqn import DQNConfig, final_observations, train_dqn
from poldist.envs import make_env_spec, make_vector_env
from poldist.evaluation import evaluate
from poldist.memory import FrameStackMemory, ReplayMemory
from poldist.networks import QNetwork, count_parameters, nature_dqn
from poldist.teachers import load_teacher


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Nature-DQN convolutions on one thread: with torch's default two on a 2-core machine with
    one core busy, the frame-memory test below took 20 s instead of 1.5 s."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_atari_breakout_end_to_end(tmp_path):
    # short episodes keep the test fast; the setting is recorded in the checkpoint and reused
    spec = make_env_spec("ALE/Breakout-v5", max_num_frames_per_episode=400)
    env = make_vector_env(spec, 2, seed=0)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (2, 4, 84, 84) and obs.dtype == np.uint8
    env.close()

    torch.manual_seed(0)
    teacher_net = QNetwork(nature_dqn(spec.n_actions))
    assert count_parameters(teacher_net) == 1_693_362 - 14 * 513  # 4 actions instead of 18
    save_model(tmp_path / "teacher", teacher_net, spec)
    teacher = load_teacher(tmp_path / "teacher")
    assert teacher.env.settings["max_num_frames_per_episode"] == 400

    cfg = DistillConfig(
        teacher=str(tmp_path / "teacher"),
        student="net3",
        num_envs=2,
        updates=20,
        learning_starts=64,
        memory_size=500,
        batch_size=8,
        eval_interval=20,
        eval_episodes=2,
        final_eval_episodes=2,
        checkpoint_interval=10,
        agreement_states=64,
        torch_threads=2,
    )
    summary = distill(cfg, tmp_path / "run")
    task = summary["tasks"][0]
    assert task["env_id"] == "ALE/Breakout-v5"
    assert np.isfinite(task["student_score"]) and np.isfinite(task["teacher_score"])
    assert summary["student_params"] < summary["teacher_params"]

    with (tmp_path / "run" / "evals.csv").open() as f:  # 400 frames: evaluation episodes end
        assert [int(r["episodes"]) for r in csv.DictReader(f)] == [2, 2]

    student, meta = load_model(tmp_path / "run" / "student")
    assert meta["envs"][0]["env_id"] == "ALE/Breakout-v5"
    obs = torch.randint(0, 256, (3, 4, 84, 84), dtype=torch.uint8)
    assert student(obs).shape == (3, spec.n_actions)
    assert (tmp_path / "run" / "state" / "meta.json").exists()


def test_atari_distillation_memory_stores_each_frame_once(tmp_path):
    """Real ale-py play (resets included) through the frame-deduplicating memory, bit-exact."""
    spec = make_env_spec("ALE/Breakout-v5", max_num_frames_per_episode=120)  # many resets
    torch.manual_seed(0)
    save_model(tmp_path / "teacher", QNetwork(nature_dqn(spec.n_actions)), spec)
    cfg = DistillConfig(teacher=str(tmp_path / "teacher"), num_envs=2, memory_size=400)
    task = build_tasks(cfg)[0]
    assert isinstance(task.memory, FrameStackMemory)
    task.start(cfg.num_envs, seed=0)
    seen = []
    real_add = task.memory.add

    def add(**rows):  # keep what the memory was given, to compare with what it gives back
        seen.append(rows["obs"].copy())
        real_add(**rows)

    task.memory.add = add
    collect(task, TeacherControl(0.5), None, 300, np.random.default_rng(0))
    task.env.close()
    stored = task.memory.all_rows()["obs"]
    assert np.array_equal(stored, np.concatenate(seen))
    plain = ReplayMemory(cfg.memory_size, {"obs": (spec.obs_shape, np.uint8), "t": ((4,), np.float32)})
    assert task.memory.nbytes_per_row() < plain.nbytes_per_row() / 3


# --------------------------------------------------------------------------- episode ends

SHORT_FRAMES = 720  # Breakout capped at 180 agent steps: random play ends some episodes, the cap others


def _short_episodes(monkeypatch: pytest.MonkeyPatch, *modules, frames: int = SHORT_FRAMES) -> None:
    """Make ``modules`` (which build their env spec from an env id alone) cap Atari episodes."""
    real = make_env_spec

    def short(env_id: str, **settings):
        return real(env_id, **{"max_num_frames_per_episode": frames, **settings})

    for module in modules:
        monkeypatch.setattr(module, "make_env_spec", short)


def _chronological(mem: FrameStackMemory) -> dict[str, np.ndarray]:
    """All rows oldest first (``all_rows`` is in storage order); every row must still be valid."""
    assert mem.valid_mask().all()
    rows = mem.all_rows()
    if mem.size == mem.capacity:
        rows = {k: np.roll(v, -mem.next, axis=0) for k, v in rows.items()}
    return rows


def _stacks(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 4, 84, 84), dtype=np.uint8)


def test_final_observations_with_gymnasiums_mask_and_without_it_as_ale_py_gives() -> None:
    next_obs = _stacks(3, 0)  # as returned: envs 1 and 2 ended and were reset already
    final = _stacks(3, 1)  # their true last stacks (row 0 is stale: env 0 did not end)
    terminated = np.array([False, True, False])
    truncated = np.array([False, False, True])
    want = np.concatenate([next_obs[:1], final[1:]])
    gym_final = np.empty(3, dtype=object)  # Gymnasium: None where no episode ended, plus a mask
    gym_final[1:] = list(final[1:])
    gymnasium_info = {"final_obs": gym_final, "_final_obs": np.array([False, True, True])}
    ale_info = {"final_obs": final.copy()}  # ale-py 0.12: a full array (stale rows), no mask
    for info in (gymnasium_info, ale_info):
        before = next_obs.copy()
        stored, done = final_observations(next_obs, terminated, truncated, info)
        assert stored.dtype == np.uint8 and stored.shape == next_obs.shape
        np.testing.assert_array_equal(stored, want)
        # terminated: no bootstrap; truncated: bootstraps from its true last stack
        np.testing.assert_array_equal(done, [False, True, False])
        np.testing.assert_array_equal(next_obs, before)  # the caller's next obs stay the reset ones
    # no final observations (no episode ended, or an env that gives none): nothing to bootstrap from
    stored, done = final_observations(next_obs, np.zeros(3, bool), np.zeros(3, bool), {})
    assert stored is next_obs and not done.any()
    stored, done = final_observations(next_obs, terminated, truncated, {})
    assert stored is next_obs
    np.testing.assert_array_equal(done, [False, True, True])


class _AddRecorder:
    """Wraps ``FrameStackMemory.add``: a copy of every batch added, and each memory's rows as they
    were before its first ``add`` (for a resumed run: the memory restored from its checkpoint)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.batches: list[dict[str, np.ndarray]] = []
        self.first_seen: list[tuple[FrameStackMemory, dict[str, np.ndarray]]] = []
        real = FrameStackMemory.add

        def add(mem: FrameStackMemory, **rows: np.ndarray) -> None:
            if not any(m is mem for m, _ in self.first_seen):
                self.first_seen.append((mem, {k: v.copy() for k, v in _chronological(mem).items()}))
            self.batches.append({k: np.array(v, copy=True) for k, v in rows.items()})
            real(mem, **rows)

        monkeypatch.setattr(FrameStackMemory, "add", add)

    def rows(self, name: str) -> np.ndarray:
        return np.concatenate([b[name] for b in self.batches])


def test_atari_dqn_crosses_episode_ends_checkpoints_and_resumes(tmp_path: Path, monkeypatch) -> None:
    """train-teacher crashed at the first Pong episode end (ale-py gives final_obs without a mask)."""
    _short_episodes(monkeypatch, dqn)
    recorder = _AddRecorder(monkeypatch)
    ends: list[tuple[np.ndarray, np.ndarray, set[str]]] = []  # terminated, truncated, info keys
    real_final = dqn.final_observations

    def record_ends(next_obs, terminated, truncated, info):
        if (terminated | truncated).any():
            ends.append((terminated.copy(), truncated.copy(), set(info)))
        return real_final(next_obs, terminated, truncated, info)

    def refuse(self) -> bytes:
        raise AssertionError("a checkpoint streams the memory (write_npz), never builds to_bytes()")

    monkeypatch.setattr(dqn, "final_observations", record_ends)
    monkeypatch.setattr(FrameStackMemory, "to_bytes", refuse)
    cfg = DQNConfig(
        env_id="ALE/Breakout-v5",
        total_steps=1_000,
        num_envs=2,
        buffer_size=1_200,
        learning_starts=600,
        batch_size=16,
        eps_end=1.0,  # random play, as DQN's first steps: a greedy untrained net never relaunches the ball
        eval_interval=10**6,
        eval_episodes=2,
        checkpoint_interval=10**6,
    )
    run = tmp_path / "run"
    summary = train_dqn(cfg, run)
    assert summary["env_steps"] == 1_000 and summary["updates"] == 50
    assert summary["final_eval"][0]["episodes"] == 2  # evaluation episodes finished
    # episodes ended both ways, each the ale-py way: final_obs and no _final_obs mask
    n_terminated, n_truncated = (sum(int(e[i].sum()) for e in ends) for i in (0, 1))
    print(f"first run: {n_terminated} episodes terminated, {n_truncated} truncated")
    assert n_terminated >= 1 and n_truncated >= 1
    assert all("final_obs" in keys and "_final_obs" not in keys for _, _, keys in ends)
    assert load_teacher(run / "teacher").env.settings["max_num_frames_per_episode"] == SHORT_FRAMES

    cfg.total_steps = 1_600
    summary = train_dqn(cfg, run, resume=True)
    assert summary["env_steps"] == 1_600 and summary["final_eval"][0]["episodes"] == 2
    added = {k: recorder.rows(k) for k in ("obs", "next_obs", "action", "reward", "done")}
    assert len(added["obs"]) == 1_600
    # the memory the resumed run restored from the first run's checkpoint, before its first add
    (first, empty), (restored, before) = recorder.first_seen
    assert len(empty["obs"]) == 0 and restored is not first
    assert isinstance(restored, FrameStackMemory) and restored.next_frame_field == "next_obs"
    assert len(before["obs"]) == 1_000
    for k, v in added.items():
        np.testing.assert_array_equal(before[k], v[:1_000], err_msg=k)
    assert before["done"].max() == 1  # a terminated episode's last transition
    assert restored.nbytes_per_row() < 10_000
    # the final checkpoint: 1,600 rows through a 1,200-row memory, every row kept bit-identical
    final = restored.empty_like(cfg.buffer_size)
    final.load_bytes(load_checkpoint(run / "state").blobs["memory_0"])
    rows = _chronological(final)
    for k, v in added.items():
        np.testing.assert_array_equal(rows[k], v[-1_200:], err_msg=k)
    (npz,) = (run / "state").glob("memory_0-*.npz")
    assert npz.stat().st_size / final.size < 10_000


def test_overlapped_env_steps_store_the_same_play_and_owe_the_same_updates(
    tmp_path: Path, monkeypatch
) -> None:
    """overlap_envs: the envs step in their threads while the network updates; the same
    transitions are stored (no updates: bit-identical play) and the same updates are made."""
    _short_episodes(monkeypatch, dqn)
    recorder = _AddRecorder(monkeypatch)
    base = DQNConfig(
        env_id="ALE/Breakout-v5",
        total_steps=600,
        num_envs=2,
        buffer_size=1_200,
        learning_starts=10**6,  # no updates: the play depends on nothing but the seed
        eps_end=1.0,
        eval_interval=10**6,
        eval_episodes=1,
        checkpoint_interval=10**6,
    )
    plays = []
    for overlap in (False, True):
        recorder.batches.clear()
        summary = train_dqn(replace(base, overlap_envs=overlap), tmp_path / f"play-{overlap}")
        assert summary["resolved"]["overlap_envs"] is overlap and summary["env_steps"] == 600
        plays.append({k: recorder.rows(k) for k in ("obs", "next_obs", "action", "reward", "done")})
    for k in plays[0]:
        np.testing.assert_array_equal(plays[0][k], plays[1][k], err_msg=k)
    # with learning: the same number of updates, each env step stored once
    recorder.batches.clear()
    cfg = replace(base, overlap_envs=True, total_steps=1_000, learning_starts=600, batch_size=16)
    summary = train_dqn(cfg, tmp_path / "learn")
    assert summary["updates"] == 50 and len(recorder.rows("obs")) == 1_000


def test_atari_dqn_memory_stores_real_play_bit_exactly_about_one_frame_per_row() -> None:
    """DQN's Atari memory fed ale-py play with many resets, as train_dqn feeds it."""
    spec = make_env_spec("ALE/Breakout-v5", max_num_frames_per_episode=400)  # 100 agent steps
    mem = dqn._game_memory(spec, 1_000)
    assert isinstance(mem, FrameStackMemory) and mem.next_frame_field == "next_obs"
    n, steps = 2, 600
    env = make_vector_env(spec, n, seed=0)
    obs, _ = env.reset(seed=0)
    rng = np.random.default_rng(0)
    seen: dict[str, list[np.ndarray]] = {"obs": [], "next_obs": [], "done": []}
    resets = 0
    for t in range(steps):
        next_obs, reward, terminated, truncated, info = env.step(rng.integers(0, spec.n_actions, n))
        stored_next, done = final_observations(next_obs, terminated, truncated, info)
        ids = np.arange(n * t, n * (t + 1))  # stored as the action: finds a sampled row's inputs
        mem.add(obs=obs, next_obs=stored_next, action=ids, reward=reward, done=done)
        for k, v in (("obs", obs), ("next_obs", stored_next), ("done", done)):
            seen[k].append(np.array(v, copy=True))
        resets += int((terminated | truncated).sum())
        obs = next_obs
    env.close()
    want = {k: np.concatenate(v) for k, v in seen.items()}
    assert resets >= 10 and mem.added == n * steps
    # one frame per row; a reset stack (zero padding + its first frame) two more, as the first stacks
    assert mem.added <= mem.frames_added <= mem.added + 2 * (resets + n)
    assert mem.nbytes_per_row() < 10_000 < ReplayMemory(10, mem.fields).nbytes_per_row() / 5

    def check(rows: dict[str, np.ndarray]) -> None:
        ids = rows["action"]
        for k in ("obs", "next_obs", "done"):
            np.testing.assert_array_equal(rows[k], want[k][ids], err_msg=k)

    rows = _chronological(mem)
    np.testing.assert_array_equal(rows["action"], np.arange(n * steps - 1_000, n * steps))
    check(rows)
    check(mem.sample(512, np.random.default_rng(1)))
    again = mem.empty_like(mem.capacity)
    again.load_bytes(mem.to_bytes())
    check(_chronological(again))
    a, b = mem.sample(64, np.random.default_rng(2)), again.sample(64, np.random.default_rng(2))
    assert all(np.array_equal(a[k], b[k]) for k in a)


class _CountingEnv:
    """A vector env that counts the episodes it ends."""

    def __init__(self, env) -> None:
        self.env, self.ended = env, 0

    def step(self, actions):
        return self._count(self.env.step(actions))

    def recv(self):  # collection pipelines Atari: send(actions), store, then recv()
        return self._count(self.env.recv())

    def _count(self, out):
        self.ended += int((out[2] | out[3]).sum())
        return out

    def __getattr__(self, name: str):
        return getattr(self.env, name)


def test_atari_distillation_and_evaluation_finish_episodes(tmp_path: Path, monkeypatch) -> None:
    import poldist.collection

    spec = make_env_spec("ALE/Breakout-v5", max_num_frames_per_episode=200)  # 50 agent steps
    save_model(tmp_path / "teacher", QNetwork(nature_dqn(spec.n_actions)), spec)
    envs: list[_CountingEnv] = []

    def counting(*args, **kwargs) -> _CountingEnv:
        envs.append(_CountingEnv(make_vector_env(*args, **kwargs)))
        return envs[-1]

    monkeypatch.setattr(poldist.collection, "make_vector_env", counting)  # the tasks' envs
    monkeypatch.setattr(FrameStackMemory, "to_bytes", lambda self: pytest.fail("to_bytes in a checkpoint"))
    cfg = DistillConfig(
        teacher=str(tmp_path / "teacher"),
        student="net3",
        num_envs=2,
        updates=30,
        learning_starts=100,
        memory_size=400,
        batch_size=8,
        eval_interval=15,
        eval_episodes=2,
        final_eval_episodes=3,
        checkpoint_interval=15,
        agreement_states=32,
    )
    summary = distill(cfg, tmp_path / "run")
    (collecting,) = envs
    assert collecting.ended >= 4  # teacher play crossed episode ends: 100 + 30 * 5.4 transitions
    with (tmp_path / "run" / "evals.csv").open() as f:
        evals = list(csv.DictReader(f))
    assert [int(r["updates"]) for r in evals] == [0, 15, 30]
    assert all(int(r["episodes"]) == 2 for r in evals)
    task = summary["tasks"][0]
    assert task["transitions"] >= 262
    assert np.isfinite(task["student_score"]) and np.isfinite(task["teacher_score"])
    teacher = load_teacher(tmp_path / "teacher")
    res = evaluate(teacher, spec, 3, num_envs=2, seed=5)
    assert res.episodes == len(res.returns) == len(res.lengths) == 3
    assert max(res.lengths) <= 50


@pytest.mark.slow
def test_atari_online_distillation_crosses_episode_ends(tmp_path: Path, monkeypatch) -> None:
    """Online distillation on Atari (about 25 s: ten ale-py vector envs are opened and reset)."""
    import poldist.online
    from poldist.online import OnlineConfig, online_distill

    _short_episodes(monkeypatch, dqn, poldist.online, frames=120)  # 30 agent steps
    ended = []
    real_final = dqn.final_observations

    def count_ends(next_obs, terminated, truncated, info):
        ended.append(int((terminated | truncated).sum()))
        return real_final(next_obs, terminated, truncated, info)

    monkeypatch.setattr(dqn, "final_observations", count_ends)
    cfg = OnlineConfig(
        env_id="ALE/Breakout-v5",
        total_steps=400,
        interval=200,
        updates_per_interval=10,
        memory_size=200,
        batch_size=8,
        eval_episodes=2,
        checkpoint_every=1,
    )
    summary = online_distill(cfg, tmp_path / "run")
    assert sum(ended) >= 8  # the learning teacher's 8 envs each crossed an episode end
    teacher, student = summary["teacher"], summary["student"]
    assert teacher["env_steps"] == 400 and teacher["final_eval"][0]["episodes"] == 2
    assert student["updates"] == 20 and np.isfinite(student["tasks"][0]["student_score"])
    with (tmp_path / "run" / "online.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["teacher_env_steps"]) for r in rows] == [200, 400]
    assert all(np.isfinite(float(r["student_score"])) for r in rows)
    state = load_checkpoint(tmp_path / "run" / "student-run" / "state")
    teacher_dir = str(tmp_path / "run" / "teacher-run" / "teacher")
    student_memory = build_tasks(DistillConfig(teacher=teacher_dir, memory_size=cfg.memory_size))[0].memory
    student_memory.load_bytes(state.blobs["memory_0"])
    assert isinstance(student_memory, FrameStackMemory) and len(student_memory) == cfg.memory_size
