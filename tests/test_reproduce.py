"""The reproduction experiments (cells, raw records, resumable runs) and ``poldist report``."""

from __future__ import annotations

import json
from dataclasses import asdict, replace

import numpy as np
import pytest

from poldist.cli import main
from poldist.errors import PoldistError
from poldist.experiments.report import write_report
from poldist.experiments.report_stats import aggregate_intervals, seed_matrix
from poldist.experiments.reproduce import (
    BUDGET,
    DQN_BUDGET,
    GAMES,
    Cell,
    experiment_cells,
    run_cell,
    run_experiment,
    run_online,
)
from poldist.online import OnlineConfig
from poldist.zoo import reference_returns

TINY = replace(
    BUDGET,
    updates=40,
    batch_size=16,
    learning_starts=200,
    transitions_per_update=1.0,
    memory_size=1_000,
    eval_interval=40,
    eval_episodes=1,
    final_eval_episodes=2,
    agreement_states=64,
    checkpoint_interval=40,
    num_envs=2,
)


def test_cells_cover_the_papers_grid() -> None:
    losses = experiment_cells("losses", [0, 1, 2])
    comp = experiment_cells("compression", [0, 1, 2])
    assert len(losses) == len(GAMES) * 5 * 3 and len(comp) == len(GAMES) * 4 * 3
    assert len({c.name for c in losses}) == len(losses)
    # compression runs under its own, longer budget, so it shares no run with losses
    assert not {c.name for c in losses} & {c.name for c in comp}
    assert {c.budget for c in comp} == {"40k"} and comp[0].config().updates == 4 * BUDGET.updates
    assert comp[0].name == "asterix__teacher__kl-tau0.01__40k__seed0"
    # the KL(0.01) teacher-size student is one run shared by losses and control
    shared = {c.name for c in losses} & {c.name for c in experiment_cells("control", [0, 1, 2])}
    assert shared == {Cell(g, "teacher", "kl", 0.01, s).name for g in GAMES for s in (0, 1, 2)}
    # seed-major: every cell of seed 0 comes before any of seed 1
    assert [c.seed for c in losses[: len(GAMES) * 5]] == [0] * len(GAMES) * 5
    assert Cell("breakout", "net2", "kl", 0.1, 3).name == "breakout__net2__kl-tau0.1__seed3"
    assert Cell("breakout", loss="nll", tau=0.5).config().tau == 0.0


def test_control_and_kickstart_cells() -> None:
    control = experiment_cells("control", [0])
    assert len(control) == len(GAMES) * 6
    assert {c.variant for c in control} == {
        "kl-tau0.01",  # the paper's teacher-driven KL: the losses experiment's cell
        "kl-tau0.01+student",
        "kl-tau0.01+mixed",
        "erd-tau0.01",
        "erd-tau0.01+student",
        "erd-tau0.01+mixed",
    }
    kick = experiment_cells("kickstart", [0], ["breakout"])
    assert [c.variant for c in kick] == [
        "kl-tau0.01",
        "dqn-lr0.0005",
        "kickstart-mse-lr0.0005",
        "dqn",
        "kickstart-kl-tau0.01",
    ]
    assert kick[0].name == "breakout__net1__kl-tau0.01__seed0"  # standard budget
    cfg = kick[2].dqn_config(DQN_BUDGET)
    assert cfg.kickstart_teacher == "minatar/breakout" and cfg.network == "8/64"  # the legacy net1
    assert cfg.kickstart_loss == "mse" and cfg.lr == 5e-4  # the variant's own lr
    assert cfg.env_id == "MinAtar/Breakout-v1" and kick[1].dqn_config(DQN_BUDGET).kickstart_teacher == ""
    assert kick[1].dqn_config(DQN_BUDGET).lr == 5e-4  # each kickstart variant has its DQN baseline
    assert kick[3].dqn_config(DQN_BUDGET).lr == kick[4].dqn_config(DQN_BUDGET).lr == DQN_BUDGET.lr
    # the first design's cells come after every seed of the others
    two = [c.name for c in experiment_cells("kickstart", [0, 1], ["breakout"])]
    assert two[-4:] == [
        "breakout__net1__dqn__seed0",
        "breakout__net1__kickstart-kl-tau0.01__seed0",
        "breakout__net1__dqn__seed1",
        "breakout__net1__kickstart-kl-tau0.01__seed1",
    ]


def test_kickstart_experiment_runs_dqn_cells(tmp_path) -> None:
    tiny_dqn = replace(
        DQN_BUDGET,
        total_steps=2_000,
        learning_starts=500,
        buffer_size=2_000,
        eval_interval=1_000,
        eval_episodes=1,
        checkpoint_interval=1_000,
    )
    results = tmp_path / "results" / "reproduce"
    records = run_experiment(
        "kickstart",
        [0],
        games=["breakout"],
        runs=tmp_path / "runs",
        results=results,
        budget=TINY,
        dqn_budget=tiny_dqn,
    )
    by = {r["variant"]: r for r in records}
    assert by["dqn"]["transitions"] == 2_000 and by["kickstart-kl-tau0.01"]["transitions"] == 2_000
    assert by["dqn"]["student_params"] == by["kl-tau0.01"]["student_params"]  # the same net1
    assert by["kickstart-kl-tau0.01"]["command"] == "poldist reproduce kickstart --games breakout --seeds 0"
    assert by["kickstart-mse-lr0.0005"]["config"]["lr"] == 5e-4
    assert len(list((results / "raw").glob("*.evals.csv"))) == 5
    text = write_report(tmp_path / "results", tmp_path / "RESULTS.md").read_text()
    kick = text[text.index("### Kickstarting") :]
    heads = "| dqn-lr0.0005 | kickstart-mse-lr0.0005 | dqn | kickstart-kl tau 0.01 | kl tau 0.01 |"
    assert f"| game | teacher score {heads}" in kick
    lrs = "dqn 0.0001, dqn-lr0.0005 0.0005, kickstart-kl-tau0.01 0.0001, kickstart-mse-lr0.0005 0.0005"
    assert f"Adam learning rates: {lrs})" in kick
    assert "![kickstart over env steps](results/plots/kickstart_curves.png)" in kick
    assert (tmp_path / "results" / "plots" / "kickstart_curves.png").stat().st_size > 0
    assert "No raw results yet: `poldist reproduce control" in text  # only the shared cell is there


def test_a_raw_file_from_another_budget_is_not_reused(tmp_path) -> None:
    runs, results, cell = tmp_path / "runs", tmp_path / "results", Cell("freeway")
    rec = run_cell(cell, runs, results, budget=TINY)
    assert run_cell(cell, runs, results, budget=TINY) == rec  # same budget: skipped
    with pytest.raises(PoldistError, match=r"another budget \(updates 40 != 80"):
        run_cell(cell, runs, results, budget=replace(TINY, updates=80))
    with pytest.raises(PoldistError, match="unknown budget"):
        Cell("freeway", budget="1M").config()


def test_a_cell_killed_before_its_first_checkpoint_starts_again(tmp_path) -> None:
    runs, results, cell = tmp_path / "runs", tmp_path / "results", Cell("freeway")
    (runs / cell.name / "tb").mkdir(parents=True)  # what a kill before the first checkpoint leaves
    (runs / cell.name / "config.json").write_text("{}")
    rec = run_cell(cell, runs, results, budget=TINY)
    assert rec["updates"] == 40 and (runs / cell.name / "state" / "meta.json").exists()


def test_bad_experiment_or_game_fails_clearly() -> None:
    with pytest.raises(PoldistError, match="unknown experiment"):
        experiment_cells("speed", [0])
    with pytest.raises(PoldistError, match="unknown games"):
        experiment_cells("losses", [0], ["pong"])
    assert main(["reproduce", "losses", "--seeds", "a,b", "--games", "breakout"]) == 2


def test_runs_write_raw_records_and_are_skipped_when_done(tmp_path) -> None:
    runs, results = tmp_path / "runs", tmp_path / "results" / "reproduce"
    records = run_experiment("compression", [0], games=["breakout"], runs=runs, results=results, budget=TINY)
    assert [r["student"] for r in records] == ["teacher", "net1", "net2", "net3"]
    raw = sorted((results / "raw").glob("*.json"))
    assert len(raw) == 4 and len(list((results / "raw").glob("*.evals.csv"))) == 4
    r = json.loads(raw[0].read_text())
    assert r["updates"] == 40 and r["batch_size"] == 16 and r["transitions"] >= 240
    assert r["machine"]["cpu_model"]  # which CPU made the number (one seed's floats differ by CPU)
    assert r["percent_of_teacher"] == pytest.approx(100 * r["student_score"] / r["teacher_score"])
    commands = {x["student"]: x["command"] for x in map(json.loads, (p.read_text() for p in raw))}
    assert commands["net2"] == "poldist reproduce compression --games breakout --seeds 0 --protocol legacy"
    assert commands["teacher"] == "poldist reproduce compression --games breakout --seeds 0 --protocol legacy"
    params = {x["student"]: x["student_params"] for x in records}
    assert params["teacher"] > params["net1"] > params["net2"] > params["net3"]
    # a second call does no work: same records, no new run directories
    before = sorted(p.name for p in runs.iterdir())
    again = run_experiment("compression", [0], games=["breakout"], runs=runs, results=results, budget=TINY)
    assert again == records and sorted(p.name for p in runs.iterdir()) == before
    # sharding splits the cells between processes
    part = run_experiment(
        "compression", [0], games=["breakout"], runs=runs, results=results, budget=TINY, shard=(1, 2)
    )
    assert [x["student"] for x in part] == ["net1", "net3"]

    # the report turns them into a table and plots
    for rec in records:  # a second seed, made up, so the CI and the aggregates have two runs
        fake = dict(rec, seed=1, percent_of_teacher=rec["percent_of_teacher"] + 10)
        (results / "raw" / f"{Cell(rec['game'], rec['student'], seed=1, budget='40k').name}.json").write_text(
            json.dumps(fake)
        )
    out = write_report(tmp_path / "results", tmp_path / "RESULTS.md")
    text = out.read_text()
    assert "## 2. Compression" in text and "net3 (" in text
    assert "Budget per student: 40 updates" in text
    assert "No results of this setting yet: `python scripts/multitask_minatar.py --seed S" in text
    assert (tmp_path / "results" / "plots" / "compression_curve.png").exists()
    assert "](results/plots/compression_curve.png)" in text


def test_seed_matrix_keeps_seeds_every_game_has() -> None:
    recs = [
        {"game": "a", "seed": 0, "percent_of_teacher": 90.0},
        {"game": "b", "seed": 0, "percent_of_teacher": 40.0},
        {"game": "a", "seed": 1, "percent_of_teacher": 70.0},
    ]
    m, seeds = seed_matrix(recs, ["a", "b"])
    assert seeds == [0] and m.tolist() == [[90.0, 40.0]]


def test_aggregates_against_hand_computed_values() -> None:
    # two games, two runs: per-game means 100 and 25 -> geometric mean 50
    m = np.array([[90.0, 20.0], [110.0, 30.0]])
    agg = aggregate_intervals({"kl": m, "const": np.full((3, 4), 80.0)})
    assert agg["kl"]["geomean"][0] == pytest.approx(50.0)
    # IQM of [90, 20, 110, 30]: the middle half is [30, 90] -> 60
    assert agg["kl"]["iqm"][0] == pytest.approx(60.0)
    lo, hi = agg["kl"]["geomean"][1:]
    assert lo <= 50.0 <= hi and lo < hi
    assert agg["const"]["iqm"] == pytest.approx([80.0, 80.0, 80.0])
    assert agg["const"]["geomean"] == pytest.approx([80.0, 80.0, 80.0])
    # the report is reproducible: same numbers on a second call
    assert aggregate_intervals({"kl": m}) == {"kl": agg["kl"]}


def test_online_experiment_keeps_each_seeds_small_files(tmp_path) -> None:
    cfg = OnlineConfig(
        total_steps=4_000, interval=2_000, updates_per_interval=40, memory_size=1_000, eval_episodes=1
    )
    done = run_online([3], runs=tmp_path / "runs", results=tmp_path / "results" / "online", cfg=cfg)
    assert done == [tmp_path / "results" / "online" / "breakout-seed3"]
    assert {p.name for p in done[0].iterdir()} == {"online.csv", "online.png", "summary.json", "config.json"}
    assert json.loads((done[0] / "config.json").read_text())["seed"] == 3
    assert run_online([3], runs=tmp_path / "runs", results=tmp_path / "results" / "online", cfg=cfg) == done
    text = write_report(tmp_path / "results", tmp_path / "RESULTS.md").read_text()
    assert "Command: `poldist reproduce online --seeds 3`" in text and "Here: seed 3: " in text
    assert (tmp_path / "results" / "plots" / "online.png").exists()


@pytest.fixture
def card_yardstick(monkeypatch):
    """Made-up multi-task numbers use the shipped games' names: keep their own teacher scores as the
    yardstick (tests/test_study.py checks the rescoring against reference scores)."""
    from poldist.experiments import report_stats

    monkeypatch.setattr(report_stats, "reference_mean", lambda teacher: None)


def test_report_multitask_table_and_target(tmp_path, card_yardstick) -> None:
    """Two seeds of made-up multi-task results: per-game table, aggregates, the target verdict."""
    games = ["minatar/breakout", "minatar/freeway"]
    for seed, (kl, dqn) in enumerate([((90.0, 100.0), (50.0, 60.0)), ((96.0, 98.0), (40.0, 70.0))]):
        per_game = {
            g: {
                "teacher_score": 10.0,
                "multi_dist_kl": kl[i] / 10,
                "multi_dist_kl_percent": kl[i],
                "multi_dqn": dqn[i] / 10,
                "multi_dqn_percent": dqn[i],
            }
            for i, g in enumerate(games)
        }
        out = tmp_path / "results" / "multitask" / f"seed{seed}"
        out.mkdir(parents=True)
        (out / "results.json").write_text(json.dumps({"per_game": per_game, "episodes": 100}))
    text = write_report(tmp_path / "results", tmp_path / "RESULTS.md").read_text()
    section = text[text.index("## 3. Multi-task") : text.index("## 4.")]
    assert "| minatar/breakout | 10.00 | 9.30 (93.0% [90.0, 96.0]) | 4.50 (45.0% [40.0, 50.0]) |" in section
    assert "| seeds |  | 2 | 2 |" in section
    assert np.exp(np.mean(np.log([93.0, 99.0]))) == pytest.approx(95.95, abs=0.01)  # per-game means
    # per seed, geometric means 94.9 and 97.0 (KL), 54.8 and 52.9 (DQN): below 100, above the DQN
    assert "multi-dist-kl 96.0% [" in section
    assert "not met (the interval lies below it); against the multi-task DQN's 54.1% [" in section
    assert "above it, the intervals apart." in section
    # an exploration (one seed, another setting) is a line with the command that makes it
    explore = tmp_path / "results" / "multitask" / "explore-wide"
    explore.mkdir()
    students = {"multi_dist_kl": {"tau": 0.1, "head_hidden": 128, "student": "32/256", "params": 1234567}}
    per_game = {g: {"multi_dist_kl_percent": 90.0} for g in games}
    (explore / "results.json").write_text(
        json.dumps(
            {"per_game": per_game, "geometric_mean_percent": {"multi_dist_kl": 90.0}, "students": students}
        )
    )
    text = write_report(tmp_path / "results", tmp_path / "RESULTS.md").read_text()
    assert (
        "- Exploration (multi_dist_kl, tau 0.1, 128-unit per-game layer, student 32/256 (1,234,567 params)): "
        "**90.0%** geometric mean (breakout 90.0%, freeway 90.0%); `python scripts/multitask_minatar.py "
        "--skip-dqn --losses kl --tau 0.1 --head-hidden 128 --student 32/256 "
        "--out results/multitask/explore-wide`"
    ) in text
    # a newer exploration records its command, the DQN's line names no temperature
    linear = tmp_path / "results" / "multitask" / "explore-linear"
    linear.mkdir()
    cmd = "python scripts/multitask_minatar.py --head-hidden 0 --out results/multitask/explore-linear"
    per_game = {g: {"multi_dqn_percent": 50.0} for g in games}
    students = {"multi_dqn": {"run": "multi-dqn", "head_hidden": 0}}
    (linear / "results.json").write_text(
        json.dumps(
            {
                "per_game": per_game,
                "geometric_mean_percent": {"multi_dqn": 50.0},
                "students": students,
                "command": cmd,
            }
        )
    )
    text = write_report(tmp_path / "results", tmp_path / "RESULTS.md").read_text()
    assert (
        "- Exploration (multi_dqn, linear heads): **50.0%** geometric mean "
        f"(breakout 50.0%, freeway 50.0%); `{cmd}`"
    ) in text
    # a recipe's student with a temperature per game says both
    gap = tmp_path / "results" / "multitask" / "explore-recipe-gap"
    gap.mkdir()
    students = {"multi_dist_kl": {"tau": 1.0, "tau_gap": 20.0, "recipe": "minatar", "head_hidden": 128}}
    per_game = {g: {"multi_dist_kl_percent": 100.0} for g in games}
    (gap / "results.json").write_text(
        json.dumps({"per_game": per_game, "students": students, "command": cmd})
    )
    text = write_report(tmp_path / "results", tmp_path / "RESULTS.md").read_text()
    assert (
        "- Exploration (multi_dist_kl, the minatar recipe, tau 20x each teacher's median top-2 gap, "
        "128-unit per-game layer): **100.0%**"
    ) in text


def test_online_tracking_by_hand(tmp_path) -> None:
    """Points in the first 10% are left out; the ratio is of summed scores; ties count as 'at'."""
    from poldist.experiments.sections_other import online_tracking

    run = tmp_path / "breakout-seed4"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"seed": 4}))
    rows = [(100, 0.0, 5.0), (500, 2.0, 1.0), (800, 4.0, 4.0), (1000, 6.0, 9.0)]  # steps, teacher, student
    lines = ["teacher_env_steps,teacher_score,student_score"] + [f"{a},{b},{c}" for a, b, c in rows]
    (run / "online.csv").write_text("\n".join(lines) + "\n")
    text = online_tracking([run / "online.csv"])
    # kept: steps 500, 800, 1000 -> student 14 / teacher 12 = 117%; at or above at 800 and 1000
    assert "seed 4: 117% of the teacher's score summed over the 3 points" in text
    assert "at or above it at 2 of them" in text


def test_gaps_note_states_what_the_data_say(tmp_path) -> None:
    """The note's comparisons come from the records, not from the text."""
    from poldist.experiments.sections_single_game import _gaps_note

    gaps = tmp_path / "gaps.json"
    gaps.write_text(
        json.dumps({"teachers": {"minatar/a": {"median_gap": 0.02}, "minatar/b": {"median_gap": 0.2}}})
    )
    records = [
        {"game": g, "variant": v, "percent_of_teacher": p}
        for g, v, p in [("b", "kl-tau0.01", 80.0), ("b", "kl-tau1", 90.0), ("a", "kl-tau0.01", 99.0)]
    ]
    agg = {"nll": {"geomean": [70.0, 0, 0]}, "kl-tau1": {"geomean": [88.0, 0, 0]}}
    text = _gaps_note(gaps, records, {"variants": ["nll", "kl-tau1", "kl-tau0.01"], "aggregates": agg})
    assert "a 0.020, b 0.200" in text
    assert "On b, the game with the largest median gap, the best KL temperature here is 1 (90.0%)." in text
    assert "reaches 70.0% against KL tau 1's 88.0%" in text
    assert "to add them here" in _gaps_note(
        tmp_path / "none.json", records, {"variants": [], "aggregates": {}}
    )


def test_kickstart_check_table_by_hand(tmp_path) -> None:
    """One table per run length; rows grouped by lr; the experiment's own cells of that length
    and the plain-distillation reference come from the raw records."""
    from poldist.experiments.sections_single_game import kickstart_check_section

    assert kickstart_check_section(tmp_path / "missing", [], tmp_path) == []
    check, raw_dir = tmp_path / "check", tmp_path / "raw"
    check.mkdir()
    raw_dir.mkdir()
    base = {"kickstart_teacher": "minatar/a", "kickstart_loss": "kl", "kickstart_weight": 100.0}
    base |= {"seed": 3, "total_steps": 100_000, "eval_interval": 50_000}
    for name, config, scores in [
        ("kl-w100", {**base, "lr": 5e-4}, [3.0, 4.5]),
        ("dqn", {**base, "kickstart_teacher": "", "lr": 1e-4}, [1.0, 2.0]),
    ]:
        evals = [{"env_steps": s, "score": v} for s, v in zip((50_000, 100_000), scores)]
        record = {"variant": name, "game": "a", "decay": 100.0, "config": config, "evals": evals}
        (check / f"a__{name}.json").write_text(json.dumps(record))
    raw = [
        {"game": "a", "seed": 3, "student": "net1", "variant": "kl-tau0.01", "budget": "", "updates": 10_000,
         "batch_size": 256, "config": {"optimizer": "rmsprop", "lr": 1e-3}, "student_score": 7.0,
         "teacher_score": 9.0, "method": "distill", "loss": "kl", "tau": 0.01},
        {"game": "a", "seed": 3, "student": "net1", "variant": "dqn", "method": "dqn", "loss": "kl",
         "tau": 0.01, "config": {**base, "kickstart_teacher": "", "lr": 1e-4}},
    ]  # fmt: skip
    (raw_dir / "a__net1__dqn__seed3.evals.csv").write_text("env_steps,score\n50000,0.5\n100000,1.5\n")
    text = "\n".join(kickstart_check_section(check, raw, raw_dir))
    assert (
        "a, seed 3, 100,000 env steps, kickstart weight held nearly constant (99% of its start at the end)"
        in text
    )
    from poldist.experiments.sections_single_game import _weight_schedule

    assert _weight_schedule(0.5) == "falling to 0 over the first 50% of the run"
    assert _weight_schedule(1.0) == "falling to 0 over the whole run"
    assert "--variants dqn,kl-w100 --steps 100000 --eval-interval 50000 --decay 100 --seed 3`" in text
    assert "| variant | kickstart loss | weight | lr | score at 50,000 | score at 100,000 |" in text
    dqn = "| dqn | - | 0 | 0.0001 | 1.00 | 2.00 |"
    section5 = "| dqn (section 5) | - | 0 | 0.0001 | 0.50 | 1.50 |"
    kick = "| kl-w100 | kl | 100 | 0.0005 | 3.00 | 4.50 |"
    assert text.index(dqn) < text.index(section5) < text.index(kick)  # by lr, then name
    assert "10,000 updates of 256, rmsprop lr 0.001, seed 3) scores 7.00; the teacher 9.00." in text


def test_ranking_says_which_neighbours_the_intervals_cannot_separate() -> None:
    from poldist.experiments.sections_single_game import _ranking

    agg = {"b": {"geomean": [80.0, 70.0, 86.0]}, "a-tau1": {"geomean": [90.0, 85.0, 95.0]}}
    agg["c"] = {"geomean": [50.0, 40.0, 60.0]}
    text = _ranking("Wins", {"variants": ["c", "b", "a-tau1"], "aggregates": agg})
    assert text.startswith("Wins (the seeds so far): a tau 1 (90.0%) > b (80.0%) > c (50.0%).")
    assert text.endswith("Not separated by the 95% intervals of the geometric mean: a tau 1 / b.")


def test_kickstart_ahead_counts_by_hand(tmp_path) -> None:
    """Seed means per evaluation; only seeds both variants have and steps every run evaluated."""
    from poldist.experiments.sections_single_game import kickstart_ahead

    curves = {  # (variant, seed) -> scores at steps 100, 200 (and 300 for one run only)
        ("kickstart-mse-lr0.0005", 0): [4.0, 1.0, 9.0],
        ("kickstart-mse-lr0.0005", 1): [2.0, 3.0],
        ("dqn-lr0.0005", 0): [1.0, 2.0],
        ("dqn-lr0.0005", 1): [2.0, 3.0],
        ("dqn-lr0.0005", 2): [0.0, 0.0],  # no kickstart seed 2: left out
    }
    records = []
    for (variant, seed), scores in curves.items():
        method, lr = variant.split("-lr")[0].split("-")[0], 0.0005
        cell = Cell("breakout", "net1", loss="mse", seed=seed, method=method, lr=lr)
        assert cell.variant == variant
        rows = ["env_steps,score"] + [f"{100 * (i + 1)},{x}" for i, x in enumerate(scores)]
        (tmp_path / f"{cell.name}.evals.csv").write_text("\n".join(rows) + "\n")
        records.append({**asdict(cell), "variant": variant})
    # step 100: kick mean 3.0 > dqn 1.5; step 200: 2.0 < 2.5; step 300: not every run has it
    assert "kickstart-mse-lr0.0005 vs dqn-lr0.0005: breakout 1 of 2 (2 seeds)." in kickstart_ahead(
        records, tmp_path
    )
    assert kickstart_ahead([], tmp_path) == ""


def test_status_table_counts_what_exists(tmp_path) -> None:
    from poldist.experiments.report import status_table

    raw = tmp_path / "reproduce" / "raw"
    raw.mkdir(parents=True)
    for cell in experiment_cells("losses", [1])[:3]:
        (raw / f"{cell.name}.json").write_text("{}")
    mt = tmp_path / "multitask" / "seed0"
    mt.mkdir(parents=True)
    (mt / "results.json").write_text(json.dumps({"per_game": {"minatar/breakout": {"multi_dist_kl": 1.0}}}))
    (tmp_path / "online" / "breakout-seed2").mkdir(parents=True)
    (tmp_path / "online" / "breakout-seed2" / "summary.json").write_text("{}")
    table = status_table(tmp_path)
    assert (
        "| losses (legacy) | 0/25 | 3/25 | 0/25 | "
        "`poldist reproduce losses --seeds 0,1,2 --protocol legacy` |" in table
    )
    assert "| losses (fresh) | 0/25 | 0/25 | 0/25 | `poldist reproduce losses --seeds 0,1,2` |" in table
    assert "| control (legacy) | 0/30 | 1/30 | 0/30 | `poldist reproduce control --seeds 0,1,2` |" in table
    assert "| multi-task | 1/3 | 0/3 | 0/3 |" in table
    assert "| online | 0/1 | 0/1 | 1/1 done |" in table


def test_report_multitask_methods_from_any_seed(tmp_path, card_yardstick) -> None:
    """A seed whose DQN is still running does not hide another seed's DQN column."""
    from poldist.experiments.sections_multitask import multitask_section

    paths = []
    for seed, methods in enumerate([("multi_dist_kl",), ("multi_dist_kl", "multi_dqn")]):
        per_game = {"minatar/breakout": {"teacher_score": 10.0}}
        for m in methods:
            per_game["minatar/breakout"] |= {m: 8.0 + seed, f"{m}_percent": 80.0 + 10 * seed}
        path = tmp_path / f"seed{seed}" / "results.json"
        path.parent.mkdir()
        path.write_text(json.dumps({"per_game": per_game}))
        paths.append(path)
    table, agg = multitask_section(paths)
    assert "| minatar/breakout | 10.00 | 8.50 (85.0% [80.0, 90.0]) | 9.00 (90.0%) |" in table
    assert "| seeds |  | 2 | 1 |" in table and set(agg) == {"multi_dist_kl", "multi_dqn"}


def test_multitask_checks_compare_with_single_game_distillation(tmp_path, card_yardstick) -> None:
    """The 'what we checked' text: multi-task vs single-game percent per game, the reading
    (within 3 points or not), per-seed geometric means and the linear-heads exploration."""
    from poldist.experiments.sections_multitask import _multitask_checks

    agg = {
        "multi_dist_kl": {"geomean": [80.0, 0, 0], "per_game": {"breakout": 90.0}, "per_seed": [79.0, 81.0]},
        "multi_dist_nll": {"geomean": [70.0, 0, 0], "per_game": {"breakout": 70.0}, "per_seed": [70.0, 70.0]},
        "multi_dqn": {"geomean": [75.0, 0, 0], "per_game": {"breakout": 75.0}, "per_seed": [60.0, 90.0]},
    }
    losses = {
        "games": ["breakout"],
        "aggregates": {"kl-tau0.01": {"geomean": [82.0, 0, 0]}, "nll": {"geomean": [85.5, 0, 0]}},
        "per_game": {"kl-tau0.01": {"breakout": 92.0}, "nll": {"breakout": 85.5}},
    }
    linear = tmp_path / "explore-linear-heads-seed0"
    linear.mkdir()
    students = {"multi_dist_kl": {"tau": 0.01, "head_hidden": 0}, "multi_dqn": {"head_hidden": 0}}
    (linear / "results.json").write_text(
        json.dumps(
            {"geometric_mean_percent": {"multi_dist_kl": 81.0, "multi_dqn": 50.0}, "students": students}
        )
    )
    text = _multitask_checks(agg, losses, tmp_path)
    assert "multi-dist-kl 80.0% against single-game kl-tau0.01 82.0% (breakout 90.0 vs 92.0)" in text
    assert "multi-dist-kl is within 3 points of single-game kl-tau0.01" in text
    assert "multi-dist-nll is 15.5 points below single-game nll" in text
    assert "multi-dqn 60.0, 90.0" in text
    assert "the DQN reached 50.0% against the KL student's 81.0%" in text
    assert "took the DQN from 50.0% to 75.0% and the KL student from 81.0% to 80.0%" in text
    # without section 1 or the exploration, the text says only what it can
    bare = _multitask_checks(agg, None, tmp_path / "nowhere")
    assert "single-game" not in bare and "linear heads" not in bare


def test_multitask_explorations_found_by_recorded_settings(tmp_path, card_yardstick) -> None:
    """The softer-target exploration is the one whose recorded setting is the main KL student's at
    tau 0.1, whatever its folder is called; one with another network does not count."""
    from poldist.experiments.sections_multitask import _multitask_checks, find_exploration

    def write(folder: str, geo: dict, students: dict) -> None:
        (tmp_path / folder).mkdir()
        payload = {"geometric_mean_percent": geo, "students": students}
        (tmp_path / folder / "results.json").write_text(json.dumps(payload))

    main = {"tau": 0.01, "head_hidden": 128, "student": "teacher"}
    write("seed0", {"multi_dist_kl": 80.0}, {"multi_dist_kl": main})
    write("explore-a", {"multi_dist_kl": 70.0}, {"multi_dist_kl": {"tau": 0.1}})  # linear heads
    write("explore-b", {"multi_dist_kl": 90.0}, {"multi_dist_kl": {**main, "tau": 0.1}})
    assert find_exploration(tmp_path, {"multi_dist_kl": {"tau": 0.1}})["geometric_mean_percent"] == {
        "multi_dist_kl": 70.0
    }
    assert find_exploration(tmp_path, {"multi_dqn": {}}) is None
    agg = {"multi_dist_kl": {"geomean": [80.0, 0, 0], "per_game": {}, "per_seed": [80.0]}}
    text = _multitask_checks(agg, None, tmp_path)
    assert "A softer target, KL tau 0.1 with the same network (one seed, explorations below), " in text
    assert "reached 90.0% against tau 0.01's 80.0%." in text
    assert "linear heads" not in text  # no exploration records the main setting with linear heads


def test_two_stage_intervals_against_hand_computed_values(monkeypatch) -> None:
    """Constant returns: the interval collapses onto the point, sqrt(100 x 50) = 70.71%."""
    from poldist.experiments import sections_single_game as sections

    monkeypatch.setattr(
        sections, "reference_returns", lambda teacher: {"ta": [10.0] * 4, "tb": [20.0] * 4}[teacher]
    )
    records = [
        {"game": g, "teacher": t, "seed": s, "student_returns": [10.0] * 5}
        for g, t in (("a", "ta"), ("b", "tb"))
        for s in (1, 2, 3)
    ]
    per_game, iv = sections.two_stage_intervals(records, ["a", "b"])
    assert per_game["a"].mean == pytest.approx(100.0) and per_game["b"].mean == pytest.approx(50.0)
    assert iv.mean == pytest.approx(100 * np.sqrt(0.5)) and iv.ci_low == pytest.approx(iv.ci_high)
    assert iv.ci_low == pytest.approx(iv.mean)
    # a game without runs, or a run that did not record its returns: no two-stage interval
    assert sections.two_stage_intervals(records, ["a", "b", "c"]) is None
    assert (
        sections.two_stage_intervals([*records, dict(records[0], seed=4, student_returns=None)], ["a", "b"])
        is None
    )


def test_fresh_protocol_cells_runs_and_report(tmp_path) -> None:
    """The fresh protocol: its own cell names, disjoint env seeds and 200 final episodes; the report
    makes its runs the main table (two-stage intervals) with the legacy runs below."""
    fresh = experiment_cells("losses", [0, 1], protocol="fresh")
    assert fresh[0].name == "asterix__teacher__nll__fresh__seed0"
    assert not {c.name for c in fresh} & {c.name for c in experiment_cells("losses", [0, 1])}
    cfg = Cell("breakout", budget="40k", protocol="fresh").config()
    assert (cfg.env_seeds, cfg.final_eval_episodes, cfg.updates) == ("disjoint", 200, 40_000)
    assert Cell("breakout").config().env_seeds == "offset"  # legacy cells as they were made
    with pytest.raises(PoldistError, match="control runs under the legacy protocol only"):
        experiment_cells("control", [0], protocol="fresh")

    runs, results = tmp_path / "runs", tmp_path / "results" / "reproduce"
    kw = dict(games=["breakout"], runs=runs, results=results, budget=TINY)
    records = run_experiment("compression", [0], protocol="fresh", **kw)
    assert all(len(r["student_returns"]) == 200 for r in records)
    assert records[0]["command"].endswith("--seeds 0 --protocol fresh")
    run_experiment("compression", [0], **kw)  # legacy runs of the same cells: separate records
    assert len(list((results / "raw").glob("*__fresh__seed0.json"))) == 4
    assert len(list((results / "raw").glob("*.json"))) == 8
    text = write_report(tmp_path / "results", tmp_path / "RESULTS.md").read_text()
    section = text[text.index("## 2. Compression") : text.index("## 3.")]
    assert "Fresh protocol (seeds 0)" in section and "Before the yardstick, for the record: Legacy" in section
    # the fresh table's cells carry one decimal in their intervals; the legacy ones over one seed none
    pct = 100 * np.mean(records[0]["student_returns"]) / np.mean(reference_returns("minatar/breakout"))
    assert f"| breakout | 12.09 (card 12.84) | {pct:.1f} [" in section


def test_report_multitask_fresh_students_against_legacy_dqn(tmp_path, card_yardstick, monkeypatch) -> None:
    """Fresh-protocol multi-task students (two-stage intervals from their episode returns) above the
    legacy DQN table; constant returns make every interval collapse onto its point."""
    import poldist.zoo

    refs = {"minatar/breakout": [10.0] * 4, "minatar/freeway": [20.0] * 4}
    monkeypatch.setattr(poldist.zoo, "reference_returns", lambda teacher: refs[teacher])
    folder = tmp_path / "results" / "multitask"
    legacy = {g: {"teacher_score": 10.0, "multi_dqn": 4.5, "multi_dqn_percent": 45.0} for g in refs}
    (folder / "seed0").mkdir(parents=True)
    (folder / "seed0" / "results.json").write_text(json.dumps({"per_game": legacy, "episodes": 100}))
    text = write_report(tmp_path / "results", tmp_path / "RESULTS.md").read_text()
    assert "Not yet run under the fresh protocol" in text
    for seed in (0, 1):
        run = folder / f"fresh-seed{seed}" / "multi-dist-kl-hh128-disjoint"
        run.mkdir(parents=True)
        tasks = [
            {"teacher": t, "student_returns": [10.0] * 5, "agreement": 0.9}
            for t in ("minatar/breakout", "minatar/freeway")
        ]
        summary = {"tasks": tasks, "config": {"seed": seed}, "train_wall_seconds": 60.0, "student_params": 99}
        (run / "summary.json").write_text(json.dumps(summary))
        students = {"multi_dist_kl": {"run": run.name}}
        (run.parent / "results.json").write_text(json.dumps({"per_game": {}, "students": students}))
    text = write_report(tmp_path / "results", tmp_path / "RESULTS.md").read_text()
    section = text[text.index("## 3. Multi-task") : text.index("## 4.")]
    assert "| breakout | 10.00 | 100.0 [100.0, 100.0] | 45.0 |" in section
    assert "| freeway | 20.00 | 50.0 [50.0, 50.0] | 45.0 |" in section
    assert "| seeds |  | 0, 1 | legacy |" in section
    assert (
        "multi-dist-kl 70.7% [70.7, 70.7] against the teachers' 100: not met (the interval lies below it); "
        "against the DQN's 45.0%"
    ) in section
    assert (
        section.index("Fresh protocol") < section.index("Before the yardstick") < section.index("| minatar/")
    )
