"""Teacher training: the Double-DQN loss by hand, and a short real run with resume."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from poldist.checkpoints import load_checkpoint
from poldist.collection import TeacherControl, collect
from poldist.distillation import DistillConfig, build_tasks
from poldist.dqn import (
    DQNConfig,
    DQNTrainer,
    double_dqn_loss,
    kickstart_loss_name,
    kickstart_weight,
    linear_epsilon,
    train_dqn,
)
from poldist.errors import PoldistError
from poldist.runs import EvalLog
from poldist.teachers import load_teacher


def test_double_dqn_loss_by_hand():
    online_q = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 1.0], [0.0, 2.0]])
    target_q = torch.tensor([[0.0, 0.0], [0.0, 0.0], [10.0, 20.0], [30.0, 40.0]])
    # observation i is the row index, so each fake network is a table lookup
    online = lambda x: online_q[x[:, 0].long()]  # noqa: E731
    target = lambda x: target_q[x[:, 0].long()]  # noqa: E731
    batch = {
        "obs": torch.tensor([[0.0], [1.0]]),
        "next_obs": torch.tensor([[2.0], [3.0]]),
        "action": torch.tensor([1, 0]),
        "reward": torch.tensor([1.0, 0.0]),
        "done": torch.tensor([0.0, 1.0]),
    }
    # q(s,a) = [2, 3]; online picks next actions [0, 1]; target values them [10, 40]
    # y = [1 + 0.5 * 10, 0 (terminal)] = [6, 0]; errors [-4, 3]; Huber [3.5, 2.5]; mean 3.0
    loss = double_dqn_loss(online, target, batch, gamma=0.5)
    assert loss.item() == pytest.approx(3.0)


def test_linear_epsilon_schedule():
    cfg = DQNConfig(total_steps=1000, eps_start=1.0, eps_end=0.1, eps_fraction=0.5)
    assert linear_epsilon(0, cfg) == pytest.approx(1.0)
    assert linear_epsilon(250, cfg) == pytest.approx(0.55)
    assert linear_epsilon(500, cfg) == pytest.approx(0.1)
    assert linear_epsilon(900, cfg) == pytest.approx(0.1)


def test_train_dqn_short_run_and_resume(tmp_path):
    cfg = DQNConfig(
        total_steps=4_000,
        learning_starts=1_000,
        buffer_size=5_000,
        eval_interval=2_000,
        eval_episodes=2,
        checkpoint_interval=2_000,
        target_update=50,
    )
    summary = train_dqn(cfg, tmp_path / "run")
    assert summary["env_steps"] == 4_000
    assert summary["machine"]["cpu_count"] >= 1
    assert summary["updates"] == pytest.approx((4_000 - 1_000) * cfg.updates_per_step, abs=2)
    teacher = load_teacher(tmp_path / "run" / "teacher")
    assert teacher.output_kind == "q" and teacher.n_actions == 3

    cfg.total_steps = 6_000
    summary = train_dqn(cfg, tmp_path / "run", resume=True)
    assert summary["env_steps"] == 6_000
    state = load_checkpoint(tmp_path / "run" / "state")
    assert state.metadata["counters"]["step"] == 6_000
    assert summary["updates"] == pytest.approx((6_000 - 1_000) * cfg.updates_per_step, abs=2)


def test_evaluations_draw_fresh_env_seeds_unless_fixed(tmp_path, monkeypatch):
    """Fixed evaluation seeds replay the same starting conditions, so a run ended on its best
    reading keeps that sample's luck: by default each evaluation gets new seeds, none of them
    reserved for reference scores; ``fixed`` keeps the old ``seed + 10**6``. Training does not
    depend on the scheme (the shipped teachers' weights stay reproducible)."""
    import poldist.dqn as dqn
    from poldist.envs import REFERENCE_SEED

    seeds = []
    real = dqn.evaluate
    monkeypatch.setattr(dqn, "evaluate", lambda *a, seed, **k: seeds.append(seed) or real(*a, seed=seed, **k))
    weights = {}
    for scheme in ("fresh", "fixed"):
        seeds.clear()
        cfg = DQNConfig(
            total_steps=1_200,
            learning_starts=400,
            buffer_size=1_200,
            eval_interval=400,
            eval_episodes=1,
            checkpoint_interval=1_200,
            target_update=50,
            seed=3,
            eval_seeds=scheme,
        )
        with DQNTrainer(cfg, tmp_path / scheme, show_progress=False) as trainer:
            trainer.run(cfg.total_steps)
            assert trainer.eval_seed() == seeds[-1]  # what --capture-video replays: the final evaluation
            weights[scheme] = {k: v.clone() for k, v in trainer.online.state_dict().items()}
        assert len(seeds) == 3
        if scheme == "fixed":
            assert seeds == [3 + 10**6] * 3
        else:
            assert len(set(seeds)) == 3 and all(0 <= s < REFERENCE_SEED - 2**16 for s in seeds)
    assert all(torch.equal(weights["fresh"][k], weights["fixed"][k]) for k in weights["fixed"])


def test_dqn_trainer_run_in_steps_is_train_dqn_in_one_call(tmp_path):
    """run(until) in chunks gives the very network of one call; a checkpoint due at a step is
    written when training leaves that step, so work done between two run() calls precedes it."""
    cfg = DQNConfig(
        total_steps=3_000,
        learning_starts=500,
        buffer_size=3_000,
        eval_interval=1_000,
        eval_episodes=1,
        checkpoint_interval=1_000,
        target_update=50,
    )
    whole = train_dqn(cfg, tmp_path / "whole")
    with DQNTrainer(cfg, tmp_path / "steps", show_progress=False) as trainer:
        assert trainer.next_eval == 1_000
        results = trainer.run(trainer.next_eval)
        assert trainer.step == 1_000 and len(results) == 1  # evaluated at the step it stopped at
        assert not (tmp_path / "steps" / "state").exists()  # its checkpoint: once training moves on
        assert trainer.run(1_500) is None  # no evaluation falls due at 1,504
        assert load_checkpoint(tmp_path / "steps" / "state").metadata["counters"]["step"] == 1_000
        trainer.run(10**9)  # capped at total_steps
        summary = trainer.finish()
    assert summary["env_steps"] == whole["env_steps"] == 3_000 and summary["updates"] == whole["updates"]
    assert not summary["stopped_early"]
    steps_rows, whole_rows = (EvalLog.read(tmp_path / r / "evals.csv") for r in ("steps", "whole"))
    assert [(r["step"], r["score"]) for r in steps_rows] == [(r["step"], r["score"]) for r in whole_rows]
    a, b = (load_teacher(tmp_path / r / "teacher").net.state_dict() for r in ("steps", "whole"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_multi_task_dqn_baseline_has_one_head_and_memory_per_game(tmp_path):
    cfg = DQNConfig(
        env_id="MinAtar/Breakout-v1,MinAtar/Seaquest-v1",
        total_steps=4_000,
        learning_starts=1_000,
        buffer_size=3_000,
        eval_interval=4_000,
        eval_episodes=1,
        checkpoint_interval=4_000,
        head_hidden=16,
    )
    summary = train_dqn(cfg, tmp_path / "run")
    assert summary["env_steps"] == 4_000  # both games together
    assert [int(r["task"]) for r in summary["final_eval"]] == [0, 1]
    state = load_checkpoint(tmp_path / "run" / "state")
    assert set(state.blobs) == {"memory_0", "memory_1"}
    seaquest = load_teacher(tmp_path / "run" / "teacher", task=1)
    assert seaquest.env.env_id == "MinAtar/Seaquest-v1" and seaquest.n_actions == 6
    assert seaquest.net.arch.obs_shape == (10, 10, 10) and seaquest.net.arch.head_hidden == 16
    obs = torch.zeros(2, 4, 10, 10, dtype=torch.uint8)  # Breakout frames are zero-padded
    assert load_teacher(tmp_path / "run" / "teacher", task=0)(obs).shape == (2, 3)


def test_student_sized_dqn_stops_where_its_caller_says_so(tmp_path):
    """DQN from scratch on a student network (the time-to-score benchmark's baseline), stepped
    evaluation by evaluation and stopped by its caller."""
    seen = []
    cfg = DQNConfig(
        network="net2",
        total_steps=10_000,
        learning_starts=500,
        buffer_size=3_000,
        eval_interval=1_000,
        eval_episodes=1,
        checkpoint_interval=5_000,
    )
    with DQNTrainer(cfg, tmp_path / "run", show_progress=False) as trainer:
        while trainer.step < cfg.total_steps:
            results = trainer.run(trainer.next_eval)
            if results is not None:
                seen.append(trainer.step)
                if trainer.step >= 2_000:  # stop at the second evaluation
                    break
        summary = trainer.finish()
    assert seen == [1_000, 2_000] and summary["env_steps"] == 2_000 and summary["stopped_early"]
    assert load_checkpoint(tmp_path / "run" / "state").metadata["counters"]["step"] == 2_000
    net = load_teacher(tmp_path / "run" / "teacher").net
    assert net.arch.convs[0][0] == 8 and net.arch.hidden == 18  # MinAtar net2 widths


def test_kickstart_weight_falls_linearly_to_zero():
    cfg = DQNConfig(total_steps=1_000, kickstart_teacher="minatar/breakout", kickstart_weight=2.0)
    assert [kickstart_weight(s, cfg) for s in (0, 250, 500, 900)] == pytest.approx([2.0, 1.0, 0.0, 0.0])
    assert kickstart_weight(0, DQNConfig()) == 0.0  # no teacher, no distillation term


def test_kickstarted_dqn_picks_up_the_teachers_policy(tmp_path):
    """Kickstarting: 8k env steps of DQN plus a decaying KL term towards the shipped teacher
    already give the teacher's greedy action on most of the teacher's own states. (An MSE term,
    the default for Q-value teachers, matches values first: 46% agreement at this budget.)"""
    cfg = DQNConfig(
        kickstart_loss="kl",
        network="net1",
        total_steps=8_000,
        learning_starts=1_000,
        buffer_size=10_000,
        updates_per_step=0.25,
        eval_interval=8_000,
        eval_episodes=2,
        checkpoint_interval=8_000,
        kickstart_teacher="minatar/breakout",
        lr=1e-3,
        kickstart_weight=3.0,
        kickstart_decay=2.0,  # still 1.5 at the end: this checks the distillation term works
    )
    train_dqn(cfg, tmp_path / "run")
    task = build_tasks(DistillConfig(teacher="minatar/breakout", memory_size=2_000))[0]
    task.start(8, seed=5)
    collect(task, TeacherControl(0.05), None, 2_000, np.random.default_rng(0))
    rows = task.memory.all_rows()
    net = load_teacher(tmp_path / "run" / "teacher").net
    with torch.no_grad():
        student_act = net(torch.as_tensor(rows["obs"])).argmax(1)
    agree = (student_act == torch.as_tensor(rows["teacher_out"]).argmax(1)).float().mean().item()
    assert agree >= 0.6, agree  # chance: 1/3


def test_kickstart_loss_auto_fits_the_teachers_outputs():
    q_teacher = load_teacher("minatar/breakout")
    logits_teacher = replace(q_teacher, output_kind="logits")
    assert kickstart_loss_name(DQNConfig(), q_teacher) == "mse"
    assert kickstart_loss_name(DQNConfig(), logits_teacher) == "kl"  # at tau 1, its default
    assert kickstart_loss_name(DQNConfig(kickstart_loss="nll"), q_teacher) == "nll"


def test_kickstart_teacher_count_must_match_the_games(tmp_path):
    cfg = DQNConfig(env_id="MinAtar/Breakout-v1", kickstart_teacher="minatar/breakout,minatar/asterix")
    with pytest.raises(PoldistError, match="2 teacher"):
        train_dqn(cfg, tmp_path / "run")


def test_a_lent_teacher_is_the_live_network_and_its_version_follows_the_updates(tmp_path):
    """DQNTrainer.as_teacher: no copy, and a version that changes with every optimizer step (what the
    Ray backend reads to know when to send new weights), and only then."""
    cfg = DQNConfig(
        total_steps=800, learning_starts=400, buffer_size=1_000, eval_interval=800, eval_episodes=1
    )
    with DQNTrainer(cfg, tmp_path / "run", show_progress=False) as trainer:
        teacher = trainer.as_teacher()
        assert teacher.net is trainer.online and teacher.output_kind == "q" and teacher.version == 0
        trainer.run(200)  # no update before learning_starts: the weights and the version stay
        assert trainer.updates == 0 and teacher.version == 0
        trainer.run(800)
        assert trainer.updates > 0 and teacher.version == trainer.updates


@pytest.mark.parametrize("max_norm", [1e-3, 0.5, 1e3])
def test_clip_grad_norm_is_torchs_bit_for_bit(max_norm):
    from poldist.dqn import clip_grad_norm

    nets = []
    for _ in range(2):
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.ReLU(), torch.nn.Linear(7, 3))
        net(torch.randn(4, 5, generator=torch.Generator().manual_seed(1))).square().sum().backward()
        nets.append(net)
    ours = clip_grad_norm(list(nets[0].parameters()), max_norm)
    theirs = torch.nn.utils.clip_grad_norm_(nets[1].parameters(), max_norm, foreach=True)
    assert torch.equal(ours, theirs)
    assert all(torch.equal(a.grad, b.grad) for a, b in zip(nets[0].parameters(), nets[1].parameters()))
