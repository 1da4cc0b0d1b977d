"""The Atari students harness (issue 19 part 2): scripts/atari_students.py and RESULTS.md section 7."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from scripts_loader import load_script

from poldist.checkpoints import save_model
from poldist.envs import make_env_spec
from poldist.experiments import sections_atari
from poldist.experiments.report_stats import ReportContext
from poldist.networks import QNetwork, nature_dqn


def _card(reference: list[float], random: float) -> dict:
    mean = sum(reference) / len(reference)
    return {
        "env_steps": 1_000,
        "train_wall_seconds": 3600.0,
        "reference": {"returns": reference, "mean": mean, "ci_low": mean, "ci_high": mean, "episodes": 2},
        "random_policy": {"mean": random, "episodes": 2},
    }


def _record(seed: int, returns: list[float], size: str = "net2", variant: str = "tau0.01") -> dict:
    return {
        "variant": variant,
        "size": size,
        "game": "pong",
        "seed": seed,
        "teacher": "atari/pong",
        "student_returns": returns,
        "student_params": 100,
        "agreement": 0.5,
        "train_wall_seconds": 120.0,
        "command": f"cmd {seed}",
    }


def test_paper_parameter_counts() -> None:
    assert [sections_atari.paper_params(s) for s in ("net1", "net2", "net3")] == [427_874, 113_346, 61_954]


def test_a_warm_started_teacher_is_described_by_its_whole_chain() -> None:
    card = {
        "env_steps": 300_000,
        "train_wall_seconds": 3600.0,
        "warm_start": {"env_steps": 700_000, "wall_seconds": 7200.0, "segments": [{}, {}]},
    }
    text = sections_atari.shipped_teacher_text(card, "atari/pong")
    assert "trained here for 1,000,000 env steps in 3.0 hours over 3 runs" in text
    plain = sections_atari.shipped_teacher_text({"env_steps": 300_000, "train_wall_seconds": 3600.0}, "x")
    assert plain.endswith("trained here for 300,000 env steps in 1.0 hours")


def test_atari_rows_by_hand() -> None:
    # reference 20, random -20; seeds score 0 and 20: mean 10, (10 + 20) / 40 = 75% above random, 50% plain
    rows = sections_atari.atari_rows(
        [_record(1, [0.0, 0.0]), _record(2, [20.0, 20.0]), _record(0, [-20.0])], _card([20.0, 20.0], -20.0)
    )
    fresh = next(r for r in rows if r[2] == "tau0.01")
    assert fresh[0] == "net2" and fresh[1] == "100 (113,346)"
    assert fresh[3] == "10.00 (0.0, 20.0)"
    assert fresh[4] == "**75.0 [50.0, 100.0]**" and fresh[5] == "50.0 [0.0, 100.0]"
    # no gap bins recorded: no decisive agreement; wall and CPU minutes (none recorded)
    assert fresh[6:] == ["1, 2", "0.500", "–", "2.0", "–"]
    tuning = next(r for r in rows if r[2] == "tau0.01 (tuning)")
    assert tuning[4] == "**0.0 [0.0, 0.0]**"  # the random policy's score
    # a teacher at or below 0 has no plain percent
    rows = sections_atari.atari_rows([_record(1, [-5.0])], _card([-10.0, -10.0], -20.0))
    assert rows[0][4].startswith("**150.0") and rows[0][5] == "–"


def test_the_cosine_variant_changes_only_the_schedule_and_an_unknown_one_fails_in_one_line(
    tmp_path: Path, monkeypatch
) -> None:
    import poldist.teachers
    from poldist.errors import PoldistError

    zoo = tmp_path / "zoo"
    spec = make_env_spec("ALE/Pong-v5")
    save_model(zoo / "atari" / "pong", QNetwork(nature_dqn(spec.n_actions)), spec)
    monkeypatch.setattr(poldist.teachers, "ZOO", zoo)
    script = load_script("atari_students")
    plain = script.cell_config("atari/pong", "net2", "tau0.01", 1, 100, 10)
    cosine = script.cell_config("atari/pong", "net2", "tau0.01-cosine", 1, 100, 10)
    assert (plain.lr_schedule, cosine.lr_schedule, cosine.tau) == ("constant", "cosine", 0.01)
    assert replace(cosine, lr_schedule="constant") == plain
    with pytest.raises(PoldistError, match="unknown variant 'tau2': choose from tau0.01, tau1"):
        script.cell_config("atari/pong", "net2", "tau2", 1, 100, 10)


def test_variant_notes_say_what_a_schedule_and_a_tuning_row_are() -> None:
    def rec(seed: int, schedule: str) -> dict:
        return {**_record(seed, [0.0]), "config": {"lr_schedule": schedule}}

    assert sections_atari.variant_notes([rec(1, "constant")]) == ""
    notes = sections_atari.variant_notes([rec(1, "constant"), rec(0, "cosine")])
    assert "`-cosine`: the learning rate falls to 0 at the last update" in notes
    assert "`(tuning)`: run seed 0" in notes
    longer = {**rec(1, "constant"), "config": {"lr_schedule": "constant", "updates": 90_000}}
    usual = {**rec(1, "constant"), "config": {"lr_schedule": "constant", "updates": 30_000}}
    notes = sections_atari.variant_notes([usual, usual, longer])
    assert "`-<n>k`: a budget of n thousand updates instead of 30,000 (here 90,000)" in notes


def test_a_longer_budget_is_its_own_variant_and_cell() -> None:
    script = load_script("atari_students")
    assert script.budget_variant("tau0.01", script.UPDATES) == "tau0.01"
    assert script.budget_variant("tau0.01", 90_000) == "tau0.01-90k"
    assert script.budget_variant("tau1", 2_500) == "tau1-2.5k"


def test_decisive_agreement_weighs_the_bins_from_a_gap_of_0_1_by_their_shares() -> None:
    rec = {
        "gap_edges": [0.0, 0.01, 0.03, 0.1, 0.3, "inf"],
        "gap_shares": [0.6, 0.2, 0.1, 0.075, 0.025],
        "agreement_by_gap": [0.5, 0.7, 0.8, 0.8, 1.0],
    }
    # (0.075 * 0.8 + 0.025 * 1.0) / 0.1 = 0.85
    assert sections_atari.decisive_agreement(rec) == pytest.approx(0.85)
    assert sections_atari.decisive_agreement({**rec, "agreement_by_gap": [0.5, 0.7, 0.8, None, None]}) is None
    assert sections_atari.decisive_agreement({}) is None
    assert sections_atari.near_tie_share(
        [rec, {**rec, "gap_shares": [0.4, 0.2, 0.2, 0.1, 0.1]}]
    ) == pytest.approx(0.5)
    rows = sections_atari.atari_rows([{**_record(1, [0.0]), **rec}], _card([20.0, 20.0], -20.0))
    assert rows[0][8] == "0.850"


def test_atari_students_script_runs_a_cell_and_the_report_shows_it(tmp_path: Path, monkeypatch) -> None:
    import poldist.teachers

    torch.set_num_threads(1)
    # a zoo with a random-weight Pong teacher whose episodes are capped (the cap is recorded)
    zoo = tmp_path / "zoo"
    spec = make_env_spec("ALE/Pong-v5", max_num_frames_per_episode=200)
    torch.manual_seed(0)
    save_model(zoo / "atari" / "pong", QNetwork(nature_dqn(spec.n_actions)), spec)
    (zoo / "atari" / "pong" / "card.json").write_text(json.dumps(_card([1.0, 3.0], -1.0)))
    monkeypatch.setattr(poldist.teachers, "ZOO", zoo)
    monkeypatch.setattr(sections_atari, "ZOO", zoo)
    script = load_script("atari_students")
    monkeypatch.setattr(script, "ZOO", zoo)
    real = script.cell_config

    def tiny(*args, **kwargs):  # the paper recipe, scaled down to seconds
        cfg = real(*args, **kwargs)
        return replace(
            cfg, num_envs=2, learning_starts=64, memory_size=500, batch_size=8, agreement_states=32
        )

    monkeypatch.setattr(script, "cell_config", tiny)
    argv = ["--sizes", "net3", "--variants", "tau1", "--seeds", "1", "--updates", "10", "--episodes", "2"]
    argv += ["--runs", str(tmp_path / "runs"), "--results", str(tmp_path / "results" / "atari")]
    assert script.main(argv) == 0
    raw = (
        tmp_path / "results" / "atari" / "pong" / "raw" / "pong__net3__tau1-0.01k__seed1.json"
    )  # 10 updates: its own budget
    record = json.loads(raw.read_text())
    assert len(record["student_returns"]) == 2 and record["random_score"] == -1.0
    assert record["config"]["tau"] == 1.0 and record["config"]["batch_size"] == 8
    assert record["reference_score"] == 2.0 and raw.with_suffix(".evals.csv").exists()
    ctx = ReportContext(results=tmp_path / "results", out=tmp_path / "RESULTS.md", raw=[])
    text = "\n".join(sections_atari.atari_lines(ctx))
    assert "| net3 |" in text and "(61,954)" in text and "| tau1-0.01k |" in text
    assert "--sizes net3 --variants tau1 --seeds 1 --updates 10 --episodes 2" in text
    assert (tmp_path / "results" / "plots" / "atari_pong_students.png").exists()


def test_atari_students_script_refuses_a_teacher_not_in_the_zoo(tmp_path: Path, monkeypatch) -> None:
    script = load_script("atari_students")
    monkeypatch.setattr(script, "ZOO", tmp_path)
    from poldist.errors import PoldistError

    with pytest.raises(PoldistError, match="not a shipped teacher"):
        script.main(["--teacher", "atari/nothing", "--seeds", "1", "--results", str(tmp_path)])


def test_atari_costs_quote_the_memory_fit_and_the_dqn_bench(tmp_path: Path) -> None:
    assert "not yet measured" in sections_atari.atari_costs(tmp_path)[0]
    (tmp_path / "memory_cost").mkdir()
    fit = {"peak_rss_bytes": {"bytes_per_transition": 8_000.0, "fixed_bytes": 500e6}}
    (tmp_path / "memory_cost" / "atari.json").write_text(json.dumps({"fit": fit}))
    dqn = {
        "settings": "batch 32",
        "steps_per_second": {"poldist-1": 90.0, "bare-1": 60.0},
        "ratio_1_thread": 1.5,
        "peak_rss_mb": {"poldist": 800.0, "bare": 2000.0},
        "memory_rows": 50_000,
    }
    (tmp_path / "bench.json").write_text(json.dumps({"dqn_atari": dqn}))
    memory, speed = sections_atari.atari_costs(tmp_path)
    # 540,000 x 8 KB + 500 MB = 4.82 GB; 1 GB / 8 KB = 125k transitions
    assert "8.0 KB" in memory and "500 MB" in memory and "125k" in memory and "4.8 GB" in memory
    assert (
        "90 against 60 agent steps/s on one thread each (1.50x)" in speed and "800 against 2000 MB" in speed
    )
    assert "on two threads" not in speed  # not measured in this JSON
    dqn["steps_per_second"].update({"poldist-2": 100.0, "poldist-2-overlap": 110.0, "bare-2": 95.0})
    (tmp_path / "bench.json").write_text(json.dumps({"dqn_atari": dqn}))
    speed = sections_atari.atari_costs(tmp_path)[1]
    assert "(1.50x), on two threads 100 (110 with `--overlap-envs`) against 95; peak" in speed


def test_a_teacher_checked_and_not_shipped_is_listed_with_its_reference(tmp_path: Path) -> None:
    folder = tmp_path / "results" / "atari"
    cand = folder / "pong" / "candidates" / "step2200000"
    cand.mkdir(parents=True)
    card = {
        **_card([16.0, 18.0], -20.2),
        "name": "atari/pong",
        "env_steps": 2_200_000,
        "train_wall_seconds": 45_600.0,
    }
    (cand / "card.json").write_text(json.dumps(card))
    (line,) = sections_atari.atari_candidates(folder)
    assert line == (
        "- `atari/pong` at 2,200,000 agent steps (760 min of training): reference score 17.00 "
        "[17.00, 17.00] over 2 episodes, random policy -20.20; not shipped "
        "(`results/atari/pong/candidates/step2200000/`)."
    )


def test_a_teacher_from_an_sb3_file_gets_its_yardstick_and_its_report_rows(
    tmp_path: Path, monkeypatch
) -> None:
    """Issue 19 part 3's path: an SB3 zip, scored once on the reserved seeds, then distilled."""
    import gymnasium as gym
    import numpy as np
    from stable_baselines3 import PPO

    class PongLike(gym.Env):  # what SB3 sees behind the Atari wrappers: (84, 84, 4) uint8, 6 actions
        observation_space = gym.spaces.Box(0, 255, (84, 84, 4), np.uint8)
        action_space = gym.spaces.Discrete(6)

        def reset(self, *, seed=None, options=None):
            return self.observation_space.sample(), {}

        def step(self, action):
            return self.observation_space.sample(), 0.0, False, False, {}

    import poldist.external

    torch.set_num_threads(1)
    # episodes capped at 200 frames (recorded in the env spec), as the zoo teacher's above
    capped = poldist.external.make_env_spec
    monkeypatch.setattr(
        poldist.external, "make_env_spec", lambda i, **kw: capped(i, **kw, max_num_frames_per_episode=200)
    )
    teacher = tmp_path / "sb3" / "ppo-PongNoFrameskip-v4.zip"  # RL Zoo's name: the env comes from it
    PPO("CnnPolicy", PongLike(), n_steps=8, batch_size=8, seed=0, device="cpu").save(teacher)
    log = [{"from_steps": 0, "to_steps": 5000, "wall_seconds": 7200.0, "command": "python train.py"}]
    (teacher.parent / "train_log.json").write_text(json.dumps(log))
    script = load_script("atari_students")
    real = script.cell_config
    monkeypatch.setattr(
        script,
        "cell_config",
        lambda *a, **k: __import__("dataclasses").replace(
            real(*a, **k), num_envs=2, learning_starts=64, memory_size=500, batch_size=8, agreement_states=32
        ),
    )
    argv = ["--teacher", str(teacher), "--sizes", "net3", "--variants", "tau1", "--seeds", "1"]
    argv += ["--updates", "10", "--episodes", "2", "--reference-episodes", "2"]
    argv += ["--runs", str(tmp_path / "runs"), "--results", str(tmp_path / "results" / "atari")]
    from poldist.errors import PoldistError

    with pytest.raises(PoldistError, match="needs --name"):
        script.main(argv)
    assert script.main([*argv, "--name", "sb3-pong"]) == 0
    card = json.loads((tmp_path / "results" / "atari" / "sb3-pong" / "teacher_card.json").read_text())
    assert card["reference"]["episodes"] == 2 and len(card["reference"]["returns"]) == 2
    assert card["env_id"] == "ALE/Pong-v5" and card["training_log"] == log
    assert card["output_kind"] == "logits"  # PPO's policy: the section speaks of logits, not Q-values
    record = json.loads(
        (
            tmp_path / "results" / "atari" / "sb3-pong" / "raw" / "sb3-pong__net3__tau1-0.01k__seed1.json"
        ).read_text()
    )
    assert record["reference_score"] == card["reference"]["mean"]
    assert record["random_score"] == card["random_policy"]["mean"]
    ctx = ReportContext(results=tmp_path / "results", out=tmp_path / "RESULTS.md", raw=[])
    text = "\n".join(sections_atari.atari_lines(ctx))
    assert "### sb3-pong" in text and "brought from elsewhere" in text and card["sha256"][:12] in text
    assert "trained by its own trainer for 5,000 env steps in 2.0 hours" in text
    assert f"--teacher {teacher} --name sb3-pong --sizes net3" in text
    assert "KL at tau 1 on the teacher's action logits" in text and "two best logits differ" in text
    assert "Q-values" not in text and "MinAtar recipe's" not in text


def test_take_off_is_the_first_evaluation_halfway_to_the_teacher(tmp_path: Path) -> None:
    curve = [
        {"updates": 0.0, "score": -21.0},
        {"updates": 3000.0, "score": 0.0},
        {"updates": 6000.0, "score": 5},
    ]
    assert sections_atari.take_off(curve, 0.0) == 3000
    assert sections_atari.take_off(curve, 6.0) is None

    def rec(seed: int, scores: list[float], size: str = "net2") -> dict:
        path = tmp_path / f"{size}-{seed}.evals.csv"
        rows = "".join(f"{3000 * i},{s}\n" for i, s in enumerate(scores))
        path.write_text("updates,score\n" + rows)
        return {**_record(seed, [0.0], size), "curve_file": path, "config": {"eval_episodes": 4}}

    card = _card([19.0, 21.0], -20.0)  # halfway: 0.0
    text = sections_atari.take_off_text(
        [rec(2, [-21, -1, 0.0]), rec(1, [-21, 3]), rec(1, [-21, -21], "net1"), rec(0, [5])], card
    )
    assert "(4 episodes) at or above halfway between the random policy and the teacher (0.00)" in text
    assert text.endswith("net1 `tau0.01` never; net2 `tau0.01` 3k, 6k.")  # seed 0 (tuning) left out
    assert sections_atari.take_off_text([rec(0, [5])], card) == ""


def test_the_tuning_text_ranks_the_seed_0_variants_of_each_size() -> None:
    recs = [
        _record(0, [6.0, 7.0], variant="tau0.01"),
        _record(0, [15.0, 16.0], variant="tau0.01-90k"),
        _record(0, [-21.0, -20.0], variant="tau0.01-cosine"),
        _record(0, [1.0, 1.0], size="net1"),  # one variant: nothing to compare
        _record(1, [20.0, 20.0], variant="tau1"),  # a fresh seed: not tuning
    ]
    text = sections_atari.tuning_text(recs)
    assert text.startswith("Tuning on run seed 0 (final score over 2 episodes, best first): net2: ")
    assert "`tau0.01-90k` 15.50, `tau0.01` 6.50, `tau0.01-cosine` -20.50 (best: `tau0.01-90k`)." in text
    assert "net1" not in text
    assert sections_atari.tuning_text(recs[3:]) == ""


def test_an_sb3_teacher_trained_over_several_runs_is_described_with_all_of_them(tmp_path: Path) -> None:
    # train_sb3_pong.py's log: each segment (a session's run, killed or finished) rewritten as it goes
    script = load_script("train_sb3_pong")
    path = tmp_path / "train_log.json"
    first = script.SegmentLog(path, 0, "python scripts/train_sb3_pong.py --total-steps 300")
    first.write(100)
    first.write(200)  # the same segment, further on: rewritten, not appended
    second = script.SegmentLog(path, 200, "python scripts/train_sb3_pong.py --total-steps 300")
    second.write(300, finished=True)
    log = json.loads(path.read_text())
    assert [(e["from_steps"], e["to_steps"], e["finished"]) for e in log] == [
        (0, 200, False),
        (200, 300, True),
    ]
    assert not path.with_name("train_log.json.tmp").exists()

    log[0]["wall_seconds"], log[1]["wall_seconds"] = 1800.0, 5400.0
    card = {"name": "runs/sb3-pong/ppo.zip", "sha256": "ab" * 32, "parameters": 1234, "training_log": log}
    text = sections_atari.external_teacher_text(
        card, tmp_path / "results" / "atari" / "sb3-pong" / "card.json"
    )
    assert "sha256 abababababab, 1,234 parameters; yardstick: `atari/sb3-pong/card.json`" in text
    assert "for 300 env steps in 2.0 hours over 2 runs, each resumed from the last one's checkpoint" in text
    assert text.endswith("(`python scripts/train_sb3_pong.py --total-steps 300`)")


def test_an_sb3_run_carries_its_newest_weights_across_machines(tmp_path: Path) -> None:
    # train_sb3_pong.py --carry: half-precision weights with their env steps and the log go to a
    # committed folder at every checkpoint, and a fresh machine starts from them
    import torch

    script = load_script("train_sb3_pong")
    carry, log = tmp_path / "carry", tmp_path / "train_log.json"
    assert script.carried(carry) is None
    w = torch.tensor([[0.1, -2.0], [3.0, 1e-4]])
    state = {"w": w, "pi.w": w, "n": torch.tensor([7])}  # "pi.w": a shared tensor, as SB3 lists
    log.write_text("[1]")
    script.carry_out(state, 100_000, log, carry)
    state["w"] = state["pi.w"] = w * 2
    log.write_text("[2]")
    script.carry_out(state, 200_000, log, carry)  # replaces the last one
    assert sorted(f.name for f in carry.iterdir()) == ["policy-fp16.safetensors", "train_log.json"]
    assert (carry / "train_log.json").read_text() == "[2]"
    weights, steps = script.carried(carry)
    assert steps == 200_000 and weights["n"].tolist() == [7] and weights["w"].dtype == torch.float32
    assert torch.equal(weights["w"], state["w"].half().float())  # half precision, nothing else lost
    assert torch.equal(weights["pi.w"], weights["w"])  # the shared tensor is written once, read back twice


def test_an_external_teacher_continued_from_carried_weights_says_so(tmp_path: Path) -> None:
    log = [
        {"to_steps": 100, "wall_seconds": 3600.0, "command": "python scripts/train_sb3_pong.py"},
        {
            "to_steps": 200,
            "wall_seconds": 3600.0,
            "start": "carried half-precision weights, fresh optimizer state",
        },
    ]
    card = {"name": "ppo.zip", "sha256": "ab" * 32, "parameters": 1, "training_log": log}
    text = sections_atari.external_teacher_text(card, tmp_path / "results" / "atari" / "x" / "card.json")
    assert (
        "over 2 runs, each resumed from the last one's checkpoint (1 of them from its half-precision weights"
        in text
    )


def test_a_finished_sb3_run_is_rebuilt_from_its_carry_without_touching_it(tmp_path: Path) -> None:
    # a fresh machine after the run finished: the same command only writes the zip from the carried
    # weights; the committed carry and its log stay as they were (no segment of no steps)
    pytest.importorskip("stable_baselines3")
    import gymnasium as gym
    import numpy as np
    from stable_baselines3 import PPO

    from poldist.external import read_sb3_model

    class PongLike(gym.Env):  # Pong's spaces behind SB3's Atari wrappers
        observation_space = gym.spaces.Box(0, 255, (84, 84, 4), np.uint8)
        action_space = gym.spaces.Discrete(6)

    torch.set_num_threads(1)
    script = load_script("train_sb3_pong")
    carry, out = tmp_path / "carry", tmp_path / "out"
    log = tmp_path / "train_log.json"
    log.write_text(json.dumps([{"from_steps": 0, "to_steps": 300, "finished": True}]))
    policy = PPO("CnnPolicy", PongLike(), n_steps=8, batch_size=8, seed=0, device="cpu").policy
    script.carry_out(policy.state_dict(), 300, log, carry)
    before = {f.name: f.read_bytes() for f in carry.iterdir()}
    assert (
        script.main(["--total-steps", "300", "--out", str(out), "--carry", str(carry), "--threads", "1"]) == 0
    )
    assert {f.name: f.read_bytes() for f in carry.iterdir()} == before
    assert (out / "train_log.json").read_bytes() == before["train_log.json"]
    rebuilt = read_sb3_model(out / "ppo-PongNoFrameskip-v4.zip").net.state_dict()
    assert torch.equal(rebuilt["heads.0.weight"], policy.state_dict()["action_net.weight"].half().float())
