"""Teacher labelling (issue 22): the fast paths of collect() give the labels and data of the plain one."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from poldist import fast_teacher
from poldist.collection import (
    DistillTask,
    LocalCollector,
    MixedControl,
    StudentControl,
    TeacherControl,
    _check_finite,
    collect,
    host_epsilon_greedy,
)
from poldist.config import DistillConfig
from poldist.envs import make_env_spec, make_vector_env
from poldist.errors import PoldistError
from poldist.evaluation import epsilon_greedy
from poldist.fast_teacher import (
    LABEL_TOLERANCE,
    OnnxLabeller,
    TorchLabeller,
    auto_threads,
    forward_macs,
    make_labeller,
)
from poldist.memory import FrameStackMemory, ReplayMemory
from poldist.networks import QNetwork, nature_dqn, to_device
from poldist.teachers import NetworkTeacher, load_teacher

ONNX = pytest.mark.skipif(
    importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("onnx") is None,
    reason="needs onnx and onnxruntime",
)
ATARI = pytest.mark.skipif(importlib.util.find_spec("ale_py") is None, reason="needs ale-py")


def _reference_collect(task: DistillTask, controller, student, n: int, rng: np.random.Generator) -> None:
    """collect() as it was before issue 22: ``teacher(obs)`` under no_grad, torch epsilon-greedy."""
    done = 0
    while done < n:
        obs_t = to_device(task.obs, task.teacher.device)
        out = task.teacher(obs_t)
        if isinstance(controller, TeacherControl):
            actions = epsilon_greedy(out, controller.epsilon, rng)
        else:
            actions = controller.act(obs_t, out, student, task.index, rng)
        task.memory.add(obs=task.obs, teacher_out=out.cpu().numpy())
        task.obs, *_ = task.env.step(actions)
        done += len(actions)


def _task(teacher, memory, seed: int, n_envs: int = 4) -> DistillTask:
    task = DistillTask(teacher, teacher.env, memory)
    task.start(n_envs, seed)
    return task


def _minatar_memory(teacher, size: int = 2_000) -> ReplayMemory:
    fields = {"obs": (teacher.env.obs_shape, np.uint8), "teacher_out": ((teacher.n_actions,), np.float32)}
    return ReplayMemory(size, fields)


@pytest.mark.parametrize("control", ["teacher", "student", "mixed"])
def test_collect_stores_what_the_plain_loop_stores_bit_for_bit(control: str) -> None:
    teacher = load_teacher("minatar/breakout")
    student = QNetwork(teacher.net.arch)
    controller = {"teacher": TeacherControl(0.3), "student": StudentControl(0.3), "mixed": MixedControl(0.3)}[
        control
    ]
    a = _task(teacher, _minatar_memory(teacher), seed=5)
    b = _task(teacher, _minatar_memory(teacher), seed=5)
    ra, rb = np.random.default_rng(1), np.random.default_rng(1)
    for _ in range(3):
        collect(a, controller, student, 200, ra)
        _reference_collect(b, controller, student, 200, rb)
    for k in a.memory.data:
        assert np.array_equal(a.memory.data[k], b.memory.data[k]), k
    assert np.array_equal(a.obs, b.obs)
    assert ra.random() == rb.random()  # the same draws, in the same order
    a.env.close()
    b.env.close()


class _HostLabeller:
    """A labeller that is not torch's (as onnxruntime's): host arrays in and out, torch's numbers."""

    kind = "host"

    def __init__(self, teacher: NetworkTeacher):
        self.teacher, self._torch = teacher, TorchLabeller(teacher)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        return self._torch(obs)


@pytest.mark.parametrize("memory_size", [2_000, 150])  # 150: the memory wraps mid vector step
def test_collect_with_a_host_labeller_stores_what_the_plain_loop_stores(memory_size: int) -> None:
    teacher = load_teacher("minatar/breakout")
    student = QNetwork(teacher.net.arch)
    a = _task(teacher, _minatar_memory(teacher, memory_size), seed=5)
    b = _task(teacher, _minatar_memory(teacher, memory_size), seed=5)
    ra, rb = np.random.default_rng(1), np.random.default_rng(1)
    for _ in range(3):
        collect(a, TeacherControl(0.3), student, 202, ra, labeller=_HostLabeller(teacher))
        _reference_collect(b, TeacherControl(0.3), student, 202, rb)
    for k in a.memory.data:
        assert np.array_equal(a.memory.data[k], b.memory.data[k]), k
    assert (a.memory.next, a.memory.size, a.memory.added) == (b.memory.next, b.memory.size, b.memory.added)
    assert np.array_equal(a.obs, b.obs)
    assert ra.random() == rb.random()
    a.env.close()
    b.env.close()


def test_host_epsilon_greedy_is_torch_epsilon_greedy() -> None:
    out = np.random.default_rng(0).normal(size=(64, 5)).astype(np.float32)
    out[:8] = 1.0  # ties: the first maximum
    for eps in (0.0, 0.05, 0.5, 1.0):
        ra, rb = np.random.default_rng(2), np.random.default_rng(2)
        got = host_epsilon_greedy(out, eps, ra)
        assert got.dtype == np.int64
        assert np.array_equal(got, epsilon_greedy(torch.from_numpy(out), eps, rb))
        assert ra.random() == rb.random()


def test_torch_labeller_is_bit_identical_to_the_teacher() -> None:
    teacher = load_teacher("minatar/breakout")
    obs = np.random.default_rng(0).integers(0, 2, (9, *teacher.env.obs_shape), dtype=np.uint8)
    want = teacher(torch.from_numpy(obs)).numpy()
    assert np.array_equal(TorchLabeller(teacher)(obs), want)
    spec = make_env_spec("ALE/Breakout-v5")
    torch.manual_seed(0)
    atari = NetworkTeacher(QNetwork(nature_dqn(spec.n_actions, 4)), spec)
    frames = np.random.default_rng(1).integers(0, 256, (3, 4, 84, 84), dtype=np.uint8)
    assert np.array_equal(TorchLabeller(atari)(frames), atari(torch.from_numpy(frames)).numpy())


def test_a_protocol_teacher_is_called_as_it_is() -> None:
    class Doubled:
        def __init__(self, inner: NetworkTeacher):
            self.inner, self.env, self.name, self.output_kind = inner, inner.env, "doubled", "q"
            self.device, self.version, self.n_actions = inner.device, 0, inner.n_actions

        def __call__(self, obs: torch.Tensor) -> torch.Tensor:
            return 2 * self.inner(obs)

    inner = load_teacher("minatar/breakout")
    obs = np.random.default_rng(0).integers(0, 2, (4, *inner.env.obs_shape), dtype=np.uint8)
    got = TorchLabeller(Doubled(inner))(obs)
    assert np.array_equal(got, 2 * inner(torch.from_numpy(obs)).numpy())
    assert make_labeller(Doubled(inner), "auto").kind == "torch"
    with pytest.raises(PoldistError, match="CPU NetworkTeacher"):
        make_labeller(Doubled(inner), "onnxruntime")


def test_collect_refuses_a_labeller_of_another_teacher_and_an_unknown_kind() -> None:
    teacher = load_teacher("minatar/breakout")
    task = _task(teacher, _minatar_memory(teacher), seed=0, n_envs=2)
    with pytest.raises(PoldistError, match="labels for"):
        collect(task, TeacherControl(), QNetwork(teacher.net.arch), 2, np.random.default_rng(0),
                labeller=TorchLabeller(load_teacher("minatar/breakout")))  # fmt: skip
    with pytest.raises(PoldistError, match="unknown labeller"):
        LocalCollector("tensorrt")
    task.env.close()


@ONNX
@pytest.mark.parametrize("name", ["minatar/breakout", "minatar/space_invaders", "minatar/asterix"])
def test_onnxruntime_labels_are_within_tolerance_of_pytorch(name: str) -> None:
    try:
        teacher = load_teacher(name)
    except PoldistError:
        pytest.skip(f"{name} is not shipped")
    lab = OnnxLabeller(teacher)
    obs = np.random.default_rng(3).integers(0, 2, (33, *teacher.env.obs_shape), dtype=np.uint8)
    want = teacher(torch.from_numpy(obs)).numpy()
    got = lab(obs)
    assert got.shape == want.shape and got.dtype == np.float32
    assert np.abs(got - want).max() <= LABEL_TOLERANCE * max(1.0, float(np.abs(want).max()))


def _atari_teacher_and_frames(n: int, seed: int) -> tuple[NetworkTeacher, np.ndarray]:
    """A Nature-DQN Breakout teacher (random weights, torch seed 0) and ``n`` random frame stacks."""
    spec = make_env_spec("ALE/Breakout-v5")
    torch.manual_seed(0)
    teacher = NetworkTeacher(QNetwork(nature_dqn(spec.n_actions, 4)), spec)
    return teacher, np.random.default_rng(seed).integers(0, 256, (n, 4, 84, 84), dtype=np.uint8)


@ONNX
def test_onnxruntime_labels_of_an_atari_network_and_of_a_multi_task_head() -> None:
    teacher, frames = _atari_teacher_and_frames(5, seed=1)
    want = teacher(torch.from_numpy(frames)).numpy()
    assert np.abs(OnnxLabeller(teacher)(frames) - want).max() <= LABEL_TOLERANCE * max(
        1.0, np.abs(want).max()
    )
    # a two-head network with a hidden layer per head, read at head 1, on a game with fewer channels
    from poldist.networks import Architecture

    arch = Architecture((6, 10, 10), ((16, 3, 1),), 64, (3, 5), head_hidden=32)
    minatar = make_env_spec("MinAtar/Breakout-v1")
    multi = NetworkTeacher(QNetwork(arch), minatar, task=1)
    obs = np.random.default_rng(2).integers(0, 2, (7, 4, 10, 10), dtype=np.uint8)
    want = multi(torch.from_numpy(obs)).numpy()
    assert want.shape == (7, 5)
    assert np.abs(OnnxLabeller(multi)(obs) - want).max() <= LABEL_TOLERANCE * max(1.0, np.abs(want).max())


@ONNX
def test_the_input_scale_goes_into_a_first_conv_and_stays_a_mul_before_a_linear() -> None:
    from poldist.networks import Architecture

    teacher, frames = _atari_teacher_and_frames(3, seed=4)
    ops = [n.op_type for n in fast_teacher.onnx_graph(teacher.net).graph.node]
    assert "Mul" not in ops and ops[:2] == ["Cast", "Conv"]
    # no conv: the scale stays a Mul, and the labels are the network's either way
    spec = make_env_spec("MinAtar/Breakout-v1")
    torch.manual_seed(0)
    mlp = NetworkTeacher(QNetwork(Architecture((4, 10, 10), (), 32, (3,), 0, 1 / 255)), spec)
    assert [n.op_type for n in fast_teacher.onnx_graph(mlp.net).graph.node][:3] == ["Cast", "Mul", "Flatten"]
    obs = np.random.default_rng(5).integers(0, 256, (6, 4, 10, 10), dtype=np.uint8)
    for t, x in ((teacher, frames), (mlp, obs)):
        want = t(torch.from_numpy(x)).numpy()
        assert np.abs(OnnxLabeller(t)(x) - want).max() <= LABEL_TOLERANCE * max(1.0, np.abs(want).max())


@ONNX
def test_onnxruntime_labeller_follows_the_teachers_weights() -> None:
    teacher = load_teacher("minatar/breakout")
    lab = OnnxLabeller(teacher)
    obs = np.random.default_rng(0).integers(0, 2, (4, *teacher.env.obs_shape), dtype=np.uint8)
    before = lab(obs)
    state = {k: v * 0.5 for k, v in teacher.net.state_dict().items()}
    teacher.load_weights(state)  # bumps version: the graph is rebuilt
    after = lab(obs)
    assert lab.builds == 2
    assert not np.allclose(before, after)
    want = teacher(torch.from_numpy(obs)).numpy()
    assert np.abs(after - want).max() <= LABEL_TOLERANCE * max(1.0, np.abs(want).max())


@ONNX
def test_local_collector_with_onnxruntime_collects_close_labels() -> None:
    teacher = load_teacher("minatar/breakout")
    task = _task(teacher, _minatar_memory(teacher), seed=0)
    collector = LocalCollector("onnxruntime")
    collector.collect(task, TeacherControl(), QNetwork(teacher.net.arch), 400, np.random.default_rng(0))
    n = task.memory.size
    obs, labels = task.memory.data["obs"][:n], task.memory.data["teacher_out"][:n]
    want = teacher(torch.from_numpy(obs)).numpy()
    assert np.abs(labels - want).max() <= LABEL_TOLERANCE * max(1.0, np.abs(want).max())
    collector.close()
    task.env.close()


@ATARI
def test_atari_collect_sends_and_receives_and_stores_what_the_plain_loop_stores() -> None:
    spec = make_env_spec("ALE/Breakout-v5")
    torch.manual_seed(0)
    teacher = NetworkTeacher(QNetwork(nature_dqn(spec.n_actions, 4)), spec)
    student = QNetwork(teacher.net.arch)

    def task(seed: int) -> DistillTask:
        fields = {"obs": (spec.obs_shape, np.uint8), "teacher_out": ((spec.n_actions,), np.float32)}
        t = DistillTask(teacher, spec, FrameStackMemory(300, fields))
        t.env = make_vector_env(spec, 3, seed)
        t.obs, _ = t.env.reset(seed=seed)
        return t

    a, b = task(7), task(7)
    ra, rb = np.random.default_rng(0), np.random.default_rng(0)
    collect(a, TeacherControl(0.5), student, 60, ra)
    _reference_collect(b, TeacherControl(0.5), student, 60, rb)
    rows_a, rows_b = a.memory.all_rows(), b.memory.all_rows()
    assert len(rows_a["obs"]) == 60
    for k in rows_a:
        assert np.array_equal(rows_a[k], rows_b[k]), k
    a.env.close()
    b.env.close()


class _RowTeacher:
    """A protocol teacher whose row ``i`` depends on observation ``i`` alone, bit for bit at any batch."""

    def __init__(self, spec, n_actions: int):
        self.env, self.name, self.output_kind, self.version = spec, "rows", "q", 0
        self.n_actions, self.device = n_actions, torch.device("cpu")
        d = int(np.prod(spec.obs_shape))
        g = torch.Generator().manual_seed(0)
        self.cols = torch.randint(0, d, (n_actions, 5), generator=g)
        self.w = torch.rand(n_actions, 5, generator=g)

    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        x = obs.flatten(1).float()[:, self.cols]  # (B, A, 5)
        return (x * self.w).amax(dim=2)


@pytest.mark.parametrize("env_id", ["MinAtar/Breakout-v1", pytest.param("ALE/Breakout-v5", marks=ATARI)])
def test_pipelined_collect_on_grouped_envs_stores_what_the_plain_loop_stores(env_id: str) -> None:
    spec = make_env_spec(env_id)
    teacher = _RowTeacher(spec, spec.n_actions)
    fields = {"obs": (spec.obs_shape, np.uint8), "teacher_out": ((spec.n_actions,), np.float32)}

    def memory():
        return FrameStackMemory(500, fields) if spec.domain == "atari" else ReplayMemory(500, fields)

    n_envs, steps = (5, 40) if spec.domain == "atari" else (7, 300)
    plain, grouped = DistillTask(teacher, spec, memory()), DistillTask(teacher, spec, memory())
    plain.start(n_envs, 11)
    grouped.start(n_envs, 11, groups=2)
    assert np.array_equal(plain.obs, grouped.obs)
    ra, rb = np.random.default_rng(4), np.random.default_rng(4)
    for _ in range(2):
        collect(plain, TeacherControl(0.3), None, steps, ra)
        collect(grouped, TeacherControl(0.3), None, steps, rb)
    rows_a, rows_b = plain.memory.all_rows(), grouped.memory.all_rows()
    for k in rows_a:
        assert np.array_equal(rows_a[k], rows_b[k]), k
    assert np.array_equal(plain.obs, grouped.obs)
    assert ra.random() == rb.random()
    plain.env.close()
    grouped.env.close()
    grouped.env.close()  # idempotent


@ATARI
def test_atari_envs_step_during_the_update_and_the_data_is_the_same() -> None:
    """collect() leaves Atari's last step in flight (the envs step while the learner updates);
    the next collect(), or task.obs, receives it: the rows stored and the observations are those
    of receiving each step at once."""
    spec = make_env_spec("ALE/Breakout-v5")
    teacher = _RowTeacher(spec, spec.n_actions)
    fields = {"obs": (spec.obs_shape, np.uint8), "teacher_out": ((spec.n_actions,), np.float32)}
    deferred, received = (DistillTask(teacher, spec, FrameStackMemory(400, fields)) for _ in range(2))
    for task in (deferred, received):
        task.start(3, 5)
    ra, rb = np.random.default_rng(2), np.random.default_rng(2)
    for _ in range(4):
        collect(deferred, TeacherControl(0.3), None, 30, ra)
        assert deferred.stepping  # the envs step while the caller does something else
        collect(received, TeacherControl(0.3), None, 30, rb)
        assert received.obs is not None and not received.stepping  # received at once
    rows_a, rows_b = deferred.memory.all_rows(), received.memory.all_rows()
    for k in rows_a:
        assert np.array_equal(rows_a[k], rows_b[k]), k
    assert deferred.stepping and np.array_equal(deferred.obs, received.obs) and not deferred.stepping
    collect(deferred, TeacherControl(0.3), None, 3, ra)
    deferred.close()  # with a step in flight
    deferred.close()  # idempotent
    received.close()


def test_pipelined_collect_with_the_shipped_teacher_and_other_controllers() -> None:
    teacher = load_teacher("minatar/breakout")
    student = QNetwork(teacher.net.arch)
    task = DistillTask(teacher, teacher.env, _minatar_memory(teacher))
    task.start(8, 3, groups=2)
    collect(task, TeacherControl(), student, 400, np.random.default_rng(0))
    collect(task, StudentControl(), student, 400, np.random.default_rng(0))
    n = task.memory.size
    assert n >= 800 and task.obs.shape == (8, *teacher.env.obs_shape)
    obs, labels = task.memory.data["obs"][:n], task.memory.data["teacher_out"][:n]
    want = teacher(torch.from_numpy(obs)).numpy()
    assert np.abs(labels - want).max() <= LABEL_TOLERANCE * max(1.0, np.abs(want).max())
    task.env.close()


def test_distill_config_chooses_the_labeller_and_the_env_groups(tmp_path) -> None:
    """--labeller and --env-groups reach the collector and the envs; a bad value is one line."""
    from poldist.config import DistillConfig
    from poldist.distillation import Distiller

    cfg = DistillConfig(
        updates=40, learning_starts=64, eval_interval=10**6, eval_episodes=1, final_eval_episodes=1,
        agreement_states=8, evaluate_teacher=False, num_envs=4, labeller="onnxruntime", env_groups=2,
    )  # fmt: skip
    with Distiller(cfg, tmp_path / "run") as d:
        assert d.collector.labeller == "onnxruntime"
        d.run(show_progress=False)
        assert d.tasks[0].memory.size >= 64
    with pytest.raises(PoldistError, match=r"env_groups \(3\) must be at most num_envs \(2\)"):
        DistillConfig(num_envs=2, env_groups=3).validate()


def test_forward_macs_by_hand() -> None:
    from poldist.networks import Architecture

    # a 3x3 conv, 4 -> 16 channels on 10x10 (8x8 out), 1024 -> 128, 128 -> 3
    small = QNetwork(Architecture((4, 10, 10), ((16, 3, 1),), 128, (3,)))
    assert forward_macs(small) == 16 * 8 * 8 * 4 * 9 + 1024 * 128 + 128 * 3 == 168_320
    # the Nature DQN: 8x8/4 to 20x20, 4x4/2 to 9x9, 3x3/1 to 7x7, 3136 -> 512 -> 4
    nature = QNetwork(nature_dqn(4, 4))
    want = 32 * 400 * 4 * 64 + 64 * 81 * 32 * 16 + 64 * 49 * 64 * 9 + 3136 * 512 + 512 * 4
    assert forward_macs(nature) == want == 9_345_024


def test_auto_threads_two_for_a_large_teacher_on_two_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    from poldist.networks import Architecture

    small = QNetwork(Architecture((4, 10, 10), ((16, 3, 1),), 128, (3,)))
    nature = QNetwork(nature_dqn(4, 4))
    monkeypatch.setattr(fast_teacher, "usable_cores", lambda: 2)
    assert (auto_threads(small), auto_threads(nature)) == (1, 2)
    monkeypatch.setattr(fast_teacher, "usable_cores", lambda: 1)
    assert auto_threads(nature) == 1


def test_default_labeller_is_auto_and_threads_are_checked() -> None:
    assert DistillConfig().labeller == "auto" and LocalCollector().labeller == "auto"
    with pytest.raises(PoldistError, match="labeller_threads"):
        DistillConfig(labeller_threads=-1).validate()
    teacher = load_teacher("minatar/breakout")
    with pytest.raises(PoldistError, match="labeller threads must be >= 0"):
        OnnxLabeller(teacher, threads=-1)
    want = "torch" if fast_teacher.onnxruntime_missing() else "onnxruntime"
    assert make_labeller(teacher, "auto").kind == want


@pytest.mark.filterwarnings("ignore:overflow encountered")
def test_check_finite_accepts_an_overflowing_sum_and_refuses_nan() -> None:
    teacher = load_teacher("minatar/breakout")
    big = np.full((8, 3), 3e38, np.float32)  # finite, but their float32 sum is inf
    _check_finite(big, teacher, 0)
    for bad in (np.nan, np.inf, -np.inf):
        out = np.zeros((8, 3), np.float32)
        out[5, 1] = bad
        with pytest.raises(PoldistError, match="not finite"):
            _check_finite(out, teacher, 7)


@ONNX
def test_onnxruntime_labels_do_not_depend_on_the_thread_count() -> None:
    # auto_threads picks 1 or 2 by the machine's cores: the labels (and so a run) must not change
    teacher, frames = _atari_teacher_and_frames(8, seed=5)
    one, two = OnnxLabeller(teacher, threads=1), OnnxLabeller(teacher, threads=2)
    assert (one.threads, two.threads) == (1, 2)
    np.testing.assert_array_equal(one(frames), two(frames))
