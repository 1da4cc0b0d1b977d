"""Shipped teachers: publish a trained teacher into the package's ``zoo/`` with a model card.

``poldist publish-teacher runs/teacher-breakout --name minatar/breakout`` copies the run's
teacher checkpoint to ``src/poldist/zoo/minatar/breakout/``, scores it and a uniformly random
policy over N episodes (epsilon 0.05 for the teacher), and writes beside it ``card.json`` (the raw
numbers), ``MODEL_CARD.md`` and ``curve.png`` (the learning curve from the run's evaluation log).
"""

from __future__ import annotations

import json
import platform
import shutil
from pathlib import Path
from typing import Any

import torch

from poldist.checkpoints import load_checkpoint
from poldist.errors import PoldistError
from poldist.evaluation import evaluate
from poldist.networks import count_parameters
from poldist.plots import plot_learning_curve
from poldist.runs import machine_info, write_json
from poldist.teachers import ZOO, load_teacher, zoo_names


def machine_description() -> str:
    """CPU model and core count of this machine, for model cards and benchmarks."""
    m = machine_info()
    system = f"{platform.system()} {platform.release()}"
    return f"{m['cpu_model']}, {m['cpu_count']} cores, {system}, torch {m['torch_version']}"


def publish_teacher(run_dir: str | Path, name: str, *, episodes: int = 100, seed: int = 12345) -> Path:
    """Copy ``<run_dir>/teacher`` into the zoo as ``name`` and write its model card.

    Args:
        run_dir: a finished ``poldist train-teacher`` run.
        name: short name, e.g. ``minatar/breakout``.
        episodes: evaluation episodes for the teacher and for the random policy.
        seed: evaluation seed (recorded in the card).

    Returns:
        The zoo directory of the teacher.
    """
    run_dir = Path(run_dir)
    src = run_dir / "teacher"
    ckpt = load_checkpoint(src, blobs=False)  # verifies the checkpoint is whole
    summary = json.loads((run_dir / "summary.json").read_text())
    dest = ZOO / name
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for f in ckpt.metadata["files"].values():
        shutil.copy2(src / f["file"], dest / f["file"])
    shutil.copy2(src / "meta.json", dest / "meta.json")

    teacher = load_teacher(dest)
    score = evaluate(teacher, teacher.env, episodes, epsilon=0.05, seed=seed)
    random = evaluate(
        lambda o: torch.zeros(len(o), teacher.n_actions), teacher.env, episodes, epsilon=1.0, seed=seed
    )
    commands_file = run_dir / "commands.txt"
    commands = commands_file.read_text().strip().splitlines() if commands_file.exists() else []
    card: dict[str, Any] = {
        "name": name,
        "env_id": teacher.env.env_id,
        "env_settings": teacher.env.settings,
        "parameters": count_parameters(teacher.net),
        "commands": commands,
        "seed": summary["config"]["seed"],
        "env_steps": summary["env_steps"],
        "updates": summary["updates"],
        "train_wall_seconds": summary["wall_seconds"],
        "env_steps_per_second": summary["steps_per_second"],
        "machine": machine_description(),
        "eval": {"episodes": episodes, "epsilon": 0.05, "seed": seed, **score.to_dict()},
        "random_policy": {"episodes": episodes, "seed": seed, **random.to_dict()},
        "evaluate_command": f"poldist evaluate {name} --episodes {episodes} --seed {seed}",
    }
    write_json(dest / "card.json", card)
    plot_learning_curve(
        run_dir / "evals.csv",
        dest / "curve.png",
        x="env_steps",
        title=f"{teacher.env.env_id}: Double-DQN teacher (eval epsilon 0.05)",
    )
    (dest / "MODEL_CARD.md").write_text(_card_markdown(card))
    return dest


def _card_markdown(card: dict[str, Any]) -> str:
    e, r = card["eval"], card["random_policy"]
    score = f"**{e['mean']:.2f}** (95% CI {e['ci_low']:.2f} to {e['ci_high']:.2f})"
    random = f"{r['mean']:.2f} (95% CI {r['ci_low']:.2f} to {r['ci_high']:.2f})"
    cmds = "\n".join(card["commands"]) or "(not recorded)"
    return f"""# Teacher `{card["name"]}`

Double-DQN teacher for `{card["env_id"]}` (MinAtar's DQN network, {card["parameters"]:,} parameters),
trained by this library.

| | |
|---|---|
| score (epsilon 0.05, {e["episodes"]} episodes, seed {e["seed"]}) | {score} |
| uniformly random policy ({r["episodes"]} episodes) | {random} |
| env steps | {card["env_steps"]:,} ({card["env_steps_per_second"]:,.0f} steps/s) |
| gradient updates | {card["updates"]:,} |
| training wall time | {card["train_wall_seconds"] / 60:.1f} min |
| machine | {card["machine"]} |
| training seed | {card["seed"]} |
| env settings | `{json.dumps(card["env_settings"])}` |

Trained with:

```bash
{cmds}
```

Reproduce the score: `{card["evaluate_command"]}`

![learning curve](curve.png)
"""


# DQN on MinAtar after 5M frames, as read off the MinAtar paper's learning-curve figure (Young & Tian
# 2019 publish no table): final training returns, epsilon 0.1, mean of 30 runs, full action set.
# Approximate (about +-10%); Seaquest predates MinAtar 1.0.11's oxygen fix.
MINATAR_PAPER_DQN = {
    "asterix": 16.5,
    "breakout": 10.0,
    "freeway": 50.5,
    "seaquest": 20.0,
    "space_invaders": 45.0,
}


def zoo_table(markdown: bool = False) -> str:
    """The shipped teachers with their model-card numbers, beside the MinAtar paper's DQN."""
    from poldist.cli import format_table

    rows = []
    for name in zoo_names():
        card_path = ZOO / name / "card.json"
        if not card_path.exists():
            continue
        card = json.loads(card_path.read_text())
        e, r = card["eval"], card["random_policy"]
        game = name.split("/", 1)[1]
        paper = MINATAR_PAPER_DQN.get(game) if name.startswith("minatar/") else None
        rows.append(
            [
                name,
                f"{e['mean']:.2f} [{e['ci_low']:.2f}, {e['ci_high']:.2f}]",
                f"{r['mean']:.2f}",
                f"~{paper:g}" if paper is not None else "-",
                f"{card['env_steps'] / 1e6:.1f}M",
                f"{card['train_wall_seconds'] / 60:.0f} min",
            ]
        )
    headers = ["teacher", "score [95% CI]", "random", "MinAtar paper DQN", "env steps", "train time"]
    if not markdown:
        return format_table(headers, rows)
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def check_zoo_name(name: str) -> None:
    """Refuse names that would escape the zoo folder."""
    if ".." in Path(name).parts or Path(name).is_absolute() or name.count("/") != 1:
        raise PoldistError(f"teacher name must look like 'minatar/breakout', got {name!r}")
