"""ONNX export (poldist.export) and the torch-free runtime (poldist.deploy)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch

from poldist.checkpoints import save_model
from poldist.cli import main
from poldist.deploy import OnnxPolicy
from poldist.envs import make_env_spec
from poldist.errors import PoldistError
from poldist.export import PAD_VALUE, export_onnx
from poldist.networks import Architecture, QNetwork, minatar_dqn, nature_dqn

TOL = 1e-5


def _torch_outputs(net: QNetwork, obs: np.ndarray, task: int = 0) -> np.ndarray:
    with torch.no_grad():
        return net(torch.from_numpy(obs), task).numpy()


def _export(tmp_path_factory, name: str, net: QNetwork, envs) -> tuple[QNetwork, OnnxPolicy]:
    root = tmp_path_factory.mktemp(name)
    save_model(root / "ckpt", net, envs)
    path = export_onnx(root / "ckpt", root / f"{name}.onnx")
    return net, OnnxPolicy(path)


@pytest.fixture(scope="module")
def minatar(tmp_path_factory):
    torch.manual_seed(1)
    return _export(
        tmp_path_factory, "minatar", QNetwork(minatar_dqn(4, 3)), make_env_spec("MinAtar/Breakout-v1")
    )


@pytest.fixture(scope="module")
def multitask(tmp_path_factory):
    """Two heads with different action counts (3, 6) and channel counts (4, 10)."""
    torch.manual_seed(2)
    arch = Architecture(obs_shape=(10, 10, 10), convs=((16, 3, 1),), hidden=128, n_actions=(3, 6))
    envs = [make_env_spec("MinAtar/Breakout-v1"), make_env_spec("MinAtar/Seaquest-v1")]
    return _export(tmp_path_factory, "multitask", QNetwork(arch), envs)


@pytest.fixture(scope="module")
def atari(tmp_path_factory):
    torch.manual_seed(3)
    return _export(tmp_path_factory, "atari", QNetwork(nature_dqn(4)), make_env_spec("ALE/Breakout-v5"))


def _grids(rng, batch: int, channels: int) -> np.ndarray:
    return (rng.random((batch, channels, 10, 10)) < 0.3).astype(np.uint8)


@pytest.mark.parametrize("batch", [1, 33])
def test_minatar_parity(minatar, batch):
    net, policy = minatar
    obs = _grids(np.random.default_rng(batch), batch, 4)
    got = policy.outputs(obs)
    assert got.shape == (batch, 3) and got.dtype == np.float32
    assert np.abs(got - _torch_outputs(net, obs)).max() < TOL
    np.testing.assert_array_equal(policy.act(obs), _torch_outputs(net, obs).argmax(1))


def test_multitask_parity_each_head_and_channel_padding(multitask):
    net, policy = multitask
    assert policy.n_actions == (3, 6) and policy.input_shape == (10, 10, 10)
    assert policy.env_ids == ["MinAtar/Breakout-v1", "MinAtar/Seaquest-v1"]
    rng = np.random.default_rng(0)
    for task, channels, n in ((0, 4, 3), (1, 10, 6)):
        obs = _grids(rng, 17, channels)  # Breakout's 4 channels: padded to 10, as in torch
        want = _torch_outputs(net, obs, task)
        got = policy.outputs(obs, task)
        assert got.shape == (17, n)
        assert np.abs(got - want).max() < TOL
        np.testing.assert_array_equal(policy.act(obs, task), want.argmax(1))


def test_multitask_graph_selects_a_head_per_row_and_pads(multitask):
    """The raw graph: a task per row, short heads padded with PAD_VALUE, actions never padded."""
    net, policy = multitask
    obs = _grids(np.random.default_rng(1), 8, 10)
    task = np.array([0, 1, 1, 0, 1, 0, 0, 1], dtype=np.int64)
    outputs, actions = policy.session.run(None, {"obs": obs, "task": task})
    assert outputs.shape == (8, 6) and actions.shape == (8,)
    for i, t in enumerate(task):
        want = _torch_outputs(net, obs[i : i + 1], int(t))[0]
        assert np.abs(outputs[i, : len(want)] - want).max() < TOL
        assert (outputs[i, len(want) :] == np.float32(PAD_VALUE)).all()
        assert actions[i] == want.argmax()
    assert [i.name for i in policy.session.get_inputs()] == ["obs", "task"]


def test_three_tasks_with_hidden_head_layers(tmp_path):
    """The paper's multi-task students put a hidden layer in each head."""
    arch = Architecture((7, 10, 10), ((8, 3, 1),), 32, n_actions=(3, 5, 4), head_hidden=16)
    net = QNetwork(arch)
    envs = [make_env_spec(f"MinAtar/{g}-v1") for g in ("Breakout", "Asterix", "SpaceInvaders")]
    policy = OnnxPolicy(export_onnx(save_model(tmp_path / "ckpt", net, envs), tmp_path / "m.onnx"))
    obs = _grids(np.random.default_rng(5), 9, 7)
    for task in range(3):
        want = _torch_outputs(net, obs, task)
        assert np.abs(policy.outputs(obs, task) - want).max() < TOL
        np.testing.assert_array_equal(policy.act(obs, task), want.argmax(1))


def test_unsupported_opset(tmp_path, breakout_spec, small_net):
    with pytest.raises(PoldistError, match="opset 9"):
        export_onnx(save_model(tmp_path / "ckpt", small_net, breakout_spec), tmp_path / "m.onnx", opset=9)
    assert not (tmp_path / "m.onnx").exists()


def test_atari_nature_dqn_parity(atari):
    net, policy = atari
    obs = np.random.default_rng(2).integers(0, 256, (5, 4, 84, 84), dtype=np.uint8)
    want = _torch_outputs(net, obs)
    assert np.abs(policy.outputs(obs) - want).max() < TOL
    np.testing.assert_array_equal(policy.act(obs), want.argmax(1))
    assert [i.name for i in policy.session.get_inputs()] == ["obs"]
    assert policy.metadata["obs_scale"] == pytest.approx(1 / 255)


def test_single_observation(minatar):
    net, policy = minatar
    obs = _grids(np.random.default_rng(3), 1, 4)
    action = policy.act(obs[0])
    assert isinstance(action, int) and action == _torch_outputs(net, obs).argmax()
    assert policy.outputs(obs[0]).shape == (3,)
    assert policy.act(obs[0].astype(bool)) == action  # MinAtar's boolean grids are accepted


def test_epsilon_greedy(minatar):
    _, policy = minatar
    obs = _grids(np.random.default_rng(4), 2000, 4)
    greedy = policy.act(obs)
    random = policy.act(obs, epsilon=1.0, rng=np.random.default_rng(0))
    assert set(np.unique(random)) == {0, 1, 2}
    half = policy.act(obs, epsilon=0.5, rng=np.random.default_rng(0))
    assert 0.55 < (half == greedy).mean() < 0.8  # 1/2 kept + 1/2 * 1/3 lucky
    np.testing.assert_array_equal(policy.act(obs, epsilon=0.5, rng=np.random.default_rng(0)), half)


def test_bad_inputs(minatar, multitask):
    _, policy = minatar
    with pytest.raises(PoldistError, match="task 1 does not exist"):
        policy.act(np.zeros((1, 4, 10, 10), np.uint8), task=1)
    with pytest.raises(PoldistError, match="do not fit"):
        policy.act(np.zeros((1, 5, 10, 10), np.uint8))
    with pytest.raises(PoldistError, match="do not fit"):
        policy.act(np.zeros((1, 4, 84, 84), np.uint8))
    with pytest.raises(PoldistError, match="uint8"):
        policy.act(np.zeros((1, 4, 10, 10), np.float32))
    with pytest.raises(PoldistError, match="epsilon"):
        policy.act(np.zeros((1, 4, 10, 10), np.uint8), epsilon=2.0)
    with pytest.raises(PoldistError, match="task -1"):
        multitask[1].outputs(np.zeros((1, 10, 10, 10), np.uint8), task=-1)


def test_metadata_embedded_and_sidecar(multitask):
    _, policy = multitask
    model = onnx.load(policy.path)
    embedded = json.loads({p.key: p.value for p in model.metadata_props}["poldist"])
    sidecar = json.loads(policy.path.with_name(policy.path.name + ".json").read_text())
    assert embedded == sidecar == policy.metadata
    assert embedded["obs_shapes"] == [[4, 10, 10], [10, 10, 10]]
    assert embedded["n_actions"] == [3, 6] and embedded["output_kind"] == "q"
    assert len(embedded["source_weights_sha256"]) == 64
    assert model.opset_import[0].version == 17
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [10, 10, 10]


def test_deploy_does_not_import_torch(minatar):
    _, policy = minatar
    code = (
        "import sys, numpy as np\n"
        "from poldist.deploy import OnnxPolicy\n"
        f"p = OnnxPolicy({str(policy.path)!r})\n"
        "a = p.act(np.zeros((2, 4, 10, 10), np.uint8), epsilon=0.1)\n"
        "p.outputs(np.zeros((4, 10, 10), np.uint8))\n"
        "assert a.shape == (2,)\n"
        "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


def test_cli_export_shipped_teacher(capsys, tmp_path):
    out = tmp_path / "deploy" / "breakout.onnx"
    assert main(["export", "minatar/breakout", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "MinAtar/Breakout-v1" in printed and str(out) in printed
    policy = OnnxPolicy(out)
    assert policy.n_actions == (3,) and policy.metadata["source_checkpoint"] == "minatar/breakout"
    assert policy.act(np.zeros((3, 4, 10, 10), np.uint8)).shape == (3,)


def test_cli_export_missing_checkpoint(capsys, tmp_path):
    code = main(["export", str(tmp_path / "nothing"), "--out", str(tmp_path / "x.onnx")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("poldist: error: "), err
    assert "no checkpoint" in err
    assert not (tmp_path / "x.onnx").exists()


def test_onnx_policy_missing_file(tmp_path):
    with pytest.raises(PoldistError, match="no ONNX model"):
        OnnxPolicy(tmp_path / "nothing.onnx")
