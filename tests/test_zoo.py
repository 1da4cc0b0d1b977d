"""The shipped teachers: each model card's score is what a bare evaluate command gives."""

import csv
import json

import pytest
import torch

from poldist.evaluation import evaluate
from poldist.teachers import ZOO, load_teacher, zoo_names

# an Atari card's 100 episodes take minutes on a CPU: the test plays this many agent steps of the
# same evaluation (8 envs), whose finished episodes are the card's first ones (evaluate stops early)
ATARI_STEPS = 24_000


@pytest.mark.slow
@pytest.mark.parametrize("name", zoo_names())
def test_model_card_score_is_reproduced_by_evaluate(name):
    card = json.loads((ZOO / name / "card.json").read_text())
    teacher = load_teacher(name)
    e = card["eval"]
    cap = ATARI_STEPS if teacher.env.domain == "atari" else None
    result = evaluate(
        teacher, teacher.env, e["episodes"], epsilon=e["epsilon"], seed=e["seed"], max_total_steps=cap
    )
    if cap is None:
        assert result.returns == pytest.approx(e["returns"])
    else:  # the episodes that ended within the cap, in the order they ended in the card's run
        assert len(result.returns) >= 4 and result.returns == pytest.approx(
            e["returns"][: len(result.returns)]
        )
    # far above a random policy (Atari scores can be negative: Pong's random policy about -20.7)
    lo = card["random_policy"]["mean"]
    assert e["mean"] >= (5 * lo if lo >= 0 else lo / 2)


@pytest.mark.parametrize("name", zoo_names())
def test_shipped_teacher_is_small_and_whole(name):
    files = list((ZOO / name).iterdir())
    weights = [f for f in files if f.suffix == ".safetensors"]
    limit = 4_000_000 if name.startswith("atari/") else 1_000_000  # Nature DQN in half precision: 3.4 MB
    assert len(weights) == 1 and weights[0].stat().st_size < limit
    assert {"meta.json", "card.json", "MODEL_CARD.md", "curve.png"} <= {f.name for f in files}
    assert load_teacher(name).output_kind == "q"


def test_publish_in_half_precision_checks_the_score(tmp_path, monkeypatch):
    """A teacher published with half=True: half-size weights, its card compares the half- and
    full-precision scores on the same episodes, names the network, and gets a reference score."""
    import poldist.teachers
    from poldist import zoo
    from poldist.dqn import DQNConfig, train_dqn

    run = tmp_path / "run"
    cfg = DQNConfig(total_steps=1_500, learning_starts=500, buffer_size=2_000, eval_interval=1_500)
    train_dqn(cfg, run)
    monkeypatch.setattr(zoo, "ZOO", tmp_path / "zoo")
    monkeypatch.setattr(poldist.teachers, "ZOO", tmp_path / "zoo")
    dest = zoo.publish_teacher(run, "minatar/tiny", episodes=4, reference_episodes=3, half=True, notes="N.")
    card = json.loads((dest / "card.json").read_text())
    check = card["half_precision_check"]
    assert check["episodes"] == 4 and card["eval"]["mean"] == check["half_precision_mean"]
    assert card["network"] == "MinAtar's DQN network" and card["reference"]["episodes"] == 3
    full = sum(f.stat().st_size for f in (run / "teacher").glob("*.safetensors"))
    half = sum(f.stat().st_size for f in dest.glob("*.safetensors"))
    assert half < 0.6 * full
    text = (dest / "MODEL_CARD.md").read_text()
    assert "half precision" in text and "\n\nN." in text
    assert all(p.dtype == torch.float32 for p in load_teacher("minatar/tiny").net.parameters())


def test_card_video_shows_teacher_and_student_in_the_card(tmp_path, monkeypatch):
    import shutil

    import poldist.teachers
    from poldist import zoo
    from poldist.video import read_gif

    shutil.copytree(ZOO / "minatar" / "breakout", tmp_path / "minatar" / "breakout")
    (tmp_path / "minatar" / "breakout" / "play.gif").unlink(missing_ok=True)
    monkeypatch.setattr(zoo, "ZOO", tmp_path)
    monkeypatch.setattr(poldist.teachers, "ZOO", tmp_path)
    student = ZOO / "minatar" / "breakout"  # the teacher itself stands in for a student
    video = zoo.add_card_video(
        "minatar/breakout", student, "student x (7%)", max_steps=20, provenance="by hand"
    )
    dest = tmp_path / "minatar" / "breakout"
    frames = read_gif(dest / "play.gif")
    assert frames.shape[0] == video["frames"] == 21 and video["bytes"] == (dest / "play.gif").stat().st_size
    assert json.loads((dest / "card.json").read_text())["video"] == video
    card = (dest / "MODEL_CARD.md").read_text()
    assert "![teacher and student playing](play.gif)" in card and "a distilled x (7%) student" in card
    assert "The student: by hand." in card
    with pytest.raises(Exception, match="no shipped teacher"):
        zoo.add_card_video("minatar/nothing", student, "s")


def test_publish_a_carried_candidate_of_a_warm_started_run(tmp_path, monkeypatch):
    """--checkpoint: the network a run carried at some step is published, the card counts the run
    it was warm-started from, and the learning curve stops at that step; a candidate of another run
    is refused."""
    from scripts_loader import load_script

    import poldist.teachers
    from poldist import zoo
    from poldist.dqn import DQNConfig, train_dqn
    from poldist.errors import PoldistError

    carry_run = load_script("carry_run")
    small = {"learning_starts": 500, "buffer_size": 2_000, "eval_interval": 500, "eval_episodes": 2}
    train_dqn(DQNConfig(total_steps=1_000, **small), tmp_path / "first")
    carry_run.weights(tmp_path / "first", tmp_path / "first-online", half=False)
    warm = DQNConfig(total_steps=1_000, init_weights=str(tmp_path / "first-online"), **small)
    train_dqn(warm, tmp_path / "warm")
    carry_run.weights(tmp_path / "warm", tmp_path / "candidate", half=False)
    with open(tmp_path / "warm" / "evals.csv", newline="") as f:  # the run went on past the candidate
        rows = list(csv.DictReader(f))
    with open(tmp_path / "warm" / "evals.csv", "a", newline="") as f:
        csv.DictWriter(f, fieldnames=list(rows[0])).writerow({**rows[-1], "env_steps": "2000"})
    plotted, marks = [], []

    def fake_plot(evals_csv, out_png, **kw):
        plotted.clear()
        with open(evals_csv, newline="") as f:
            plotted.extend(int(r["env_steps"]) for r in csv.DictReader(f))
        marks[:] = kw.get("marks", [])

    monkeypatch.setattr(zoo, "plot_learning_curve", fake_plot)
    monkeypatch.setattr(zoo, "ZOO", tmp_path / "zoo")
    monkeypatch.setattr(poldist.teachers, "ZOO", tmp_path / "zoo")
    with pytest.raises(PoldistError, match="carried from run 'warm', not 'first'"):
        zoo.publish_teacher(tmp_path / "first", "minatar/tiny", checkpoint=tmp_path / "candidate")
    dest = zoo.publish_teacher(
        tmp_path / "warm", "minatar/tiny", episodes=2, reference_episodes=0, checkpoint=tmp_path / "candidate"
    )
    card = json.loads((dest / "card.json").read_text())
    assert card["checkpoint_step"] == card["env_steps"] == 1_000
    assert card["warm_start"]["run"] == "first" and card["warm_start"]["env_steps"] == 1_000
    # the curve spans the chain: the first run's evaluations, then the warm run's up to the
    # candidate (not its evaluation at 2,000) shifted by the first run's 1,000 steps
    with open(tmp_path / "first" / "evals.csv", newline="") as f:
        first_steps = [int(r["env_steps"]) for r in csv.DictReader(f)]
    warm_steps = [int(r["env_steps"]) for r in rows if int(r["env_steps"]) <= 1_000]
    assert plotted == first_steps + [1_000 + s for s in warm_steps] and max(plotted) == 2_000
    assert marks == [1_000]
    text = (dest / "MODEL_CARD.md").read_text()
    assert "| env steps | 2,000 in all: 1,000 in run `first`, then 1,000 warm-started" in text
    assert "the network carried at step 1,000 of its run" in text
    # a third run, warm-started from the second's candidate: the card counts the whole chain
    third = DQNConfig(total_steps=1_000, init_weights=str(tmp_path / "candidate"), **small)
    train_dqn(third, tmp_path / "third")
    (tmp_path / "first" / "commands.txt").write_text("poldist train-teacher --out first\n")
    (tmp_path / "third" / "commands.txt").write_text("poldist train-teacher --out third\n")
    dest = zoo.publish_teacher(tmp_path / "third", "minatar/tiny", episodes=2, reference_episodes=0)
    card = json.loads((dest / "card.json").read_text())
    warm_start = card["warm_start"]
    assert [s["run"] for s in warm_start["segments"]] == ["first", "warm"]
    assert warm_start["env_steps"] == 2_000 and warm_start["run"] == "warm"
    first, second = warm_start["segments"]
    assert warm_start["updates"] == first["updates"] + second["updates"]
    assert marks == [1_000, 2_000] and max(plotted) == 3_000
    text = (dest / "MODEL_CARD.md").read_text()
    assert "| env steps | 3,000 in all: 1,000 in run `first`, then 1,000 in run `warm`, then 1,000" in text
    assert "dotted lines: where a warm start began" in text
    # "Trained with": every run's commands in order, a run without a commands.txt said so
    assert (
        "# run 1 (first): 1,000 env steps\npoldist train-teacher --out first\n\n"
        "# run 2 (warm): 1,000 env steps, warm-started from run 1's network\n# (commands not kept)\n\n"
        "# run 3 (the published run): 1,000 env steps, warm-started from run 2's network\n"
        "poldist train-teacher --out third\n```"
    ) in text
    # the zoo's table counts the whole chain too: 3,000 steps, not the last run's 1,000
    row = next(line for line in zoo.zoo_table(markdown=True).splitlines() if "minatar/tiny" in line)
    assert "| 0.003M |" in row
    u = [first["updates"], second["updates"], card["updates"]]
    assert f"| gradient updates | {sum(u):,} in all ({u[0]:,} + {u[1]:,} + {u[2]:,}) |" in text
