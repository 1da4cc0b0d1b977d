"""Multi-task distillation plumbing: one head per task, channel padding, task schedule."""

import pytest
import torch

from poldist.checkpoints import load_model, save_model
from poldist.distillation import DistillConfig, base_architecture, build_tasks, distill, make_student
from poldist.envs import make_env_spec
from poldist.errors import PoldistError
from poldist.networks import QNetwork, count_parameters, minatar_dqn


def _random_teacher(path, env_id):
    spec = make_env_spec(env_id)
    net = QNetwork(minatar_dqn(spec.obs_shape[0], spec.n_actions))
    return save_model(path, net, spec)


def test_channel_padding_equals_explicit_zero_channels():
    torch.manual_seed(0)
    net = QNetwork(minatar_dqn(10, 6))
    obs4 = torch.randint(0, 2, (5, 4, 10, 10), dtype=torch.uint8)
    padded = torch.cat([obs4, torch.zeros(5, 6, 10, 10, dtype=torch.uint8)], dim=1)
    assert torch.equal(net(obs4), net(padded))


def test_multi_task_student_has_one_head_per_game_and_padded_input(tmp_path):
    a = _random_teacher(tmp_path / "breakout", "MinAtar/Breakout-v1")
    b = _random_teacher(tmp_path / "seaquest", "MinAtar/Seaquest-v1")
    cfg = DistillConfig(teacher=f"{a},{b}", student="teacher")
    tasks = build_tasks(cfg)
    student = make_student(cfg, tasks, base_architecture(tasks))
    assert student.arch.obs_shape == (10, 10, 10)  # Seaquest has the most channels
    assert student.arch.n_actions == (3, 6)
    assert student(torch.zeros(2, 4, 10, 10), 0).shape == (2, 3)
    assert student(torch.zeros(2, 10, 10, 10), 1).shape == (2, 6)
    # the paper's 3-game layout: a 128-unit hidden layer per game on the shared trunk
    wide_cfg = DistillConfig(teacher=f"{a},{b}", student="teacher", head_hidden=128)
    wide = make_student(wide_cfg, tasks, base_architecture(tasks))
    assert count_parameters(wide) - count_parameters(student) == 2 * (128 * 128 + 128)  # one per game
    assert wide(torch.zeros(2, 10, 10, 10), 1).shape == (2, 6)


def test_env_id_with_several_teachers_is_refused(tmp_path):
    a = _random_teacher(tmp_path / "a", "MinAtar/Breakout-v1")
    with pytest.raises(PoldistError, match="several teachers"):
        build_tasks(DistillConfig(teacher=f"{a},{a}", env_id="MinAtar/Breakout-v1"))


@pytest.mark.parametrize("schedule", ["round_robin", "random"])
def test_tiny_multi_task_run_trains_every_head(tmp_path, schedule):
    a = _random_teacher(tmp_path / "breakout", "MinAtar/Breakout-v1")
    b = _random_teacher(tmp_path / "freeway", "MinAtar/Freeway-v1")
    cfg = DistillConfig(
        teacher=f"{a},{b}",
        student="net1",
        task_schedule=schedule,
        updates=60,
        learning_starts=200,
        memory_size=2_000,
        eval_interval=60,
        eval_episodes=1,
        final_eval_episodes=1,
        checkpoint_interval=60,
        agreement_states=100,
    )
    summary = distill(cfg, tmp_path / "run")
    assert [t["env_id"] for t in summary["tasks"]] == ["MinAtar/Breakout-v1", "MinAtar/Freeway-v1"]
    assert all(t["transitions"] >= 200 for t in summary["tasks"])
    student, meta = load_model(tmp_path / "run" / "student")
    assert len(meta["envs"]) == 2 and student.arch.n_actions == (3, 3)


def test_all_names_every_shipped_teacher_of_a_domain():
    from poldist.teachers import expand_teacher_names, zoo_names

    names = expand_teacher_names("minatar/all")
    assert names == [n for n in zoo_names() if n.startswith("minatar/")]
    assert "minatar/breakout" in names
    assert expand_teacher_names("a, b,") == ["a", "b"]
    with pytest.raises(PoldistError, match="no shipped teachers"):
        expand_teacher_names("nowhere/all")


def test_paper_multitask_network_parameter_counts():
    from poldist.networks import count_parameters, paper_multitask_atari

    # the paper's totals hold for any action counts adding up to 12 (3 games) and 85 (10 games)
    three = QNetwork(paper_multitask_atari((3, 4, 5)))
    assert count_parameters(three) == 1_882_668
    ten = QNetwork(paper_multitask_atari((9, 4, 9, 3, 9, 6, 6, 15, 18, 6), large=True))
    assert count_parameters(ten) == 6_756_721
    obs = torch.zeros(2, 4, 84, 84, dtype=torch.uint8)
    assert [three(obs, t).shape[1] for t in range(3)] == [3, 4, 5]


def test_multi_task_student_reaches_two_real_teachers_on_held_out_states(tmp_path, fast_distill_config):
    """One student, two shipped teachers: it picks each teacher's action on fresh states.

    Agreement is measured by ``Distiller.finish`` on 2,000 states of new teacher play that
    were never in the replay memory; both games have 3 actions, so chance is about 1/3.
    """
    cfg = fast_distill_config(
        teacher="minatar/breakout,minatar/freeway", student="teacher", updates=4_000, memory_size=20_000
    )
    summary = distill(cfg, tmp_path / "run")
    agreement = {t["env_id"]: t["agreement"] for t in summary["tasks"]}
    assert agreement["MinAtar/Breakout-v1"] >= 0.75, agreement
    assert agreement["MinAtar/Freeway-v1"] >= 0.75, agreement
