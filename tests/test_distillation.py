"""The distillation loop: the update step, a real distillation that reaches its teacher, resume."""

import json

import numpy as np
import pytest
import torch

from poldist.checkpoints import load_checkpoint, load_model
from poldist.collection import TeacherControl
from poldist.distillation import DistillConfig, distill, distill_step
from poldist.losses import make_loss
from poldist.networks import QNetwork, minatar_dqn


def test_distill_step_moves_student_towards_teacher():
    torch.manual_seed(0)
    student = QNetwork(minatar_dqn(4, 3))
    opt = torch.optim.Adam(student.parameters(), lr=1e-3)
    obs = torch.randint(0, 2, (64, 4, 10, 10), dtype=torch.uint8)
    teacher_out = torch.randn(64, 3)
    loss_fn = make_loss("kl", tau=0.01)
    first = distill_step(student, opt, loss_fn, obs, teacher_out)
    for _ in range(200):
        last = distill_step(student, opt, loss_fn, obs, teacher_out)
    assert last < 0.1 * first


def test_teacher_control_is_epsilon_greedy_on_teacher_outputs():
    rng = np.random.default_rng(0)
    out = torch.tensor([[0.0, 1.0, 0.5]] * 1000)
    greedy = TeacherControl(epsilon=0.0).act(None, out, None, 0, rng)
    assert (greedy == 1).all()
    noisy = TeacherControl(epsilon=0.5).act(None, out, None, 0, rng)
    assert 0.55 < (noisy == 1).mean() < 0.78  # 0.5 + 0.5/3 expected


def _small_cfg(**kw):
    base = dict(
        teacher="minatar/breakout",
        student="net1",
        updates=12_000,
        batch_size=64,
        transitions_per_update=5.0,
        learning_starts=5_000,
        memory_size=60_000,
        optimizer="adam",
        lr=1e-3,
        eval_interval=3_000,
        eval_episodes=4,
        final_eval_episodes=10,
        checkpoint_interval=3_000,
        agreement_states=3_000,
        evaluate_teacher=False,
    )
    base.update(kw)
    return DistillConfig(**base)


@pytest.mark.slow
def test_distilled_student_agrees_with_teacher_on_held_out_states(tmp_path):
    """End to end on real MinAtar Breakout with the shipped teacher: >= 90% greedy agreement."""
    summary = distill(_small_cfg(), tmp_path / "run")
    task = summary["tasks"][0]
    assert task["agreement"] >= 0.90, task
    assert summary["student_params"] < 0.3 * summary["teacher_params"]
    student, meta = load_model(tmp_path / "run" / "student")
    assert meta["output_kind"] == "logits"
    saved = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert saved["tasks"][0]["agreement"] == task["agreement"]
    # results for one seed differ between CPUs: the summary says which machine made it
    assert saved["machine"]["cpu_model"] and saved["machine"]["torch_version"] == torch.__version__


def test_resume_continues_counters_and_memory(tmp_path):
    cfg = _small_cfg(
        updates=400,
        learning_starts=500,
        memory_size=5_000,
        eval_interval=200,
        checkpoint_interval=200,
        agreement_states=200,
        final_eval_episodes=2,
        eval_episodes=2,
    )
    distill(cfg, tmp_path / "run")
    first = load_checkpoint(tmp_path / "run" / "state")
    assert first.metadata["counters"]["updates"] == 400
    cpu_first = first.metadata["counters"]["cpu_seconds"]
    assert cpu_first > 0
    added_before = int(np.load(__import__("io").BytesIO(first.blobs["memory_0"]))["counters"][3])

    cfg.updates = 600
    summary = distill(cfg, tmp_path / "run", resume=True)
    second = load_checkpoint(tmp_path / "run" / "state")
    assert second.metadata["counters"]["updates"] == 600 == summary["updates"]
    # CPU time carries across the resume (it does not count the pause between the two processes)
    assert summary["train_cpu_seconds"] > second.metadata["counters"]["cpu_seconds"] - 1e-9 > cpu_first
    added_after = int(np.load(__import__("io").BytesIO(second.blobs["memory_0"]))["counters"][3])
    # the memory continued: 200 more updates at 5 transitions each were collected on top
    assert added_after >= added_before + 200 * 5
    rows = (tmp_path / "run" / "evals.csv").read_text().strip().splitlines()
    steps = [int(float(r.split(",")[0])) for r in rows[1:]]
    assert steps == sorted(steps) and steps[-1] == 600 and len(steps) == len(set(steps))


@pytest.mark.parametrize("kind, tau", [("q", 0.01), ("logits", 1.0)])
def test_kl_temperature_defaults_to_the_teachers_output_kind(tmp_path, kind, tau):
    from poldist.distillation import Distiller
    from poldist.envs import make_env_spec
    from poldist.teachers import NetworkTeacher

    spec = make_env_spec("MinAtar/Breakout-v1")
    teacher = NetworkTeacher(QNetwork(minatar_dqn(4, 3)), spec, kind)
    cfg = DistillConfig(teacher="", student="net3", eval_episodes=1, num_envs=1)
    distiller = Distiller(cfg, tmp_path / "run", teachers=[teacher])
    assert distiller.loss_fn.keywords["tau"] == tau
    cfg_explicit = DistillConfig(teacher="", student="net3", eval_episodes=1, num_envs=1, tau=0.1)
    explicit = Distiller(cfg_explicit, tmp_path / "run2", teachers=[teacher])
    assert explicit.loss_fn.keywords["tau"] == 0.1


def test_distiller_evaluates_the_untrained_student_at_its_first_run(tmp_path) -> None:
    """Constructing a Distiller does no work; the learning curve still starts at update 0."""
    from poldist.distillation import Distiller
    from poldist.runs import EvalLog

    cfg = DistillConfig(
        student="net3", updates=20, learning_starts=100, memory_size=500, eval_interval=20, eval_episodes=1
    )
    with Distiller(cfg, tmp_path / "run") as distiller:
        assert EvalLog.read(tmp_path / "run" / "evals.csv") == []
        distiller.run(10, show_progress=False)
        distiller.run(show_progress=False)
    assert [r["updates"] for r in EvalLog.read(tmp_path / "run" / "evals.csv")] == [0, 20]


def test_lr_factor_schedules() -> None:
    from poldist.distillation import lr_factor

    assert [lr_factor("constant", p) for p in (0, 0.5, 1)] == [1, 1, 1]
    assert [lr_factor("linear", p) for p in (0, 0.25, 1, 2)] == [1, 0.75, 0, 0]
    assert lr_factor("cosine", 0) == 1 and abs(lr_factor("cosine", 0.5) - 0.5) < 1e-12
    assert abs(lr_factor("cosine", 1)) < 1e-12


def test_agreement_by_gap_by_hand() -> None:
    from poldist.distillation import agreement_by_gap, median_top2_gap

    teacher = np.array(
        [
            [1.0, 1.005, 0.0],  # gap 0.005 (bin 0): student picks 0, teacher 1: regret 0.005
            [2.0, 0.0, 1.98],  # gap 0.02 (bin 1): agree
            [0.0, 0.5, 0.0],  # gap 0.5 (bin 4): student picks 2: regret 0.5
            [0.0, 0.0, 0.2],  # gap 0.2 (bin 3): agree
        ]
    )
    out = agreement_by_gap(np.array([0, 0, 2, 2]), teacher)
    assert out["agreement"] == 0.5
    assert abs(out["regret"] - (0.005 + 0.5) / 4) < 1e-12
    assert out["gap_shares"] == [0.25, 0.25, 0.0, 0.25, 0.25]
    assert out["agreement_by_gap"] == [0.0, 1.0, None, 1.0, 0.0]
    assert abs(median_top2_gap(teacher) - (0.02 + 0.2) / 2) < 1e-12


def test_tau_gap_and_lr_schedule_in_a_run(tmp_path) -> None:
    from dataclasses import replace

    from poldist.distillation import Distiller, median_top2_gap

    cfg = DistillConfig(
        teacher="minatar/breakout",
        student="net3",
        tau_gap=2.0,
        lr_schedule="linear",
        updates=40,
        learning_starts=200,
        memory_size=2000,
        batch_size=16,
        eval_interval=40,
        eval_episodes=1,
        final_eval_episodes=2,
        checkpoint_interval=20,
        agreement_states=50,
    )
    distiller = Distiller(cfg, tmp_path / "run")
    distiller.run(1, show_progress=False)
    first_rows = distiller.tasks[0].memory.all_rows()["teacher_out"]  # all there at the first update
    assert distiller.task_taus[0] == pytest.approx(2.0 * median_top2_gap(first_rows), rel=1e-6)
    assert distiller.task_loss(0).keywords["tau"] == distiller.task_taus[0]
    distiller.run(show_progress=False)
    assert distiller.optimizer.param_groups[0]["lr"] == pytest.approx(cfg.lr / cfg.updates)  # last step
    summary = distiller.finish()
    task = summary["tasks"][0]
    assert task["tau"] == distiller.task_taus[0]
    # the config as given (tau 0) and, beside it, the temperature tau_gap set
    assert summary["config"]["tau"] == 0.0
    assert summary["resolved"] == {"tau": None, "task_taus": distiller.task_taus, "tau_from": "tau_gap"}
    assert len(task["student_returns"]) == 2 and "agreement_by_gap" in task
    # a resumed run keeps the measured temperature (from the checkpoint), not a new measurement
    resumed = Distiller(replace(cfg, updates=60), tmp_path / "run", resume=True)
    assert resumed.task_taus == distiller.task_taus


class _CallableTeacher:
    """A teacher that is not a NetworkTeacher: only what the Teacher protocol asks for."""

    def __init__(self, net: QNetwork, env) -> None:
        self._net, self.env, self.output_kind, self.name = net, env, "q", "a plain callable"
        self.n_actions, self.default_tau, self.version = net.arch.n_actions[0], 0.01, 0
        self.device = torch.device("cpu")
        self.calls = 0

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self._net.parameters())

    @torch.no_grad()
    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self._net(obs)


def test_any_teacher_of_the_protocol_is_distilled_given_the_students_base_architecture(tmp_path) -> None:
    from poldist.distillation import Distiller
    from poldist.errors import PoldistError
    from poldist.teachers import load_teacher

    shipped = load_teacher("minatar/breakout")
    teacher = _CallableTeacher(shipped.net, shipped.env)
    cfg = DistillConfig(
        teacher="",
        student="net3",
        updates=20,
        learning_starts=100,
        memory_size=500,
        eval_interval=10**6,
        eval_episodes=1,
        final_eval_episodes=1,
        evaluate_teacher=False,
        agreement_states=50,
    )
    with pytest.raises(PoldistError, match="not a network"):  # no architecture to scale the student from
        Distiller(cfg, tmp_path / "refused", teachers=[teacher])
    assert not (tmp_path / "refused").exists()
    summary = distill(cfg, tmp_path / "run", teachers=[teacher], teacher_arch=shipped.net.arch)
    assert summary["updates"] == 20 and teacher.calls > 0
    assert summary["teacher_params"] == shipped.num_parameters()
    assert summary["tasks"][0]["teacher"] == "a plain callable"


def test_overlapped_collection_owes_the_same_transitions_and_is_reproducible(tmp_path) -> None:
    """overlap_collection: the worker collects each update's transitions while the previous update
    runs; every task gets what the plain loop collects, and a seed still fixes the run."""
    from dataclasses import replace

    from poldist.distillation import Distiller

    cfg = _small_cfg(
        teacher="minatar/breakout,minatar/asterix",  # short episodes (Freeway's last 2,500 steps)
        student="net3",
        control="student",
        eval_episodes=1,
        updates=60,
        learning_starts=200,
        transitions_per_update=7.0,
        memory_size=2_000,
        batch_size=16,
        eval_interval=1_000,
        checkpoint_interval=1_000,
        num_envs=4,
    )

    def run(config, name):
        with Distiller(config, tmp_path / name) as d:
            d.run(show_progress=False)
            return [t.memory.added for t in d.tasks], [t.updates for t in d.tasks], d.student.state_dict()

    plain = run(cfg, "plain")
    overlap = run(replace(cfg, overlap_collection=True), "overlap")
    again = run(replace(cfg, overlap_collection=True), "again")
    # 30 updates a game: 200 + 30 * 7 = 410 transitions owed, collected in vector steps of 4
    assert overlap[:2] == plain[:2] == ([412, 412], [30, 30])
    assert all(torch.equal(overlap[2][k], again[2][k]) for k in overlap[2])
    assert not all(torch.equal(overlap[2][k], plain[2][k]) for k in plain[2])  # its own draws


def test_overlapped_collection_needs_the_local_backend() -> None:
    from poldist.errors import PoldistError

    with pytest.raises(PoldistError, match="overlap_collection needs backend local"):
        _small_cfg(overlap_collection=True, backend="ray").validate()


def test_cpu_clock_is_unknown_after_resuming_a_checkpoint_that_lacks_it(tmp_path):
    from poldist.checkpoints import save_checkpoint
    from poldist.runs import RunBook

    book = RunBook(tmp_path / "run", resume=False, seed=0, torch_threads=1)
    net = QNetwork(minatar_dqn(4, 3))
    opt = torch.optim.RMSprop(net.parameters())
    book.save_state("distill", {"x": 1}, {"student": net}, opt, {"updates": 3}, {})
    assert book.cpu() is not None and book.cpu() >= 0
    old = load_checkpoint(tmp_path / "run" / "state")
    counters = {k: v for k, v in old.metadata["counters"].items() if k != "cpu_seconds"}
    meta = {**old.metadata, "counters": counters}
    save_checkpoint(tmp_path / "run" / "state", old.tensors, meta, old.blobs)

    again = RunBook(tmp_path / "run", resume=True, seed=0, torch_threads=1)
    again.restore()
    assert again.cpu() is None and again.wall() >= counters["wall_seconds"]
