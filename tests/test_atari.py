"""Smoke test of the Atari path: ale-py vector env, Nature-DQN teacher, distillation, checkpoints."""

import numpy as np
import torch

from poldist.checkpoints import load_model, save_model
from poldist.distillation import DistillConfig, TeacherControl, build_tasks, collect, distill
from poldist.envs import make_env_spec, make_vector_env
from poldist.memory import FrameStackMemory, ReplayMemory
from poldist.networks import QNetwork, count_parameters, nature_dqn
from poldist.teachers import load_teacher


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
