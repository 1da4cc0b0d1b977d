"""Videos: MinAtar rendering, GIF/MP4 encoding, --vs panels, Atari RGB screens, capture of an
evaluation's first episode, and the one-line errors of ``poldist record``."""

import csv
import json

import gymnasium as gym
import numpy as np
import pytest
import torch
from cli_errors import one_line_error

from poldist import record as rec
from poldist import rendering
from poldist import video as videos
from poldist.checkpoints import save_model
from poldist.cli import main
from poldist.envs import make_env_spec, make_vector_env
from poldist.evaluation import evaluate
from poldist.networks import QNetwork, minatar_dqn, nature_dqn
from poldist.teachers import load_teacher


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Nature-DQN convolutions on one thread (a 2-core machine with one core busy)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def random_breakout(tmp_path):
    """A random-weights MinAtar Breakout network: short episodes of its own length."""
    torch.manual_seed(1)
    return save_model(tmp_path / "random", QNetwork(minatar_dqn(4, 3)), make_env_spec("MinAtar/Breakout-v1"))


@pytest.fixture
def atari_teacher(tmp_path):
    """A random-weights Nature-DQN on Atari Breakout with 400-frame (100-step) episodes."""
    spec = make_env_spec("ALE/Breakout-v5", max_num_frames_per_episode=400)
    torch.manual_seed(0)
    return save_model(tmp_path / "atari", QNetwork(nature_dqn(spec.n_actions)), spec)


_error = one_line_error


# --- rendering -------------------------------------------------------------------------------


def test_render_minatar_colours_cells_by_their_highest_channel():
    obs = np.zeros((4, 10, 10), np.uint8)
    obs[0, 2, 3] = 1
    obs[1, 2, 3] = 1  # two channels on one cell: the higher one shows, as in MinAtar
    obs[3, 9, 0] = 1
    image = rendering.render_minatar(obs, scale=20)
    assert image.shape == (200, 200, 3) and image.dtype == np.uint8
    palette = rendering.minatar_palette(4)
    assert palette.shape == (5, 3) and (palette[0] == 0).all() and len({tuple(c) for c in palette}) == 5
    assert (image[40:60, 60:80] == palette[2]).all()  # row 2, column 3: channel 1
    assert (image[180:200, 0:20] == palette[4]).all()  # row 9, column 0: channel 3
    assert (image[0:20, 0:20] == 0).all()  # nothing set: black
    assert len(np.unique(image.reshape(-1, 3), axis=0)) == 3


def test_render_minatar_matches_minatar_own_renderer():
    """The numpy palette equals MinAtar's seaborn cubehelix rendering (rgb_array), cell for cell."""
    import minatar.gym

    minatar.gym.register_envs()
    for env_id in ("MinAtar/Seaquest-v1", "MinAtar/Freeway-v1"):
        env = gym.make(env_id, render_mode="rgb_array")
        env.reset(seed=3)
        for _ in range(5):
            state, *_ = env.step(env.action_space.sample())
        theirs = np.round(np.asarray(env.render(), dtype=np.float64) * 255).astype(np.uint8)
        ours = rendering.render_minatar(np.asarray(state).transpose(2, 0, 1), scale=1)
        np.testing.assert_array_equal(ours, theirs)
        env.close()


# --- GIF and MP4 -----------------------------------------------------------------------------


def test_gif_of_a_shipped_teacher_reads_back(tmp_path):
    out = tmp_path / "clip.gif"
    r = rec.record("minatar/breakout", out, max_steps=30)
    frames = videos.read_gif(out)
    top = rendering.header_height()
    assert frames.shape == (31, top + 200, 200, 3)  # the first screen and one per step
    assert r.frames == 31 and (r.height, r.width) == (top + 200, 200) and r.bytes == out.stat().st_size
    assert r.agents[0].steps == 30 and r.agents[0].returns == []  # the budget ended the episode
    # the palette is exact: the game area of frame 0 is the first observation drawn
    env = make_vector_env(make_env_spec("MinAtar/Breakout-v1"), 1, 12345)
    obs, _ = env.reset(seed=12345)
    np.testing.assert_array_equal(frames[0, top:], rendering.render_minatar(obs[0]))
    assert out.stat().st_size < 100_000
    assert [p.name for p in tmp_path.iterdir()] == ["clip.gif"]  # no temporary file left


def test_recorded_episodes_are_the_evaluation_protocol(tmp_path, random_breakout):
    """Two episodes in a row on one env: the same returns and lengths as evaluate on one env."""
    r = rec.record(random_breakout, tmp_path / "two.gif", episodes=2, seed=7)
    res = evaluate(load_teacher(random_breakout), make_env_spec("MinAtar/Breakout-v1"), 2, seed=7, num_envs=1)
    assert r.agents[0].returns == res.returns and r.agents[0].lengths == res.lengths
    assert r.frames == sum(res.lengths) + 2
    assert videos.read_gif(tmp_path / "two.gif").shape[0] == r.frames


def test_vs_puts_two_headed_panels_side_by_side(tmp_path, random_breakout):
    rec.record("minatar/breakout", tmp_path / "one.gif", max_steps=5)
    two = rec.record(random_breakout, tmp_path / "two.gif", vs="minatar/breakout", max_steps=40)
    single, double = videos.read_gif(tmp_path / "one.gif"), videos.read_gif(tmp_path / "two.gif")
    assert double.shape[2] == 2 * single.shape[2] and double.shape[1] == single.shape[1]
    top, w = rendering.header_height(), single.shape[2]
    plain = rendering.side_by_side([single[0, top:], single[0, top:]])  # same env seed: same first screen
    np.testing.assert_array_equal(double[0, top:], plain)
    header = double[0, :top]
    assert not (header == header[0, 0]).all()  # text drawn on both headers
    assert not np.array_equal(double[0, :top, :w], double[0, :top, w:])  # different names
    # the random network loses its ball first; its panel holds its last screen until the other ends
    a, b = two.agents
    assert len(a.returns) == 1 and a.lengths[0] < 40 and b.returns == []
    assert two.frames == 41 == a.frames == b.frames
    held = double[a.lengths[0] :, top:, :w]
    assert (held == held[0]).all()
    assert not (double[a.lengths[0] :, top:, w:] == double[a.lengths[0], top:, w:]).all()


def test_mp4_reads_back(tmp_path):
    imageio = pytest.importorskip("imageio.v3")
    pytest.importorskip("imageio_ffmpeg")
    out = tmp_path / "clip.mp4"
    r = rec.record("minatar/breakout", out, max_steps=12)
    frames = imageio.imread(out, plugin="FFMPEG")
    assert frames.shape == (13, r.height, 200, 3) and r.height % 2 == 0
    # lossy, but the first game screen is still MinAtar's colours
    top = rendering.header_height()
    env = make_vector_env(make_env_spec("MinAtar/Breakout-v1"), 1, 12345)
    obs, _ = env.reset(seed=12345)
    diff = np.abs(frames[0, top:].astype(int) - rendering.render_minatar(obs[0]).astype(int))
    assert diff.mean() < 4


def test_mp4_without_imageio_is_one_line_naming_the_extra(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(videos, "_mp4_available", lambda: False)
    err = _error(capsys, ["record", "minatar/breakout", "--out", str(tmp_path / "a.mp4")])
    assert "poldist[video]" in err and "imageio" in err
    assert list(tmp_path.iterdir()) == []


# --- Atari -----------------------------------------------------------------------------------


def test_atari_twin_shows_what_the_policy_sees(atari_teacher):
    """The RGB twin, sent copy 0's actions, stays on the same frames: at 84x84 its screens in
    grayscale are the library's observations (to rounding)."""
    spec = load_teacher(atari_teacher).env
    env = make_vector_env(spec, 2, 5)
    twin = rendering.atari_screen_env(spec, 84, 84)
    obs, _ = env.reset(seed=5)
    screen, _ = twin.reset(seed=5)
    rng = np.random.default_rng(0)
    for _ in range(12):
        gray = screen[0, 0].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
        assert np.abs(gray - obs[0, -1]).max() <= 1.0
        actions = rng.integers(0, spec.n_actions, 2)
        obs, *_ = env.step(actions)
        screen, *_ = twin.step(actions[:1])
    env.close()
    twin.close()


def test_atari_recording_is_rgb(tmp_path, atari_teacher):
    out = tmp_path / "pong.gif"
    r = rec.record(atari_teacher, out, max_steps=15, scale=1)
    frames = videos.read_gif(out)
    top = rendering.header_height()
    assert frames.shape == (16, top + 210, 160, 3) and r.env_id == "ALE/Breakout-v5"
    game = frames[:, top:].astype(int)
    assert (np.abs(game[..., 0] - game[..., 1]) > 30).any()  # colour, not gray (the bricks)


def test_atari_capture_replays_copy_0_of_an_evaluation(tmp_path, atari_teacher):
    teacher = load_teacher(atari_teacher)
    res = evaluate(teacher, teacher.env, 2, seed=3, num_envs=2)
    r = rec.capture_episode(
        teacher, teacher.env, tmp_path / "a.gif", name="t", episodes=2, seed=3, num_envs=2
    )
    a = r.agents[0]
    assert len(a.returns) == 1 and (a.returns[0], a.lengths[0]) in zip(res.returns, res.lengths)
    assert r.frames == a.lengths[0] + 1


# --- the command line ------------------------------------------------------------------------


def test_record_command(capsys, tmp_path):
    out = tmp_path / "vs.gif"
    argv = ["record", "minatar/breakout", "--vs", "minatar/breakout", "--out", str(out)]
    assert main([*argv, "--max-steps", "8", "--scale", "10", "--fps", "5"]) == 0
    assert "9 frames, 200x" in capsys.readouterr().out
    assert videos.read_gif(out).shape[:3] == (9, rendering.header_height() + 100, 200)


def test_record_errors_are_one_line_and_write_nothing(capsys, tmp_path):
    out = tmp_path / "v.gif"
    assert "no checkpoint" in _error(capsys, ["record", str(tmp_path / "nothing"), "--out", str(out)])
    err = _error(capsys, ["record", "minatar/breakout", "--out", str(tmp_path / "v.avi")])
    assert ".gif or .mp4" in err
    err = _error(capsys, ["record", "minatar/breakout", "--out", str(out), "--episodes", "0"])
    assert "--episodes" in err
    err = _error(capsys, ["record", "minatar/breakout", "--vs", "minatar/asterix", "--out", str(out)])
    assert "MinAtar/Asterix-v1" in err and "same env" in err
    err = _error(capsys, ["record", "minatar/breakout", "--vs", str(tmp_path / "nope"), "--out", str(out)])
    assert "no checkpoint" in err
    err = _error(capsys, ["record", "minatar/breakout", "--labels", "a,b", "--out", str(out)])
    assert "2 labels for 1 agents" in err
    assert list(tmp_path.iterdir()) == []


def test_labels_name_the_panels(tmp_path):
    by_path = rec.record("minatar/breakout", tmp_path / "a.gif", max_steps=3)
    labelled = rec.record("minatar/breakout", tmp_path / "b.gif", max_steps=3, labels=["teacher"])
    a, b = videos.read_gif(tmp_path / "a.gif"), videos.read_gif(tmp_path / "b.gif")
    top = rendering.header_height()
    np.testing.assert_array_equal(a[:, top:], b[:, top:])  # the same play
    assert not np.array_equal(a[:, :top], b[:, :top])  # another name in the header
    assert [p.name for p in labelled.agents] == ["teacher"] and by_path.agents[0].name == "minatar/breakout"


def test_vs_with_other_env_settings_is_refused(capsys, tmp_path):
    spec = make_env_spec("MinAtar/Breakout-v1", sticky_action_prob=0.0)
    other = save_model(tmp_path / "other", QNetwork(minatar_dqn(4, 3)), spec)
    err = _error(capsys, ["record", "minatar/breakout", "--vs", str(other), "--out", str(tmp_path / "v.gif")])
    assert "sticky_action_prob" in err
    assert not (tmp_path / "v.gif").exists()


def test_evaluate_capture_video(capsys, tmp_path, random_breakout):
    video, result = tmp_path / "first.gif", tmp_path / "eval.json"
    argv = ["evaluate", str(random_breakout), "--episodes", "6", "--num-envs", "3", "--seed", "11"]
    assert main([*argv, "--json", str(result), "--capture-video", str(video), "--device", "cpu"]) == 0
    assert "wrote" in capsys.readouterr().out
    res = json.loads(result.read_text())
    frames = videos.read_gif(video)
    assert frames.shape[0] - 1 in res["lengths"]  # copy 0's first episode, one frame per step and one
    assert _error(capsys, [*argv, "--capture-video", str(tmp_path / "x.webm")]).endswith(".gif or .mp4")


def _spy_final_evaluation(monkeypatch, module):
    """Record every ``evaluate`` call of ``module`` and every ``capture_episode`` call."""
    import poldist.evaluation

    calls = {"evaluate": [], "capture": []}

    def spy_evaluate(policy, spec, episodes=30, **kw):
        res = poldist.evaluation.evaluate(policy, spec, episodes, **kw)
        calls["evaluate"].append(({"episodes": episodes, "num_envs": 8, "epsilon": 0.05, **kw}, res))
        return res

    def spy_capture(*args, **kw):
        recording = real_capture(*args, **kw)
        calls["capture"].append(({"num_envs": 8, **kw}, recording))
        return recording

    real_capture = rec.capture_episode
    monkeypatch.setattr(module, "evaluate", spy_evaluate)
    monkeypatch.setattr(rec, "capture_episode", spy_capture)
    return calls


def _assert_captured_final(calls):
    """The capture replayed the last evaluation's settings, and its episode is one of it."""
    (final_kw, res), ((cap_kw, recording),) = calls["evaluate"][-1], calls["capture"]
    for key in ("episodes", "seed", "epsilon", "num_envs"):
        assert cap_kw[key] == final_kw[key], key
    agent = recording.agents[0]
    assert len(agent.returns) == 1 and (agent.returns[0], agent.lengths[0]) in zip(res.returns, res.lengths)
    assert recording.path.exists() and recording.frames == agent.lengths[0] + 1


def test_distill_capture_video_is_the_final_evaluation(capsys, tmp_path, monkeypatch):
    import poldist.distillation

    video, out = tmp_path / "student.gif", tmp_path / "run"
    argv = ["distill", "--teacher", "minatar/breakout", "--out", str(out), "--capture-video", str(video)]
    small = ["--updates", "4", "--batch-size", "8", "--learning-starts", "64", "--memory-size", "256"]
    small += ["--eval-interval", "4", "--eval-episodes", "1", "--final-eval-episodes", "3"]
    small += ["--agreement-states", "32", "--no-evaluate-teacher", "--device", "cpu"]
    assert _error(capsys, [*argv[:-1], str(tmp_path / "s.png"), *small]).endswith(".gif or .mp4")
    assert not out.exists()
    calls = _spy_final_evaluation(monkeypatch, poldist.distillation)
    assert main([*argv, *small]) == 0
    _assert_captured_final(calls)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["tasks"][0]["student_returns"] == calls["evaluate"][-1][1].returns
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(out / "tb"), size_guidance={"images": 0})
    events.Reload()
    assert "capture/student" in events.Tags()["images"]  # frames of the video, in TensorBoard too


def test_train_teacher_capture_video_is_the_final_evaluation(capsys, tmp_path, monkeypatch):
    import poldist.dqn

    video, out = tmp_path / "teacher.gif", tmp_path / "run"
    argv = ["train-teacher", "--out", str(out), "--capture-video", str(video), "--total-steps", "64"]
    argv += ["--num-envs", "2", "--learning-starts", "32", "--buffer-size", "128", "--eval-interval", "64"]
    argv += ["--eval-episodes", "3", "--checkpoint-interval", "64", "--device", "cpu"]
    calls = _spy_final_evaluation(monkeypatch, poldist.dqn)
    assert main(argv) == 0
    _assert_captured_final(calls)
    with (out / "evals.csv").open() as f:
        final = list(csv.DictReader(f))[-1]
    assert float(final["score"]) == pytest.approx(calls["evaluate"][-1][1].mean)


def test_card_videos_atari_records_the_cells_student_beside_its_shipped_teacher(
    tmp_path, monkeypatch
) -> None:
    """scripts/card_videos.py --atari: the student of an atari_students.py cell (its run directory
    under --runs), labelled with its share of the teacher's parameters, its command and score."""
    import json

    from scripts_loader import load_script

    script = load_script("card_videos")
    raw_dir = tmp_path / "results" / "atari" / "pong" / "raw"
    raw_dir.mkdir(parents=True)
    raw = {
        "size": "net2",
        "seed": 1,
        "command": "python scripts/atari_students.py --sizes net2 --seeds 1",
        "student_params": 111_798,
        "teacher_params": 1_686_180,
        "student_score": 9.11,
        "student_returns": [9.0, 9.22],
        "percent_of_reference": 49.0,
    }
    (raw_dir / "pong__net2__tau0.01__seed1.json").write_text(json.dumps(raw))
    calls = []

    def fake_video(name, student, label, **kw):
        calls.append((name, student, label, kw))
        return {"bytes": 1, "returns": {}}

    monkeypatch.setattr(script, "add_card_video", fake_video)
    monkeypatch.chdir(tmp_path)
    assert script.atari_video("pong__net2__tau0.01__seed1", tmp_path / "runs", 50) == 0
    [(name, student, label, kw)] = calls
    assert name == "atari/pong" and student == tmp_path / "runs" / "pong__net2__tau0.01__seed1" / "student"
    assert label == "student net2 (7%)" and kw["max_steps"] == 50
    assert kw["provenance"] == (
        "`python scripts/atari_students.py --sizes net2 --seeds 1` (run seed 1; 9.11 over 2 episodes, "
        "49.0% of the teacher's reference score)"
    )
