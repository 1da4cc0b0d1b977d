"""Devices (``--device``): names resolve or fail in one line before any run directory exists,
networks move between devices without changing their outputs, checkpoints load onto any device,
and on the CPU the device option changes no number.

The CUDA tests run only where ``torch.cuda.is_available()``.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from poldist.checkpoints import load_checkpoint, pack_optimizer, save_checkpoint, save_model, unpack_optimizer
from poldist.cli import main
from poldist.collection import collect, make_controller
from poldist.distillation import DistillConfig, base_architecture, build_tasks, distill, make_student
from poldist.dqn import DQNConfig, train_dqn
from poldist.envs import make_env_spec
from poldist.errors import PoldistError
from poldist.networks import QNetwork, adam, minatar_dqn, module_device, resolve_device, to_device
from poldist.teachers import NetworkTeacher, load_teacher

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
# the devices this machine has: every device test runs on each
HERE = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
TEACHER = "minatar/breakout"


@pytest.fixture
def no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend this machine has neither CUDA nor MPS (as this CPU-only one)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


def _obs(n: int = 16, seed: int = 0) -> np.ndarray:
    """``(n, 4, 10, 10)`` uint8 MinAtar-like observations (0s and 1s)."""
    return np.random.default_rng(seed).integers(0, 2, (n, 4, 10, 10), dtype=np.uint8)


def _tiny_distill(**kw) -> DistillConfig:
    """About a second of distillation: 200 updates, a 2-episode final score, teacher scored too."""
    base = dict(
        teacher=TEACHER,
        updates=200,
        batch_size=32,
        learning_starts=400,
        transitions_per_update=2.0,
        memory_size=2_000,
        eval_interval=100,
        eval_episodes=1,
        final_eval_episodes=2,
        agreement_states=200,
        checkpoint_interval=100,
    )
    base.update(kw)
    return DistillConfig(**base)


def _tiny_dqn(**kw) -> DQNConfig:
    """1,000 env steps of DQN with updates from step 400."""
    base = dict(
        total_steps=1_000,
        learning_starts=400,
        buffer_size=2_000,
        eval_interval=1_000,
        eval_episodes=1,
        checkpoint_interval=1_000,
        target_update=20,
        network="net1",
    )
    base.update(kw)
    return DQNConfig(**base)


def _numbers(summary: dict) -> dict:
    """A run summary without what may differ between two identical runs (times, machine, config)."""
    drop = {"wall_seconds", "train_wall_seconds", "steps_per_second", "machine", "config"}
    drop |= {"cpu_seconds", "train_cpu_seconds"}
    out = {k: v for k, v in summary.items() if k not in drop}
    if "final_eval" in out:
        out["final_eval"] = [{k: v for k, v in r.items() if k != "wall_seconds"} for r in out["final_eval"]]
    return out


# --------------------------------------------------------------------------- names


def test_resolve_device_auto_and_cpu() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


def test_resolve_device_auto_is_cpu_without_a_gpu(no_gpu) -> None:
    assert resolve_device("auto") == torch.device("cpu")


@pytest.mark.parametrize("name", ["nonsense", "gpu", "cuda:x", ""])
def test_unknown_device_fails_in_one_line(name: str) -> None:
    with pytest.raises(PoldistError, match="unknown device") as e:
        resolve_device(name)
    assert len(str(e.value).splitlines()) == 1 and "auto, cpu, cuda" in str(e.value)


@pytest.mark.parametrize("name", ["cuda", "cuda:0", "mps"])
def test_unavailable_device_fails_in_one_line(no_gpu, name: str) -> None:
    kind = "CUDA" if name.startswith("cuda") else "MPS"
    with pytest.raises(PoldistError) as e:
        resolve_device(name)
    assert str(e.value) == f"{kind} is not available on this machine; use --device cpu or auto"


def _cli_error(capsys: pytest.CaptureFixture, argv: list[str]) -> str:
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("poldist: error: "), err
    return err


@pytest.mark.parametrize("device", ["cuda", "nonsense"])
@pytest.mark.parametrize("command", ["distill", "train-teacher", "online"])
def test_cli_refuses_a_bad_device_before_the_run_directory(
    no_gpu, capsys: pytest.CaptureFixture, tmp_path: Path, command: str, device: str
) -> None:
    out = tmp_path / "run"
    err = _cli_error(capsys, [command, "--device", device, "--out", str(out)])
    assert ("CUDA is not available" if device == "cuda" else "unknown device 'nonsense'") in err
    assert not out.exists()


@pytest.mark.parametrize("device", ["cuda", "nonsense"])
def test_evaluate_and_bench_refuse_a_bad_device(
    no_gpu, capsys: pytest.CaptureFixture, tmp_path: Path, device: str
) -> None:
    _cli_error(capsys, ["evaluate", TEACHER, "--episodes", "1", "--device", device])
    out = tmp_path / "bench.json"
    _cli_error(capsys, ["bench", "--quick", "--no-atari", "--json", str(out), "--device", device])
    assert not out.exists()


@pytest.mark.parametrize("command", ["train-teacher", "distill", "online", "evaluate", "bench"])
def test_help_of_each_command_shows_the_device_and_its_choices(
    capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    assert "--device" in text
    after = " ".join(text[text.rindex("--device") :].split())  # its entry, not the usage line
    assert all(choice in after[:400] for choice in ("auto", "cpu", "cuda", "mps")), after[:400]


# --------------------------------------------------------------------------- moving networks


def test_to_device_on_the_cpu_is_the_host_array_itself() -> None:
    obs = _obs()
    t = to_device(obs, torch.device("cpu"))
    assert t.dtype == torch.uint8 and t.shape == obs.shape  # frames stay uint8: the network scales them
    assert t.data_ptr() == obs.ctypes.data  # no copy on the host


@pytest.mark.parametrize("device", HERE)
def test_a_moved_network_gives_the_same_outputs(device: str) -> None:
    net = QNetwork(minatar_dqn(4, 3))
    obs = _obs()
    with torch.no_grad():
        before = net(torch.as_tensor(obs))
        moved = copy.deepcopy(net).to(device)
        assert module_device(moved).type == device
        after = moved(to_device(obs, module_device(moved))).cpu()
    assert torch.equal(before, after) if device == "cpu" else torch.allclose(before, after, atol=1e-5)


@pytest.mark.parametrize("device", HERE)
def test_a_checkpoint_loads_onto_a_device_with_the_same_outputs(tmp_path: Path, device: str) -> None:
    spec = make_env_spec("MinAtar/Breakout-v1")
    net = QNetwork(minatar_dqn(4, 3))
    if device != "cpu":
        net.to(device)  # saved from the device: the checkpoint holds CPU tensors all the same
    save_model(tmp_path / "m", net, spec)
    assert all(t.device.type == "cpu" for t in load_checkpoint(tmp_path / "m").tensors.values())
    teacher = load_teacher(tmp_path / "m", device=device)
    assert teacher.device.type == device
    obs = _obs()
    with torch.no_grad():
        want = net(to_device(obs, module_device(net))).cpu()
        got = teacher(to_device(obs, teacher.device)).cpu()
    # on the CPU exactly; a GPU may pick another kernel for another module instance
    assert torch.equal(want, got) if device == "cpu" else torch.allclose(want, got, atol=1e-6)
    on_cpu = load_teacher(tmp_path / "m", device=torch.device("cpu"))
    with torch.no_grad():
        assert torch.allclose(on_cpu(torch.as_tensor(obs)), want, atol=1e-5)


@pytest.mark.parametrize("device", HERE)
@pytest.mark.parametrize("kind", ["adam", "rmsprop"])
def test_optimizer_state_loads_onto_the_parameters_device(tmp_path: Path, device: str, kind: str) -> None:
    def make(net: QNetwork) -> torch.optim.Optimizer:
        if kind == "adam":
            return adam(net.parameters(), lr=1e-3)  # fused where available, as the DQN's
        return torch.optim.RMSprop(net.parameters(), lr=1e-3, alpha=0.95, eps=1e-6)

    net = QNetwork(minatar_dqn(4, 3))
    opt = make(net)
    net(torch.as_tensor(_obs())).sum().backward()
    opt.step()
    tensors, info = pack_optimizer(opt)
    save_checkpoint(tmp_path / "s", tensors, {"optimizer": info})
    ckpt = load_checkpoint(tmp_path / "s")
    moved = copy.deepcopy(net).to(device)
    opt2 = make(moved)
    unpack_optimizer(opt2, ckpt.tensors, ckpt.metadata["optimizer"])
    fused = bool(opt2.defaults.get("fused")) or bool(opt2.defaults.get("capturable"))
    for p in moved.parameters():
        for key, value in opt2.state[p].items():
            if key == "step" and not fused:
                continue  # torch keeps a non-fused optimizer's step count on the CPU by design
            assert value.device == p.device, (key, value.device, p.device)
    for p, q in zip(net.parameters(), moved.parameters()):
        a, b = opt.state[p], opt2.state[q]
        assert a.keys() == b.keys() and all(torch.equal(a[k].cpu(), b[k].cpu()) for k in a)


# --------------------------------------------------------------------------- where data lives


class _SpyTeacher(NetworkTeacher):
    """Records the dtype, device and batch size of what it is asked to label."""

    seen: list[tuple[torch.dtype, torch.device, int]]

    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        self.seen.append((obs.dtype, obs.device, obs.shape[0]))
        return super().__call__(obs)


@pytest.mark.parametrize("device", HERE)
def test_collect_labels_whole_uint8_vector_batches_on_the_device(device: str) -> None:
    shipped = load_teacher(TEACHER, device=device)
    spy = _SpyTeacher(shipped.net, shipped.env, shipped.output_kind, 0, "spy")
    spy.seen = []
    cfg = _tiny_distill(memory_size=100, control="mixed", device=device)
    task = build_tasks(cfg, [spy])[0]
    task.start(cfg.num_envs, 0)
    student = make_student(cfg, [task], base_architecture([task])).to(device)
    try:
        # mixed control: the student acts too, on the same device batch
        collect(task, make_controller(cfg), student, 40, np.random.default_rng(0))
    finally:
        task.env.close()
    assert spy.seen
    assert {(d, dev.type, n) for d, dev, n in spy.seen} == {(torch.uint8, device, cfg.num_envs)}
    rows = task.memory.all_rows()  # host memory: numpy, frames as uint8
    assert isinstance(rows["obs"], np.ndarray) and rows["obs"].dtype == np.uint8
    assert isinstance(rows["teacher_out"], np.ndarray) and rows["teacher_out"].dtype == np.float32


# --------------------------------------------------------------------------- the CPU changes nothing


def test_tiny_distillation_on_cpu_equals_the_default(no_gpu, tmp_path: Path) -> None:
    default = distill(_tiny_distill(), tmp_path / "default")
    cpu = distill(_tiny_distill(device="cpu"), tmp_path / "cpu")
    assert default["device"] == cpu["device"] == "cpu"
    assert default["config"]["device"] == "auto" and cpu["config"]["device"] == "cpu"
    assert _numbers(default) == _numbers(cpu)  # scores, returns, agreement, taus: exactly equal
    a = load_checkpoint(tmp_path / "default" / "student").tensors
    b = load_checkpoint(tmp_path / "cpu" / "student").tensors
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_tiny_dqn_on_cpu_equals_the_default(no_gpu, tmp_path: Path) -> None:
    default = train_dqn(_tiny_dqn(), tmp_path / "default")
    cpu = train_dqn(_tiny_dqn(device="cpu"), tmp_path / "cpu")
    assert default["device"] == cpu["device"] == "cpu"
    assert _numbers(default) == _numbers(cpu)
    a = load_checkpoint(tmp_path / "default" / "state").tensors
    b = load_checkpoint(tmp_path / "cpu" / "state").tensors
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --------------------------------------------------------------------------- CUDA


@CUDA
def test_cpu_cuda_cpu_round_trip_keeps_outputs() -> None:
    net = QNetwork(minatar_dqn(4, 3))
    weights = {k: v.clone() for k, v in net.state_dict().items()}
    obs = _obs(64)
    with torch.no_grad():
        on_cpu = net(torch.as_tensor(obs))
        net.to("cuda")
        on_cuda = net(to_device(obs, torch.device("cuda"))).cpu()
        net.to("cpu")
        back = net(torch.as_tensor(obs))
    assert torch.allclose(on_cpu, on_cuda, atol=1e-5)
    assert torch.equal(on_cpu, back)
    assert all(torch.equal(weights[k], v) for k, v in net.state_dict().items())


@CUDA
def test_short_distillation_on_cuda_resumes_on_the_cpu(tmp_path: Path) -> None:
    run = tmp_path / "run"
    first = distill(_tiny_distill(updates=100, device="cuda"), run)
    assert first["device"].startswith("cuda")
    assert all(t.device.type == "cpu" for t in load_checkpoint(run / "state").tensors.values())
    resumed = distill(_tiny_distill(device="cpu"), run, resume=True)  # a CUDA checkpoint, resumed on CPU
    assert resumed["device"] == "cpu" and resumed["updates"] == 200
    assert np.isfinite(resumed["tasks"][0]["student_score"])
    again = distill(_tiny_distill(updates=300, device="cuda"), run, resume=True)  # and back on CUDA
    assert again["updates"] == 300


@CUDA
def test_short_dqn_on_cuda_with_kickstarting(tmp_path: Path) -> None:
    summary = train_dqn(_tiny_dqn(device="cuda", kickstart_teacher=TEACHER), tmp_path / "q")
    assert summary["device"].startswith("cuda") and summary["updates"] > 0
    resumed = train_dqn(_tiny_dqn(device="cpu", total_steps=1_200), tmp_path / "q", resume=True)
    assert resumed["device"] == "cpu" and resumed["env_steps"] == 1_200
    teacher = load_teacher(tmp_path / "q" / "teacher", device="cuda")
    with torch.no_grad():
        assert torch.isfinite(teacher(to_device(_obs(), teacher.device))).all()
