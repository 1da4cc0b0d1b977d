"""The yardstick and the study of issue 18: reference scores, rescoring, the study's tables."""

from __future__ import annotations

import json
import shutil

import pytest
from scripts_loader import load_script

from poldist import zoo
from poldist.envs import REFERENCE_SEED
from poldist.errors import PoldistError
from poldist.experiments.report_stats import group_intervals
from poldist.experiments.study_report import (
    library_sizes_note,
    near_tie_table,
    recipe_findings,
    recipe_table,
    shortfall_notes,
    study_findings,
    study_table,
)


def test_reference_score_goes_into_the_card(tmp_path, monkeypatch) -> None:
    shutil.copytree(zoo.ZOO / "minatar" / "breakout", tmp_path / "minatar" / "breakout")
    card = json.loads((tmp_path / "minatar" / "breakout" / "card.json").read_text())
    card.pop("reference", None)
    (tmp_path / "minatar" / "breakout" / "card.json").write_text(json.dumps(card))
    monkeypatch.setattr(zoo, "ZOO", tmp_path)
    import poldist.teachers

    monkeypatch.setattr(poldist.teachers, "ZOO", tmp_path)
    with pytest.raises(PoldistError, match="reference-score"):
        zoo.reference_returns("minatar/breakout")
    ref = zoo.reference_score("minatar/breakout", episodes=6, num_envs=3)
    assert ref["episodes"] == 6 and len(ref["returns"]) == 6 and ref["seed"] == REFERENCE_SEED
    assert ref["mean"] == pytest.approx(sum(ref["returns"]) / 6)
    assert zoo.reference_returns("minatar/breakout") == ref["returns"]
    text = (tmp_path / "minatar" / "breakout" / "MODEL_CARD.md").read_text()
    assert "reference score" in text and f"{ref['mean']:.2f}" in text
    assert "poldist reference-score minatar/breakout --episodes 6" in text


def test_report_rescores_records_against_the_reference(monkeypatch) -> None:
    from poldist.experiments import report_stats

    monkeypatch.setattr(report_stats, "reference_mean", lambda t: {"minatar/a": 20.0}.get(t))
    recs = report_stats.rescore(
        [
            {
                "teacher": "minatar/a",
                "teacher_score": 10.0,
                "student_score": 15.0,
                "percent_of_teacher": 150.0,
            },
            {"teacher": "minatar/b", "teacher_score": 10.0, "student_score": 5.0, "percent_of_teacher": 50.0},
        ]
    )
    assert recs[0]["percent_of_teacher"] == 75.0 and recs[0]["card_score"] == 10.0
    assert recs[0]["teacher_score"] == 20.0
    assert recs[1]["percent_of_teacher"] == 50.0  # no reference: the card stays the yardstick
    mt = report_stats.rescore_multitask(
        [{"per_game": {"minatar/a": {"teacher_score": 10.0, "m": 30.0, "m_percent": 300.0}}}]
    )
    assert mt[0]["per_game"]["minatar/a"]["m_percent"] == 150.0
    assert report_stats.multitask_geomeans(
        {"per_game": {"minatar/a": {"teacher_score": 10.0, "m": 30.0, "m_percent": 300.0}}}
    ) == {"m": pytest.approx(150.0)}


def _record(variant: str, game: str, returns: list[float], seed: int = 0, size: str = "net2") -> dict:
    return {
        "variant": variant,
        "change": f"change {variant}",
        "size": size,
        "game": game,
        "seed": seed,
        "student_returns": returns,
        "student_params": 9_000,
        "agreement": 0.9,
        "regret": 0.01,
        "gap_edges": [0.0, 0.1, "inf"],
        "gap_shares": [0.5, 0.5],
        "agreement_by_gap": [0.8, None],
        "train_wall_seconds": 120.0,
    }


def test_study_tables_by_hand() -> None:
    records = [
        _record("base", "a", [1.0, 1.0]),
        _record("base", "b", [4.0]),
        _record("tau1", "a", [2.0]),  # game b missing: no geometric mean for tau1
    ]
    groups = group_intervals(records, {"a": [2.0, 2.0], "b": [2.0]})
    base = groups[("base", "net2")]
    assert base["per_game"]["a"].mean == 50.0 and base["per_game"]["b"].mean == 200.0
    assert base["geomean"].mean == pytest.approx(100.0)
    assert groups[("tau1", "net2")]["geomean"] is None
    table = study_table(groups, ["a", "b"])
    assert "| base | change base | net2 (9,000) | 50.0 [50, 50] | 200.0 [200, 200] | **100.0**" in table
    assert "| tau1 |" in table
    ties = near_tie_table(groups)
    assert "0.50 / 0.80" in ties and "0.50 / –" in ties


def test_recipe_table_reports_fresh_seeds_against_the_targets() -> None:
    records = [
        _record("recipe", "a", [2.0, 2.0], seed=1, size="net3-c8"),
        _record("recipe", "a", [1.0, 1.0], seed=2, size="net3-c8"),
        _record("recipe", "b", [2.0], seed=1, size="net3-c8"),
        _record("recipe", "b", [2.0], seed=2, size="net3-c8"),
    ]
    groups = group_intervals(records, {"a": [2.0], "b": [2.0]})
    table = recipe_table(groups, ["a", "b"])
    # a: seeds at 100% and 50% -> 75; b: 100; geometric mean sqrt(75 * 100)
    row = next(line for line in table.splitlines() if line.startswith("| recipe"))
    assert "| net3-c8 (9,000) | 75.0 [50, 100] | 100.0 [100, 100] | **86.6**" in row
    # wall minutes; no CPU minutes: these records predate the count
    assert row.endswith("| 95 | 1, 2 | 0.900 | 2.0 | – |")
    for r, cpu in zip(records, [60.0, 90.0, 120.0, 90.0], strict=True):
        r["train_cpu_seconds"] = cpu
    row = next(
        line
        for line in recipe_table(group_intervals(records, {"a": [2.0], "b": [2.0]}), ["a", "b"]).splitlines()
        if line.startswith("| recipe")
    )
    assert row.endswith("| 0.900 | 2.0 | 1.5 |")
    tuning = group_intervals([_record("base", "a", [2.4], seed=0, size="net3-c8")], {"a": [2.0]})
    (finding,) = recipe_findings(groups, {"a": [2.0], "b": [2.0]}, tuning)
    assert finding.startswith("net3-c8 (seeds 1, 2): 86.6% [")
    assert "against the target 95: not met" in finding
    assert (
        "Below 100%: a 75.0 (seeds: 100.0, 50.0; best on the tuning seeds at this size: base 120.0)."
        in finding
    )
    # another variant on the same size and seeds: its finding is named by its variant, after the recipe's
    other = [_record("recipe-envs16", g, [2.0], seed=s, size="net3-c8") for g in "ab" for s in (1, 2)]
    both = group_intervals(records + other, {"a": [2.0], "b": [2.0]})
    first, second = recipe_findings(both, {"a": [2.0], "b": [2.0]}, tuning)
    assert first.startswith("net3-c8 (seeds 1, 2): 86.6%")
    assert second.startswith("net3-c8, recipe-envs16 (seeds 1, 2): 100.0%")
    from poldist.experiments import study_report

    assert study_report._other_variants_note(records) == ""
    note = study_report._other_variants_note([{**r, "change": "16 envs"} for r in records + other])
    # the recipe's envs moved to 16 after these cells ran: the table says what the variant is now
    assert note == " Other rows: `recipe-envs16`, " + study_report.CHANGE_NOW["recipe-envs16"] + "."
    assert study_report.change_of({"variant": "recipe-envs64", "change": "64 envs"}) == "64 envs"


def test_shortfall_notes_only_for_library_sizes_whose_interval_misses_the_target() -> None:
    """net2 (the library's ``8/18``) at 75-100% gets its note; net3-c8 (``8/10``, not a library size)
    and a net1 whose whole interval is at 100% get none."""

    def rec(game: str, returns: list[float], seed: int, size: str, widths: str) -> dict:
        return {**_record("recipe", game, returns, seed=seed, size=size), "config": {"student": widths}}

    records = [
        rec("a", [2.0], 1, "net2-c8", "8/18"),
        rec("a", [1.0], 2, "net2-c8", "8/18"),
        rec("a", [1.0], 1, "net3-c8", "8/10"),
        rec("a", [2.0], 1, "net1", "8/64"),
        rec("a", [2.0], 2, "net1", "8/64"),
    ]
    notes = shortfall_notes(group_intervals(records, {"a": [2.0]}))
    assert len(notes) == 1 and notes[0].startswith("net2: ")


def test_report_splits_the_tuning_seed_from_the_fresh_seeds(tmp_path, monkeypatch) -> None:
    from poldist.experiments import study_report
    from poldist.experiments.report_stats import ReportContext

    raw = tmp_path / "study" / "raw"
    raw.mkdir(parents=True)
    config = {
        "tau": 1.0,
        "optimizer": "rmsprop",
        "lr": 1e-3,
        "lr_schedule": "cosine",
        "batch_size": 256,
        "updates": 40_000,
        "transitions_per_update": 20.0,
        "memory_size": 200_000,
        "epsilon": 0.05,
        "control": "teacher",
        "final_eval_episodes": 200,
    }
    for i, rec in enumerate(
        [
            _record("base", "breakout", [1.0]),
            _record("recipe", "breakout", [2.0], seed=1),
            _record("recipe-mem50k", "breakout", [1.5], seed=4),  # the second tuning seed
        ]
    ):
        (raw / f"{i}.json").write_text(json.dumps({**rec, "config": config}))
    monkeypatch.setattr(study_report, "reference_returns_of", lambda recs: {"breakout": [2.0]})
    ctx = ReportContext(results=tmp_path, out=tmp_path / "RESULTS.md", raw=[])
    tuning = "\n".join(study_report.study_lines(ctx))
    fresh = "\n".join(study_report.recipe_lines(ctx))
    assert "| base | change base | net2 (9,000) | 50.0" in tuning and "| recipe |" not in tuning
    assert "| recipe | net2 (9,000) | 100.0" in fresh and "| base" not in fresh
    assert "| recipe-mem50k | change recipe-mem50k | net2 (9,000) | 75.0" in tuning
    assert "recipe-mem50k" not in fresh


def test_recipe_section_adds_the_multitask_student_and_weighs_it_against_the_dqn(
    tmp_path, monkeypatch
) -> None:
    from poldist.experiments import study_report
    from poldist.experiments.report_stats import ReportContext

    config = {
        "updates": 200_000,
        "batch_size": 256,
        "transitions_per_update": 20.0,
        "control": "student",
        "tau": 1.0,
        "lr_schedule": "cosine",
        "final_eval_episodes": 2,
        "seed": 1,
    }
    seed_dir = tmp_path / "multitask" / "recipe-seed1"
    (seed_dir / "run").mkdir(parents=True)
    (seed_dir / "results.json").write_text(json.dumps({"students": {"multi_dist_kl": {"run": "run"}}}))
    tasks = [
        {"teacher": "minatar/asterix", "student_returns": [2.0, 2.0], "agreement": 0.8},
        {"teacher": "minatar/breakout", "student_returns": [3.0, 3.0], "agreement": 0.6},
    ]
    summary = {"config": config, "tasks": tasks, "train_wall_seconds": 600.0, "student_params": 5_000}
    (seed_dir / "run" / "summary.json").write_text(json.dumps(summary))
    # the multi-task DQN of section 3: 50% on both games (bare percents are kept as they are)
    dqn = {
        "per_game": {
            f"minatar/{g}": {"teacher_score": 2.0, "multi_dqn": 1.0, "multi_dqn_percent": 50.0}
            for g in ("asterix", "breakout")
        }
    }
    (tmp_path / "multitask" / "seed0").mkdir()
    (tmp_path / "multitask" / "seed0" / "results.json").write_text(json.dumps(dqn))
    monkeypatch.setattr(
        study_report, "reference_returns_of", lambda recs: {"asterix": [2.0], "breakout": [2.0]}
    )
    monkeypatch.setattr("poldist.experiments.report_stats.reference_mean", lambda t: None)
    ctx = ReportContext(results=tmp_path, out=tmp_path / "RESULTS.md", raw=[])
    text = "\n".join(study_report.recipe_lines(ctx))
    # asterix: 100%, breakout: 150% -> geometric mean sqrt(1.5) * 100; target 100;
    # 600 s = 10 min for the five games
    assert "| recipe | multi-task (5,000) | 100.0 [100, 100] | 150.0 [150, 150] | **122.5**" in text
    assert "| 100 | 1 | 0.700 | 10.0 |" in text
    assert "DQN 50.0% [50.0, 50.0]" in text and "above it, the intervals apart." in text
    assert "| recipe-envs16 |" not in text and "Its `recipe-envs16` row" not in text
    # the same student at the recipe's 16 envs (issue 22): its own row, named, with its command
    envs16 = tmp_path / "multitask" / "recipe-envs16-seed1"
    shutil.copytree(seed_dir, envs16)
    text = "\n".join(study_report.recipe_lines(ctx))
    assert "| recipe-envs16 | multi-task (5,000) | 100.0 [100, 100] | 150.0 [150, 150] | **122.5**" in text
    assert "Its `recipe-envs16` row: the same command with `--num-envs 16" in text


def test_study_variants_change_one_thing() -> None:
    study = load_script("study_minatar")
    base = study.cell_config("base", "net2", "breakout", 0)
    assert base.teacher == "minatar/breakout" and base.student == "4/36" and base.env_seeds == "disjoint"
    for name, (_, fields) in study.VARIANTS.items():
        cfg = study.cell_config(name, "net2", "breakout", 0)
        changed = {k for k in vars(cfg) if getattr(cfg, k) != getattr(base, k)}
        # a variant sets its fields and nothing else (the recipe restates some of the base's)
        assert changed <= set(fields) and all(getattr(cfg, k) == v for k, v in fields.items()), name
        assert changed or name in ("base", "recipe"), name
    assert study.cell_name("tau1", "net2", "breakout", 3) == "tau1__net2__breakout__seed3"


def test_findings_compare_each_recipe_variant_with_the_recipe_on_the_tuning_seed() -> None:
    recipe = {"variant": "tau1-cosine-student", "size": "net2-c8"}
    fresh5 = {"variant": "recipe-fresh5", "size": "net2-c8"}
    records = [
        {**_record("x", "a", [2.0]), **recipe},  # 100% of the reference 2
        {**_record("x", "b", [4.0]), **recipe},  # 100%
        {**_record("x", "a", [1.0]), **fresh5, "change": "the minatar recipe, 5 fresh transitions"},  # 50%
        {**_record("x", "b", [4.0]), **fresh5, "change": "the minatar recipe, 5 fresh transitions"},  # 100%
    ]
    refs = {"a": [2.0], "b": [4.0]}
    lines = study_findings(group_intervals(records, refs), refs)
    # geometric mean sqrt(50 * 100) = 70.7 against 100
    assert "- the recipe, 5 fresh transitions: geometric mean 70.7% against 100.0% (-29.3)." in lines


def test_a_comparison_uses_only_the_seeds_both_rows_ran_on() -> None:
    recipe = {"variant": "tau1-cosine-student", "size": "net2-c8"}
    mem = {"variant": "recipe-mem50k", "size": "net2-c8", "change": "the minatar recipe, small memory"}
    records = [
        {**_record("x", "a", [2.0], seed=0), **recipe},  # 100%
        {**_record("x", "a", [1.0], seed=4), **recipe},  # 50%: left out, mem50k has no seed 4 yet
        {**_record("x", "a", [1.5], seed=0), **mem},  # 75%
    ]
    refs = {"a": [2.0]}
    lines = study_findings(group_intervals(records, refs), refs)
    assert "- the recipe, small memory: geometric mean 75.0% against 100.0% (-25.0)." in lines
    records.append({**_record("x", "a", [2.0], seed=4), **mem})  # 100%
    lines = study_findings(group_intervals(records, refs), refs)
    # both seeds: mem50k (75 + 100) / 2 = 87.5, the recipe (100 + 50) / 2 = 75
    assert "- the recipe, small memory: geometric mean 87.5% against 75.0% (+12.5) (seeds 0, 4)." in lines


def test_target_verdict_reads_the_interval_not_only_the_point() -> None:
    from poldist.experiments.report_stats import target_verdict

    assert target_verdict(101.0, 100.0, 102.0, 100) == "met (the whole interval at or above it)"
    assert target_verdict(100.2, 96.4, 104.1, 100) == (
        "met by the point estimate only (the interval reaches down to 96.4)"
    )
    assert target_verdict(99.4, 95.5, 103.2, 100) == "not met (the interval reaches it)"
    assert target_verdict(93.8, 89.0, 98.2, 100) == "not met (the interval lies below it)"


def test_the_recipe_section_names_the_rows_that_are_the_library_sizes() -> None:
    def group(widths: str) -> dict:
        return {"records": [{"config": {"student": widths}}]}

    groups = {
        ("recipe", "net1"): group("8/64"),  # the study's name is the library's: not repeated
        ("recipe", "net2-c8"): group("8/18"),
        ("recipe", "net3-c8"): group("8/10"),  # net3 before the two-conv shape
        ("recipe", "net3-2ck4"): group("16,8k4s2/34"),
    }
    note = library_sizes_note(groups)
    assert note == (
        "Of the library's sizes (`--student`), `net2` is net2-c8 (`8/18`), "
        "`net3` is net3-2ck4 (`16,8k4s2/34`)."
    )
    assert library_sizes_note({("recipe", "net1"): group("8/64")}) == ""


def test_a_per_teacher_temperature_row_says_what_it_measured() -> None:
    recs = [_record("recipe-taugap20", g, [2.0], size="net2-c8") for g in ("b", "a")]
    for r, tau in zip(recs, (1.966, 0.5)):
        r.update(tau=tau, config={"tau_gap": 20.0})
    refs = {"a": [2.0], "b": [2.0]}
    lines = study_findings(group_intervals(recs, refs), refs)
    assert "- recipe-taugap20 (net2-c8) trained at the temperatures it measured: a 0.50, b 1.97." in lines
