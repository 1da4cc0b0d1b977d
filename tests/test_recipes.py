"""Per-domain recipes: what ``poldist distill`` starts from, and what wins over it."""

import json
from pathlib import Path

import pytest

from poldist.cli import build_parser
from poldist.commands import build_config
from poldist.config import DistillConfig
from poldist.errors import PoldistError
from poldist.experiments.bench_collection import default_envs, default_groups
from poldist.recipes import RECIPES, recipe_config, recipe_for, teacher_domain


def _config(argv: list[str], tmp_path: Path) -> DistillConfig:
    args = build_parser().parse_args(["distill", "--out", str(tmp_path / "run"), *argv])
    return build_config(DistillConfig, args)


def test_every_recipe_field_is_a_valid_config_value() -> None:
    for values in RECIPES.values():
        DistillConfig(**values).validate()


def test_auto_follows_the_teachers_domain(tmp_path: Path) -> None:
    assert teacher_domain("minatar/breakout") == "minatar"
    assert teacher_domain("minatar/all") == "minatar"
    assert teacher_domain("anything", env_id="ALE/Pong-v5") == "atari"
    assert recipe_for("auto", "minatar/seaquest")[0] == "minatar"
    assert recipe_for("auto", "x", env_id="ALE/Pong-v5")[0] == "atari"
    assert recipe_for("auto", "atari/pong")[1]["updates"] == 90_000
    # an SB3 or CleanRL file: those loaders read Atari networks only, so it gets Atari's recipe
    # without being loaded
    for name in ("ppo-PongNoFrameskip-v4.zip", "dqn_atari.cleanrl_model", "agent.pt"):
        (tmp_path / name).write_bytes(b"")
        assert recipe_for("auto", str(tmp_path / name)) == ("atari", RECIPES["atari"]), name
    with pytest.raises(PoldistError, match="unknown recipe 'fast'"):
        recipe_for("fast", "minatar/breakout")


def test_a_minatar_teacher_gets_the_minatar_recipe_and_flags_win(tmp_path: Path) -> None:
    cfg = _config(["--teacher", "minatar/breakout"], tmp_path)
    for name, value in RECIPES["minatar"].items():
        assert getattr(cfg, name) == value, name
    cfg = _config(["--teacher", "minatar/breakout", "--tau", "0.01", "--batch-size", "32"], tmp_path)
    assert (cfg.tau, cfg.batch_size, cfg.lr_schedule) == (0.01, 32, "cosine")
    # --recipe paper: the dataclass defaults, the paper's settings
    cfg = _config(["--teacher", "minatar/breakout", "--recipe", "paper"], tmp_path)
    assert cfg == DistillConfig(teacher="minatar/breakout")


def test_a_config_file_wins_over_the_recipe(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"teacher": "minatar/asterix", "updates": 123}))
    cfg = _config(["--config", str(path)], tmp_path)
    assert (cfg.teacher, cfg.updates, cfg.tau) == ("minatar/asterix", 123, 1.0)


def test_recipe_config_from_python() -> None:
    cfg = recipe_config("minatar/freeway", student="net3", seed=2)
    assert (cfg.student, cfg.seed, cfg.tau, cfg.updates) == ("net3", 2, 1.0, 40_000)
    assert recipe_config("minatar/freeway", recipe="paper") == DistillConfig(teacher="minatar/freeway")


def test_the_atari_recipe_pipelines_collection_only_where_it_runs(tmp_path: Path) -> None:
    # two pipelined groups: the teacher acting, the local backend, at least two envs
    assert _config(["--teacher", "atari/pong"], tmp_path).env_groups == 2
    assert recipe_config("atari/pong").env_groups == 2
    # elsewhere one group, instead of refusing a flag the user did not give
    assert _config(["--teacher", "atari/pong", "--num-envs", "1"], tmp_path).env_groups == 1
    assert _config(["--teacher", "atari/pong", "--control", "student"], tmp_path).env_groups == 1
    assert recipe_config("atari/pong", backend="ray").env_groups == 1
    # a value given wins, and a bad one given is refused as before
    assert _config(["--teacher", "atari/pong", "--env-groups", "1"], tmp_path).env_groups == 1
    with pytest.raises(PoldistError, match=r"env_groups \(4\) must be at most num_envs \(2\)"):
        _config(["--teacher", "atari/pong", "--num-envs", "2", "--env-groups", "4"], tmp_path)
    # MinAtar's recipe keeps one group (pipelining loses there: RESULTS.md section 6)
    assert _config(["--teacher", "minatar/breakout"], tmp_path).env_groups == 1
    # and the bench's default rows follow the recipes
    assert (default_groups("atari"), default_groups("minatar")) == (2, 1)
    assert (default_envs("atari"), default_envs("minatar")) == (8, 16)  # MinAtar: issue 22


def test_the_benchs_default_rows_follow_a_recipes_envs(monkeypatch: pytest.MonkeyPatch) -> None:
    from poldist.experiments import bench_collection
    from poldist.experiments.bench_common import QUICK

    monkeypatch.setitem(RECIPES, "minatar", {**RECIPES["minatar"], "num_envs": 4})
    assert default_envs("minatar") == 4
    res = bench_collection.bench_collection(
        QUICK, atari=False, ray_rows=False, labellers=[("auto", 1)], minatar_other=(4, 6)
    )
    assert [(r["num_envs"], r["default"]) for r in res["rows"]] == [(4, True), (6, False)]
