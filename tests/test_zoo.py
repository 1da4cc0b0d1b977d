"""The shipped teachers: each model card's score is what a bare evaluate command gives."""

import json

import pytest

from poldist.evaluation import evaluate
from poldist.teachers import ZOO, load_teacher, zoo_names


@pytest.mark.slow
@pytest.mark.parametrize("name", zoo_names())
def test_model_card_score_is_reproduced_by_evaluate(name):
    card = json.loads((ZOO / name / "card.json").read_text())
    teacher = load_teacher(name)
    e = card["eval"]
    result = evaluate(teacher, teacher.env, e["episodes"], epsilon=e["epsilon"], seed=e["seed"])
    assert result.returns == pytest.approx(e["returns"])
    assert card["eval"]["mean"] >= 5 * card["random_policy"]["mean"]


@pytest.mark.parametrize("name", zoo_names())
def test_shipped_teacher_is_small_and_whole(name):
    files = list((ZOO / name).iterdir())
    weights = [f for f in files if f.suffix == ".safetensors"]
    assert len(weights) == 1 and weights[0].stat().st_size < 1_000_000
    assert {"meta.json", "card.json", "MODEL_CARD.md", "curve.png"} <= {f.name for f in files}
    assert load_teacher(name).output_kind == "q"
