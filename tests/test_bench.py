"""The benchmark (poldist.experiments.bench): quick mode runs end to end and records every section.

No timing assertions: the machine is noisy. Only that every rate and ratio was measured
(positive and finite) and that the JSON holds no NaN or infinity.
"""

from __future__ import annotations

import datetime
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from poldist.envs import MINATAR_NAMES
from poldist.experiments import bench
from poldist.experiments.bench_collection import MINATAR_OTHER_ENVS, default_envs
from poldist.experiments.bench_common import onnx_missing

SECTION_KEYS = ("update_efficiency", "collection_efficiency", "inference", "time_to_quality", "memory")


def _numbers(obj: Any) -> Iterator[float]:
    """Every number in a JSON-like object (bools are not numbers here)."""
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _numbers(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _numbers(v)
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        yield obj


def _positive(row: dict[str, Any], *keys: str) -> None:
    for key in keys:
        value = row[key]
        assert isinstance(value, (int, float)) and math.isfinite(value) and value > 0, (key, value, row)


def _check_result(result: dict[str, Any]) -> None:
    """Every section is there, with positive finite rates and ratios."""
    assert set(SECTION_KEYS) <= set(result)
    assert all(math.isfinite(x) for x in _numbers(result))
    datetime.datetime.fromisoformat(result["date"])
    machine = result["machine"]
    assert machine["cpu_model"] and machine["cpu_count"] >= 1 and machine["torch_threads"] >= 1
    assert machine["torch_version"] and machine["platform"]

    update = result["update_efficiency"]["rows"]
    assert {(r["student"], r["batch"]) for r in update} == {
        ("net2", 32),
        ("net2", 256),
        ("teacher", 32),
        ("teacher", 256),
    }
    for r in update:
        _positive(r, "library_updates_per_s", "bare_updates_per_s", "ratio", "params")

    collection = result["collection_efficiency"]["rows"]  # MinAtar only: atari=False
    labellers = ["auto"] + (["torch"] if onnx_missing() is None else [])
    envs = default_envs("minatar")  # the recipe's: 16
    want = (
        {(lab, 1, envs) for lab in labellers}
        | {("auto", 2, envs)}
        | {(lab, 1, n) for lab in labellers for n in MINATAR_OTHER_ENVS if n != envs}
    )
    assert envs == 16 and {8, 64} <= set(MINATAR_OTHER_ENVS)
    assert {(r["labeller"], r["groups"], r["num_envs"]) for r in collection} == want
    for r in collection:  # the target is for the default row: auto, one group of the recipe's envs
        assert r["env_id"] == "MinAtar/Breakout-v1"
        assert r["default"] == ((r["labeller"], r["groups"], r["num_envs"]) == ("auto", 1, envs))
        assert r.get("target") == (0.5 if r["default"] else None)
        # auto: onnxruntime where installed, on one thread for MinAtar's small teacher
        want_kind = "torch" if r["labeller"] == "torch" or onnx_missing() else "onnxruntime"
        assert r["labeller_kind"] == want_kind and (want_kind == "torch" or r["labeller_threads"] == 1)
        _positive(
            r,
            "collect_transitions_per_s",
            "bare_random_steps_per_s",
            "bare_teacher_steps_per_s",
            "ratio",
            "ratio_vs_bare_teacher",
        )

    inference = result["inference"]
    assert {r["role"] for r in inference["rows"]} == {"teacher", "net1", "net2", "net3"}
    assert {r["batch"] for r in inference["rows"]} == {1, 256}
    onnx = onnx_missing() is None
    for r in inference["rows"]:
        _positive(r, "torch_actions_per_s", "torch_over_teacher")
        if onnx:
            _positive(r, "onnxruntime_actions_per_s", "onnx_over_torch", "onnx_over_teacher")
    if not onnx:
        assert any("onnx" in note for note in inference["notes"])

    ttq = result["time_to_quality"]
    _positive(ttq, "teacher_card_score", "target_fraction", "ratio")
    _positive(ttq["distillation"], "train_seconds", "updates", "updates_per_s_incl_collection")
    _positive(ttq["dqn"], "train_seconds", "env_steps", "time_cap_seconds")
    assert ttq["distillation"]["curve"] and ttq["dqn"]["curve"]
    assert ttq["target_score"] == pytest.approx(0.95 * ttq["teacher_score"])

    memory = result["memory"]["rows"]
    assert {r["env_id"] for r in memory} == {f"MinAtar/{name}-v1" for name in MINATAR_NAMES}
    for r in memory:
        _positive(r, "bytes_per_transition", "paper_memory_gb", "rows")
        assert r["rows"] == r["capacity"]  # measured on a full memory


def test_quick_bench_records_every_section(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "bench.json"
    result = bench.run_bench(quick=True, atari=False, out_json=out)
    _check_result(result)
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    assert result["quick"] is True and result["atari"] is False


def test_main_prints_tables_and_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench.json"
    assert bench.main(["--quick", "--no-atari", "--json", str(out)]) == 0
    _check_result(json.loads(out.read_text()))
    printed = capsys.readouterr().out
    for title in ("update efficiency", "collection efficiency", "inference", "time to 95%", "replay memory"):
        assert title in printed
    assert str(out) in printed


def test_unknown_section_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown sections"):
        bench.run_bench(quick=True, atari=False, sections=["nope"])


def test_atari_dqn_section_pieces() -> None:
    """Section 6's two loops run (in-process here; the bench runs each in a subprocess) and its
    table shows every ratio."""
    from poldist.experiments import bench_dqn

    bare = bench_dqn.bare_dqn(steps=64, learning_starts=32, buffer_rows=96, threads=1)
    assert bare["steps_per_second"] > 0 and bare["peak_rss_mb"] > 0
    ours = bench_dqn.poldist_dqn(steps=64, learning_starts=32, buffer_rows=96, threads=1, overlap=True)
    assert ours["train_wall_seconds"] > 0
    four = bench_dqn.poldist_dqn(
        steps=64, learning_starts=32, buffer_rows=96, threads=1, overlap=True, num_envs=4
    )
    assert four["train_wall_seconds"] > 0
    res = {
        "steps_per_second": {
            "poldist-1": 60.0,
            "bare-1": 50.0,
            "poldist-2": 90.0,
            "bare-2": 75.0,
            "poldist-2-overlap": 100.0,
            "poldist-2-overlap-4envs": 140.0,
        },
        "ratio_1_thread": 1.2,
        "ratio_2_threads": 1.2,
        "ratio_2_threads_vs_bare_1": 1.8,
        "ratio_2_threads_overlap": 100 / 75,
        "ratio_2_threads_overlap_vs_bare_1": 2.0,
        "ratio_2_threads_overlap_4envs": 140 / 75,
        "ratio_2_threads_overlap_4envs_vs_bare_1": 2.8,
        "memory_rows": 1000,
        "peak_rss_mb": {"poldist": 500.0, "bare": 1000.0},
        "settings": "s",
        "repeats": 2,
    }
    table = bench_dqn.dqn_atari_table(res)
    assert "60.0" in table and "50.0" in table and "0.50" in table
    summary = {row[0]: row for row in bench._summary({"dqn_atari": res})}
    assert summary["Atari DQN steps/s: poldist 2 threads/bare 1"][1:] == ["1.80", ">= 1.5", "yes"]
    assert summary["Atari DQN steps/s: poldist 2 threads, envs overlapped/bare 1"][1] == "2.00"
    assert "100.0" in table and "1.33 (2.00 vs bare at 1 thread)" in table
    assert "140.0" in table and "1.87 (2.80 vs bare at 1 thread)" in table
    row = summary["Atari DQN steps/s: poldist 2 threads, 4 envs overlapped/bare 1 (1 env)"]
    assert row[1:] == ["2.80", ">= 1.5", "yes"]


def test_merge_puts_a_rerun_section_in_place_and_says_when_it_ran() -> None:
    from poldist.experiments.bench import merge_sections

    machine = {"cpu_model": "cpu", "cpu_count": 2}
    old = {
        "date": "d1",
        "machine": machine,
        "notes": ["n"],
        "update_efficiency": {"a": 1},
        "memory": {"b": 2},
    }
    new = {"date": "d2", "machine": machine, "notes": [], "memory": {"b": 3}, "wall_seconds": 42.4}
    merged = merge_sections(old, new)
    assert merged["rerun_seconds"] == {"memory": 42.4}
    assert merged["update_efficiency"] == {"a": 1}
    assert merged["memory"] == {"b": 3, "previous": {"date": "d1", "b": 2}}  # the run it replaced
    again = merge_sections(merged, {**new, "date": "d3", "memory": {"b": 4}})
    assert again["memory"] == {"b": 4, "previous": {"date": "d2", "b": 3}}  # one level deep
    assert merged["date"] == "d1" and merged["section_dates"] == {"update_efficiency": "d1", "memory": "d2"}
    assert merged["notes"][0] == "n" and "memory measured again on d2" in merged["notes"][1]
    assert old["memory"] == {"b": 2}  # the input is not changed


def test_report_of_a_merged_json_gives_the_first_runs_time_and_each_reruns() -> None:
    from poldist.experiments.bench import merge_sections, report_text

    machine = {"cpu_model": "cpu", "cpu_count": 2, "torch_version": "t", "torch_threads": 1}
    old = {"date": "d1", "machine": machine, "notes": [], "wall_seconds": 1800.2}
    assert report_text(old).endswith("1800 s in all")
    merged = merge_sections(old, {"date": "d2", "machine": machine, "memory": {}, "wall_seconds": 42.4})
    text = report_text({k: v for k, v in merged.items() if k != "memory"})  # no section tables
    assert text.endswith("1800 s for the run of d1; reruns: memory 42 s (d2)")
    # two sections rerun together share that run's time: named once, not each with the whole time
    both = merge_sections(
        merged,
        {"date": "d3", "machine": machine, "inference": {}, "update_efficiency": {}, "wall_seconds": 60.0},
    )
    text = report_text(
        {k: v for k, v in both.items() if k not in ("memory", "inference", "update_efficiency")}
    )
    assert text.endswith("reruns: memory 42 s (d2), update_efficiency and inference 60 s (d3)")


def test_what_limits_each_ratio_quotes_the_json_it_explains() -> None:
    """RESULTS.md 6's explanations read their numbers from the bench JSON (and the run before's)."""
    from poldist.experiments.sections_other import bench_limits

    def row(
        env: str, labeller: str, ratio: float, envs: int = 8, groups: int = 1, default: bool = False
    ) -> dict:
        return {
            "default": default,
            "env_id": env,
            "labeller": labeller,
            "groups": groups,
            "num_envs": envs,
            "ratio": ratio,
            "ratio_vs_bare_teacher": 0.9,
            "bare_teacher_steps_per_s": 45.0,
            "bare_random_steps_per_s": 100.0,
        }

    dqn = {
        "ratio_1_thread": 0.98,
        "ratio_2_threads_vs_bare_1": 1.52,
        "ratio_2_threads_overlap_vs_bare_1": 1.61,
        "ratio_2_threads_overlap_4envs_vs_bare_1": 1.46,
        "raw": {"bare-1": [55.0, 65.0]},
        "peak_rss_mb": {"poldist": 700.0, "bare": 1750.0},
        "previous": {
            "date": "2026-12-02T10:00",
            "ratio_2_threads_vs_bare_1": 1.42,
            "ratio_2_threads_overlap_vs_bare_1": 1.48,
        },
    }
    result = {
        "collection_efficiency": {
            "rows": [
                row("MinAtar/Breakout-v1", "auto", 0.53, envs=16, default=True),
                row("MinAtar/Breakout-v1", "torch", 0.27, envs=16),
                row("MinAtar/Breakout-v1", "auto", 0.43),
                row("MinAtar/Breakout-v1", "torch", 0.25),
                row("MinAtar/Breakout-v1", "auto", 0.59, envs=64),
                row("ALE/Breakout-v5", "auto", 0.52),
                row("ALE/Breakout-v5", "torch", 0.37),
                row("ALE/Breakout-v5", "auto", 0.61, groups=2, default=True),
            ]
        },
        "time_to_quality": {
            "distillation": {"train_seconds": 59.3},
            "dqn": {"reached": False, "train_seconds": 594.3},
        },
        "dqn_atari": dqn,
    }
    text = " ".join(bench_limits(result).split())  # the prose's line breaks do not matter
    # MinAtar: the default row (the recipe's 16 envs), then the other envs' rows
    assert "per vector step of 16 costs" in text and "under PyTorch (0.27 of random" in text
    assert "under onnxruntime (0.53, target 0.5, met)" in text and "itself at 0.45 of random stepping" in text
    assert "(collect/random at 16 envs 0.53; at 8 envs 0.43; at 64 envs 0.59)" in text
    assert "from 0.37 (torch) to 0.52 in one group" in text
    assert "2 pipelined groups" in text and "gives 0.61 (target 0.6, met)" in text
    # a JSON from before the atari recipe's two groups: its one-group row is the default
    old_rows = [r for r in result["collection_efficiency"]["rows"] if r["groups"] == 1]
    old = " ".join(bench_limits({"collection_efficiency": {"rows": old_rows}}).split())
    assert "from 0.37 (torch) to 0.52 (target 0.6, not met)" in old
    # ... and from before the recipe's 16 envs (no MinAtar default row): the 8-env rows are
    old_rows = [r for r in old_rows if r["num_envs"] != 16]
    old = " ".join(bench_limits({"collection_efficiency": {"rows": old_rows}}).split())
    assert "under onnxruntime (0.43, target 0.5, not met)" in old and "at 64 envs 0.59)" in old
    assert "after 59 s of" in text and "has not reached it in 594 s, 10x that time" in text
    assert "thread it runs at 1.52x" in text and "1.61x when the env steps" in text
    assert "target is met in this run; the run before (2026-12-02): 1.42x and 1.48x" in text
    assert "differ by 17%" in text  # (65 - 55) / 60
    assert "(the Pong teacher's setting; 1.46x) are no faster than one" in text
    assert "is 0.40 of the bare loop's" in text
    assert "- **Updates**" not in text  # a section the JSON lacks is not explained
    broken = bench_limits({"dqn_atari": {"ratio_1_thread": 1.0}})
    assert "- **dqn_atari**: this run lacks the rows the explanation reads" in broken


def test_the_committed_bench_json_is_explained_in_full() -> None:
    """Every section of results/bench.json gets its explanation, not the fallback line that an
    older JSON gets (a misspelt key in an explanation would otherwise pass unseen)."""
    from poldist.experiments.sections_other import bench_limits

    result = json.loads((Path(__file__).parents[1] / "results" / "bench.json").read_text())
    text = bench_limits(result)
    assert "lacks the rows" not in text
    assert text.count("\n- **") >= 5  # updates, collection, inference, time to quality, memory, DQN


def test_the_atari_collection_check_is_quoted_from_its_json(tmp_path) -> None:
    from poldist.experiments.sections_other import collection_check_lines

    assert collection_check_lines(tmp_path / "absent.json") == []
    check = {
        "command": "python scripts/atari_collection_check.py --rounds 2",
        "machine": "AMD EPYC, 2 cores",
        "date": "2026-12-04T18:10:54+0000",
        "runs": [{"round": r, "way": w} for r in (0, 1) for w in ("in-flight", "received", "2-groups")],
        "median_updates_per_s": {"in-flight": 82.84, "received": 76.5, "2-groups": 69.56},
        "in_flight_vs_received": 1.083,
        "two_groups_vs_received": 0.909,
        "students_identical": True,
    }
    path = tmp_path / "check.json"
    path.write_text(json.dumps(check))
    text = " ".join(collection_check_lines(path))
    assert "median of 2 alternated rounds" in text and "82.8 in one group whose last step" in text
    assert "76.5 with that step received at once (1.08x for in flight), 69.6 in the atari" in text
    assert "(0.91x); the students were bit-identical in all its runs." in text
    path.write_text(json.dumps({**check, "students_identical": False}))
    assert "NOT identical" in " ".join(collection_check_lines(path))


def test_a_ratio_is_never_rounded_onto_the_other_side_of_its_target() -> None:
    from poldist.experiments.bench import ratio_text

    assert ratio_text(0.4997, 0.5) == "0.4997"  # "0.50" would read as met
    assert ratio_text(0.4949, 0.5) == "0.49" and ratio_text(0.5012, 0.5) == "0.50"
    assert ratio_text(0.5999, 0.6) == "0.5999" and ratio_text(0.43) == "0.43"


def test_a_paired_ratio_cancels_a_drift_between_rounds() -> None:
    """Each round's rates were timed back to back: the median of the rounds' own ratios, not the
    ratio of medians that come from different rounds."""
    from poldist.experiments.bench_common import paired_ratio

    collect, random = [50.0, 150.0, 80.0], [100.0, 300.0, 200.0]  # round 2 fast, round 3 collect slow
    assert paired_ratio(collect, random) == pytest.approx(0.5)  # 0.5, 0.5, 0.4
    assert sorted(collect)[1] / sorted(random)[1] == pytest.approx(0.4)  # 80 / 200
    assert paired_ratio([1.0, 3.0, 2.0, 10.0], [2.0] * 4) == pytest.approx(1.25)  # the middle two's mean
    with pytest.raises(ValueError):
        paired_ratio([1.0], [1.0, 2.0])


def test_the_collection_ceilings_are_quoted_from_their_json(tmp_path: Path) -> None:
    from poldist.experiments.sections_other import collection_bounds_lines

    assert collection_bounds_lines(tmp_path / "missing.json") == []
    median = {
        "random_wall_ms": 2.0,
        "random_cpu_ms": 3.5,
        "label_wall_ms": 0.9,
        "label_cpu_ms": 1.6,
        "collect_wall_ms": 3.6,
        "collect_cpu_ms": 5.2,
        "collect_vs_random": 0.56,
        "ceiling_turns": 0.69,
        "ceiling_cores": 0.78,
    }
    row = {"env_id": "ALE/Breakout-v5", "num_envs": 8, "groups": 2, "labeller": "onnxruntime"}
    row.update(labeller_threads=2, cores=2, median=median)
    doc = {"command": "python scripts/collection_bounds.py", "machine": "AMD EPYC, 2 cores"}
    (tmp_path / "b.json").write_text(json.dumps({**doc, "date": "2026-12-04T20:00", "rows": [row]}))
    text = " ".join(collection_bounds_lines(tmp_path / "b.json"))
    assert "Atari (ALE/Breakout-v5, 8 envs in 2 group(s), onnxruntime on 2 thread(s))" in text
    assert "takes 2.000 ms (3.500 ms of CPU), labelling it 0.900 ms (1.600 ms of CPU)" in text
    assert "collect/random at 0.69, the 2 cores' work at 0.78; `collect()` measured 0.56" in text


def test_collection_bounds_script_writes_ceilings_it_measured(tmp_path: Path) -> None:
    """scripts/collection_bounds.py on MinAtar, one short round: every cost measured, ceilings in
    (0, 1] and the turns ceiling the wall times' own ratio; the JSON the report quotes."""
    from scripts_loader import load_script

    from poldist.experiments.sections_other import collection_bounds_lines

    out = tmp_path / "bounds.json"
    assert (
        load_script("collection_bounds").main(
            ["--domains", "minatar", "--rounds", "1", "--seconds", "0.05", "--out", str(out)]
        )
        == 0
    )
    doc = json.loads(out.read_text())
    (row,) = doc["rows"]
    m = row["median"]
    assert all(math.isfinite(v) and v >= 0 for v in m.values())  # CPU time ticks: a short one may read 0
    assert min(m[f"{k}_wall_ms"] for k in ("random", "label", "collect")) > 0
    assert m["ceiling_turns"] == pytest.approx(
        m["random_wall_ms"] / (m["random_wall_ms"] + m["label_wall_ms"])
    )
    assert 0 < m["ceiling_turns"] < 1 and 0 < m["ceiling_cores"] <= 1
    assert row["num_envs"] == 16 and row["groups"] == 1 and "--domains minatar" in doc["command"]
    assert "MinAtar (MinAtar/Breakout-v1, 16 envs in 1 group(s)" in " ".join(collection_bounds_lines(out))
