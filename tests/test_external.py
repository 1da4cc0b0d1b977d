"""Teachers brought from outside: Stable-Baselines3 zips and CleanRL checkpoints.

The SB3 models are made here, untrained, on a dummy env with the RL Zoo Atari
observation space (84x84x4 uint8, channels last) and Breakout's 4 actions; the
CleanRL checkpoints are state dicts of networks with CleanRL's layout.
"""

from __future__ import annotations

import json
import pickle
import zipfile
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("stable_baselines3")
from stable_baselines3 import A2C, DQN, PPO  # noqa: E402
from stable_baselines3.common.vec_env import VecTransposeImage  # noqa: E402

from poldist import external  # noqa: E402
from poldist.checkpoints import load_model  # noqa: E402
from poldist.cli import main  # noqa: E402
from poldist.distillation import DistillConfig, distill  # noqa: E402
from poldist.envs import make_env_spec  # noqa: E402
from poldist.errors import PoldistError  # noqa: E402
from poldist.external import convert_to_checkpoint  # noqa: E402
from poldist.teachers import (  # noqa: E402
    check_teacher_fits,
    load_cleanrl_teacher,
    load_sb3_teacher,
    load_teacher,
)

SHORT = {"max_num_frames_per_episode": 200}  # 50-step episodes keep the Atari runs fast


class AtariLike(gym.Env):
    """What SB3 sees behind RL Zoo's AtariWrapper + 4-frame stack: (84, 84, 4) uint8, channels last."""

    def __init__(self, n_actions: int = 4, shape: tuple[int, ...] = (84, 84, 4)):
        self.observation_space = gym.spaces.Box(0, 255, shape, np.uint8)
        self.action_space = gym.spaces.Discrete(n_actions)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, False, False, {}


def _sb3(algo, tmp: Path, name: str, n_actions: int = 4, policy: str = "CnnPolicy", **kw) -> Path:
    env = AtariLike(n_actions) if policy == "CnnPolicy" else AtariLike(n_actions, (8,))
    if algo is DQN:
        kw.setdefault("buffer_size", 10)
    if algo is PPO:
        kw.update(n_steps=8, batch_size=8)
    model = algo(policy, env, seed=0, device="cpu", **kw)
    model.save(tmp / name)
    return tmp / name


@pytest.fixture(scope="module")
def sb3_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("sb3")


@pytest.fixture(scope="module")
def dqn_zip(sb3_dir) -> Path:
    return _sb3(DQN, sb3_dir, "dqn-BreakoutNoFrameskip-v4.zip")  # RL Zoo's file name


@pytest.fixture(scope="module")
def ppo_zip(sb3_dir) -> Path:
    return _sb3(PPO, sb3_dir, "ppo.zip")


@pytest.fixture(scope="module")
def a2c_zip(sb3_dir) -> Path:
    from stable_baselines3.common.sb2_compat.rmsprop_tf_like import RMSpropTFLike

    # RL Zoo's Atari A2C: a class in policy_kwargs makes SB3 store them half-pickled
    kw = {"optimizer_class": RMSpropTFLike, "optimizer_kwargs": {"eps": 1e-5}}
    return _sb3(A2C, sb3_dir, "a2c.zip", policy_kwargs=kw)


def _frames(n: int = 6, seed: int = 0) -> np.ndarray:
    """Random stacked frames as the Atari env behind SB3 gives them: (n, 84, 84, 4), channels last."""
    return np.random.default_rng(seed).integers(0, 256, (n, 84, 84, 4), dtype=np.uint8)


def _sb3_outputs(model, frames: np.ndarray) -> torch.Tensor:
    """SB3's own outputs, after its own preprocessing (VecTransposeImage, then /255 in the policy)."""
    obs, _ = model.policy.obs_to_tensor(VecTransposeImage.transpose_image(frames))
    with torch.no_grad():
        if isinstance(model, DQN):
            return model.q_net(obs)
        return model.policy.get_distribution(obs).distribution.logits


def _sb3_action_net(model, frames: np.ndarray) -> torch.Tensor:
    """PPO/A2C: the raw output of ``action_net`` (before the Categorical normalises it)."""
    policy = model.policy
    obs, _ = policy.obs_to_tensor(VecTransposeImage.transpose_image(frames))
    with torch.no_grad():
        return policy.action_net(policy.extract_features(obs, policy.pi_features_extractor))


def _ours(teacher, frames: np.ndarray) -> torch.Tensor:
    """The teacher on the same frames as this library's Atari env gives them: (n, 4, 84, 84)."""
    return teacher(torch.as_tensor(np.ascontiguousarray(frames.transpose(0, 3, 1, 2))))


@pytest.mark.parametrize(
    "zip_fixture, algo, kind",
    [("dqn_zip", DQN, "q"), ("ppo_zip", PPO, "logits"), ("a2c_zip", A2C, "logits")],
)
def test_sb3_outputs_match_sb3(request, zip_fixture, algo, kind):
    path = request.getfixturevalue(zip_fixture)
    teacher = load_sb3_teacher(path, "ALE/Breakout-v5")
    assert teacher.output_kind == kind
    assert teacher.default_tau == (0.01 if kind == "q" else 1.0)
    assert teacher.env.env_id == "ALE/Breakout-v5"
    assert teacher.env.settings["repeat_action_probability"] == 0.0
    assert teacher.env.obs_shape == (4, 84, 84) and teacher.env.obs_scale == pytest.approx(1 / 255)
    assert teacher.net.arch.obs_scale == pytest.approx(1 / 255)
    check_teacher_fits(teacher, make_env_spec("ALE/Breakout-v5"))

    model = algo.load(path, device="cpu")  # SB3's own load, in the test only, as the reference
    frames = _frames()
    ours, theirs = _ours(teacher, frames), _sb3_outputs(model, frames)
    if kind == "logits":  # SB3's Categorical stores log-probabilities: the logits less a per-state constant
        torch.testing.assert_close(ours, _sb3_action_net(model, frames), atol=1e-5, rtol=0)
        ours = torch.log_softmax(ours, dim=1)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)
    assert not torch.allclose(ours[0], ours[1])  # the outputs depend on the input


def test_sb3_env_from_rl_zoo_file_name(dqn_zip, tmp_path):
    # no env id: read from RL Zoo's file name; <Game>NoFrameskip-v4 maps to ALE/<Game>-v5
    assert load_sb3_teacher(dqn_zip).env == make_env_spec("ALE/Breakout-v5")
    assert load_sb3_teacher(dqn_zip, "BreakoutNoFrameskip-v4").env.env_id == "ALE/Breakout-v5"
    assert load_teacher(dqn_zip).env.env_id == "ALE/Breakout-v5"  # the dispatch of load_teacher
    assert load_teacher(str(dqn_zip), env_id="ALE/Breakout-v5").output_kind == "q"
    with pytest.raises(PoldistError, match="BreakoutNoFrameskip-v4.*'ALE/Pong-v5'"):
        load_sb3_teacher(dqn_zip, "ALE/Pong-v5")  # the name says Breakout
    anonymous = tmp_path / "model.zip"
    anonymous.write_bytes(dqn_zip.read_bytes())
    with pytest.raises(PoldistError, match="pass --env-id"):
        load_sb3_teacher(anonymous)
    for bad in ("Breakout-v4", "MinAtar/Breakout-v1"):
        with pytest.raises(PoldistError, match="does not fit an external Atari teacher"):
            load_sb3_teacher(anonymous, bad)


def test_sb3_refuses_wrong_action_count(sb3_dir, ppo_zip):
    six = _sb3(DQN, sb3_dir, "dqn6.zip", n_actions=6)
    with pytest.raises(PoldistError, match="6 actions, env ALE/Breakout-v5 has 4 actions"):
        load_sb3_teacher(six, "ALE/Breakout-v5")
    assert load_sb3_teacher(six, "ALE/Pong-v5").n_actions == 6  # Pong's minimal set has 6
    with pytest.raises(PoldistError, match="4 actions, env ALE/Pong-v5 has 6"):
        load_sb3_teacher(ppo_zip, "ALE/Pong-v5")
    full = _sb3(PPO, sb3_dir, "ppo18.zip", n_actions=18)
    with pytest.raises(PoldistError, match="full_action_space=True"):
        load_sb3_teacher(full, "ALE/Breakout-v5")
    assert load_sb3_teacher(full, "ALE/Breakout-v5", full_action_space=True).n_actions == 18


@pytest.mark.parametrize(
    "algo, policy, kw, match",
    [
        (PPO, "MlpPolicy", {}, "not an image policy"),
        (DQN, "MlpPolicy", {}, "not an image policy"),
        (PPO, "CnnPolicy", {"policy_kwargs": {"net_arch": [64]}}, "hidden layers after the CNN"),
        (DQN, "CnnPolicy", {"policy_kwargs": {"net_arch": [64]}}, "hidden layers after the CNN"),
        (PPO, "CnnPolicy", {"policy_kwargs": {"normalize_images": False}}, "normalize_images=False"),
    ],
)
def test_sb3_refuses_other_policies(tmp_path, algo, policy, kw, match):
    path = _sb3(algo, tmp_path, "m.zip", policy=policy, **kw)
    with pytest.raises(PoldistError, match=match):
        load_sb3_teacher(path, "ALE/Breakout-v5")


def _rewrite_zip(src: Path, dst: Path, *, data=None, members: dict[str, bytes] | None = None) -> Path:
    """A copy of an SB3 zip with its ``data`` JSON edited by ``data(d)`` and entries replaced."""
    members = dict(members or {})
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for name in zin.namelist():
            raw = zin.read(name)
            if name == "data" and data is not None:
                d = json.loads(raw)
                data(d)
                raw = json.dumps(d).encode()
            zout.writestr(name, members.pop(name, raw))
        for name, raw in members.items():
            zout.writestr(name, raw)
    return dst


def test_sb3_refuses_observation_mismatches(dqn_zip, tmp_path):
    def channels_last(d):
        d["observation_space"]["_shape"] = [84, 84, 4]

    def rgb(d):
        d["observation_space"]["_shape"] = [3, 84, 84]

    def floats(d):
        d["observation_space"]["dtype"] = "float32"

    def box_action(d):
        d["action_space"][":type:"] = "<class 'gymnasium.spaces.box.Box'>"

    def qrdqn(d):
        d["policy_class"]["__module__"] = "sb3_contrib.qrdqn.policies"

    cases = [
        (channels_last, "channels last"),
        (rgb, r"shape \(3, 84, 84\)"),
        (floats, "dtype float32"),
        (box_action, "not Discrete"),
        (qrdqn, "sb3_contrib.qrdqn.policies"),
    ]
    for edit, match in cases:
        path = _rewrite_zip(dqn_zip, tmp_path / f"{edit.__name__}.zip", data=edit)
        with pytest.raises(PoldistError, match=match):
            load_sb3_teacher(path, "ALE/Breakout-v5")
    # weights with another input (3 channels) than the recorded space claims
    sd = {k: v for k, v in _load_policy(dqn_zip).items()}
    sd["q_net.features_extractor.cnn.0.weight"] = torch.zeros(32, 3, 8, 8)
    path = _rewrite_zip(dqn_zip, tmp_path / "w3.zip", members={"policy.pth": _torch_bytes(sd)})
    with pytest.raises(PoldistError, match="input channels"):
        load_sb3_teacher(path, "ALE/Breakout-v5")
    with pytest.raises(PoldistError, match="no 'policy.pth' entry"):
        with zipfile.ZipFile(tmp_path / "nopolicy.zip", "w") as z:
            z.writestr("data", "{}")
        load_sb3_teacher(tmp_path / "nopolicy.zip", "ALE/Breakout-v5")
    (tmp_path / "junk.zip").write_bytes(b"not a zip")
    with pytest.raises(PoldistError, match="not a readable zip"):
        load_sb3_teacher(tmp_path / "junk.zip", "ALE/Breakout-v5")


def _load_policy(path: Path) -> dict[str, torch.Tensor]:
    import io

    with zipfile.ZipFile(path) as z:
        return torch.load(io.BytesIO(z.read("policy.pth")), weights_only=True)


def _torch_bytes(obj) -> bytes:
    import io

    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


class _Payload:
    """Unpickling this creates the file ``marker`` (a stand-in for arbitrary code)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_pickle_payloads_are_never_run(dqn_zip, tmp_path):
    control = tmp_path / "control"
    pickle.loads(pickle.dumps(_Payload(control)))  # the payload works when unpickled...
    assert control.exists()

    marker = tmp_path / "pwned"
    payloads = {
        "raw-pickle": pickle.dumps({"q_net.q_net.0.weight": _Payload(marker)}),
        "torch-zip": _torch_bytes({"q_net.q_net.0.weight": _Payload(marker)}),
    }

    def poisoned_data(d):  # a `:serialized:` field that would run the payload if decoded
        import base64

        d["policy_class"][":serialized:"] = base64.b64encode(pickle.dumps(_Payload(marker))).decode()

    for name, payload in payloads.items():
        path = _rewrite_zip(
            dqn_zip, tmp_path / f"{name}.zip", data=poisoned_data, members={"policy.pth": payload}
        )
        with pytest.raises(
            PoldistError, match="holds pickled Python objects besides tensors, and poldist never unpickles"
        ):
            load_sb3_teacher(path, "ALE/Breakout-v5")
        with pytest.raises(
            PoldistError, match="holds pickled Python objects besides tensors, and poldist never unpickles"
        ):
            load_teacher(path, env_id="ALE/Breakout-v5")
        cleanrl = tmp_path / f"{name}.cleanrl_model"
        cleanrl.write_bytes(payload)
        with pytest.raises(
            PoldistError, match="holds pickled Python objects besides tensors, and poldist never unpickles"
        ):
            load_cleanrl_teacher(cleanrl, "ALE/Breakout-v5")
    # the zip's weights are fine but its data holds the poisoned pickle: loads, never decoding it
    path = _rewrite_zip(dqn_zip, tmp_path / "data-only.zip", data=poisoned_data)
    assert load_sb3_teacher(path, "ALE/Breakout-v5").output_kind == "q"
    assert not marker.exists()


# --------------------------------------------------------------------------- CleanRL


def _cleanrl_qnetwork(n_actions: int = 4) -> nn.Module:
    """CleanRL dqn_atari.py's QNetwork body (its forward is ``self.network(x / 255.0)``)."""
    return nn.Sequential(
        nn.Conv2d(4, 32, 8, stride=4),
        nn.ReLU(),
        nn.Conv2d(32, 64, 4, stride=2),
        nn.ReLU(),
        nn.Conv2d(64, 64, 3, stride=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(3136, 512),
        nn.ReLU(),
        nn.Linear(512, n_actions),
    )


class _CleanRLQNetwork(nn.Module):
    def __init__(self, n_actions: int = 4):
        super().__init__()
        self.network = _cleanrl_qnetwork(n_actions)

    def forward(self, x):
        return self.network(x / 255.0)


class _CleanRLAgent(nn.Module):
    """CleanRL ppo_atari.py's Agent: shared trunk, actor and critic heads."""

    def __init__(self, n_actions: int = 4):
        super().__init__()
        self.network = nn.Sequential(*list(_cleanrl_qnetwork(n_actions))[:9])
        self.actor = nn.Linear(512, n_actions)
        self.critic = nn.Linear(512, 1)

    def forward(self, x):
        return self.actor(self.network(x / 255.0))


@pytest.fixture(scope="module")
def cleanrl_models(tmp_path_factory):
    d = tmp_path_factory.mktemp("cleanrl")
    torch.manual_seed(1)
    q, agent = _CleanRLQNetwork(), _CleanRLAgent()
    torch.save(q.state_dict(), d / "dqn_atari.cleanrl_model")
    torch.save(agent.state_dict(), d / "ppo_atari.pt")
    return {"q": (d / "dqn_atari.cleanrl_model", q), "logits": (d / "ppo_atari.pt", agent)}


@pytest.mark.parametrize("kind", ["q", "logits"])
def test_cleanrl_outputs_match(cleanrl_models, kind):
    path, net = cleanrl_models[kind]
    teacher = load_cleanrl_teacher(path, "BreakoutNoFrameskip-v4")
    assert teacher.output_kind == kind and teacher.env == make_env_spec("ALE/Breakout-v5")
    assert load_teacher(path, env_id="ALE/Breakout-v5").output_kind == kind
    obs = torch.as_tensor(np.ascontiguousarray(_frames().transpose(0, 3, 1, 2)))  # CleanRL: channels first
    with torch.no_grad():
        theirs = net(obs)
    torch.testing.assert_close(teacher(obs), theirs, atol=1e-5, rtol=0)


def test_cleanrl_refusals(cleanrl_models, tmp_path):
    path, _ = cleanrl_models["q"]
    for call in (lambda: load_cleanrl_teacher(path, ""), lambda: load_teacher(path)):
        with pytest.raises(PoldistError, match="CleanRL checkpoints record no env: pass --env-id"):
            call()
    with pytest.raises(PoldistError, match="4 actions, env ALE/Pong-v5 has 6 actions"):
        load_cleanrl_teacher(path, "PongNoFrameskip-v4")
    with pytest.raises(PoldistError, match="task 1 does not exist"):
        load_teacher(path, task=1, env_id="ALE/Breakout-v5")
    c51 = tmp_path / "c51.cleanrl_model"
    torch.save({"model_weights": _CleanRLQNetwork().state_dict(), "args": {"env_id": "x"}}, c51)
    with pytest.raises(PoldistError, match="C51"):
        load_cleanrl_teacher(c51, "ALE/Breakout-v5")
    other = tmp_path / "other.pth"
    torch.save(nn.Sequential(nn.Linear(4, 4)).state_dict(), other)
    with pytest.raises(PoldistError, match="neither a dqn_atari"):
        load_cleanrl_teacher(other, "ALE/Breakout-v5")
    with pytest.raises(PoldistError, match="no CleanRL checkpoint"):
        load_cleanrl_teacher(tmp_path / "missing.pt", "ALE/Breakout-v5")


def test_convert_to_checkpoint(ppo_zip, cleanrl_models, tmp_path):
    out = convert_to_checkpoint(ppo_zip, tmp_path / "ppo", "ALE/Breakout-v5")
    teacher = load_teacher(out)
    assert teacher.output_kind == "logits" and teacher.env.env_id == "ALE/Breakout-v5"
    _, meta = load_model(out)
    assert meta["source"]["format"] == "stable-baselines3" and meta["source"]["file"] == "ppo.zip"
    obs = torch.as_tensor(np.ascontiguousarray(_frames().transpose(0, 3, 1, 2)))
    torch.testing.assert_close(teacher(obs), load_sb3_teacher(ppo_zip, "ALE/Breakout-v5")(obs))
    path, net = cleanrl_models["q"]
    out = convert_to_checkpoint(path, tmp_path / "q", "BreakoutNoFrameskip-v4")
    with torch.no_grad():
        torch.testing.assert_close(load_teacher(out)(obs), net(obs), atol=1e-5, rtol=0)


# --------------------------------------------------------------------------- distillation and CLI

TINY = dict(
    student="net3",
    num_envs=2,
    updates=4,
    learning_starts=16,
    memory_size=64,
    batch_size=8,
    eval_interval=100,
    eval_episodes=1,
    final_eval_episodes=1,
    evaluate_teacher=False,
    checkpoint_interval=100,
    agreement_states=8,
    torch_threads=1,
)


@pytest.mark.parametrize("source", ["dqn_zip", "ppo_zip", "cleanrl"])
def test_distill_from_external_teacher(request, cleanrl_models, tmp_path, source):
    if source == "cleanrl":
        path = cleanrl_models["q"][0]
        teacher = load_cleanrl_teacher(path, "ALE/Breakout-v5", **SHORT)
    else:
        path = request.getfixturevalue(source)
        teacher = load_sb3_teacher(path, "ALE/Breakout-v5", **SHORT)
    summary = distill(DistillConfig(teacher=str(path), **TINY), tmp_path / "run", teachers=[teacher])
    assert summary["updates"] == 4 and summary["tasks"][0]["env_id"] == "ALE/Breakout-v5"
    assert summary["student_params"] < summary["teacher_params"]
    student, meta = load_model(tmp_path / "run" / "student")
    assert student.arch.obs_shape == (4, 84, 84) and student.arch.obs_scale == pytest.approx(1 / 255)
    assert student.arch.n_actions == (4,) and meta["envs"][0]["env_id"] == "ALE/Breakout-v5"
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["teacher"] == str(path)


@pytest.fixture
def short_episodes(monkeypatch):
    """Atari specs made by the loaders and by ``poldist evaluate`` get 50-step episodes (fast CLI runs)."""
    import poldist.envs

    def short(env_id, **s):
        return make_env_spec(env_id, **{**SHORT, **s})

    monkeypatch.setattr(external, "make_env_spec", short)
    monkeypatch.setattr(poldist.envs, "make_env_spec", short)


def _tiny_flags() -> list[str]:
    flags = []
    for k, v in TINY.items():
        flag = "--" + k.replace("_", "-")
        flags += [flag if v is not False else "--no-" + k.replace("_", "-")] + (
            [] if v is False else [str(v)]
        )
    return flags


def test_cli_distill_and_evaluate(dqn_zip, cleanrl_models, tmp_path, capsys, short_episodes):
    # SB3: the env comes from RL Zoo's file name
    assert main(["distill", "--teacher", str(dqn_zip), "--out", str(tmp_path / "a"), *_tiny_flags()]) == 0
    assert (tmp_path / "a" / "student" / "meta.json").exists()
    # CleanRL: the env must be given
    path = str(cleanrl_models["q"][0])
    argv = ["distill", "--teacher", path, "--env-id", "ALE/Breakout-v5", "--out", str(tmp_path / "b")]
    assert main(argv + _tiny_flags()) == 0
    assert (tmp_path / "b" / "student" / "meta.json").exists()
    capsys.readouterr()
    assert main(["distill", "--teacher", path, "--out", str(tmp_path / "c"), *_tiny_flags()]) == 2
    assert "CleanRL checkpoints record no env: pass --env-id" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()
    # evaluate
    assert main(["evaluate", str(dqn_zip), "--episodes", "1", "--num-envs", "1"]) == 0
    assert main(["evaluate", path, "--episodes", "1", "--num-envs", "1"]) == 2
    assert "pass --env-id" in capsys.readouterr().err
    out = tmp_path / "eval.json"
    argv = ["evaluate", path, "--env-id", "ALE/Breakout-v5", "--episodes", "1", "--num-envs", "1"]
    assert main(argv + ["--json", str(out)]) == 0
    assert json.loads(out.read_text())["env_id"] == "ALE/Breakout-v5"
