"""Shipped teachers: publish a trained teacher into the package's ``zoo/`` with a model card.

``poldist publish-teacher runs/teacher-breakout --name minatar/breakout`` copies the run's
teacher checkpoint to ``src/poldist/zoo/minatar/breakout/``, scores it and a uniformly random
policy over N episodes (epsilon 0.05 for the teacher), and writes beside it ``card.json`` (the raw
numbers), ``MODEL_CARD.md`` and ``curve.png`` (the learning curve from the run's evaluation log).
"""

from __future__ import annotations

import csv
import json
import platform
import shlex
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from poldist.checkpoints import load_checkpoint, save_checkpoint
from poldist.envs import REFERENCE_SEED
from poldist.errors import PoldistError
from poldist.evaluation import EvalResult, evaluate
from poldist.networks import count_parameters
from poldist.plotting import plot_learning_curve
from poldist.runs import machine_info, write_json
from poldist.tables import format_table
from poldist.teachers import ZOO, Teacher, load_teacher, zoo_names


def machine_description() -> str:
    """CPU model and core count of this machine, for model cards and benchmarks."""
    m = machine_info()
    system = f"{platform.system()} {platform.release()}"
    return f"{m['cpu_model']}, {m['cpu_count']} cores, {system}, torch {m['torch_version']}"


def publish_teacher(
    run_dir: str | Path,
    name: str,
    *,
    episodes: int = 100,
    seed: int = 12345,
    reference_episodes: int = 1000,
    half: bool = False,
    notes: str = "",
    checkpoint: str | Path | None = None,
) -> Path:
    """Copy ``<run_dir>/teacher`` into the zoo as ``name`` and write its model card.

    Args:
        run_dir: a ``poldist train-teacher`` run: finished, or the run ``checkpoint`` came from.
        name: short name, e.g. ``minatar/breakout``.
        episodes: evaluation episodes for the teacher and for the random policy.
        seed: evaluation seed (recorded in the card).
        reference_episodes: episodes of the reference score (:func:`reference_score`); 0: none.
        half: store the weights in half precision (half the file; the card records the score of
            the half-precision network, and ``half_precision_check`` compares it with the full one
            on the same episodes).
        notes: a paragraph for the model card (e.g. where the hyper-parameters come from).
        checkpoint: publish this checkpoint instead of ``<run_dir>/teacher``: the run's online
            network carried at some step (``scripts/carry_run.py weights``), e.g. the candidate a
            selection evaluation picked; the card's steps, updates, wall time and learning curve
            stop at that step.

    Returns:
        The zoo directory of the teacher.
    """
    run_dir = Path(run_dir)
    src = Path(checkpoint) if checkpoint is not None else run_dir / "teacher"
    ckpt = load_checkpoint(src, blobs=False)  # verifies the checkpoint is whole
    training = training_record(run_dir, ckpt.metadata if checkpoint is not None else None)
    dest = ZOO / name
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    half_check = None
    if half:
        full = load_teacher(src)
        full_score = evaluate(full, full.env, episodes, epsilon=0.05, seed=seed)
        meta = {k: v for k, v in ckpt.metadata.items() if k not in ("format", "format_version", "files")}
        save_checkpoint(
            dest, {k: v.half() for k, v in ckpt.tensors.items()}, {**meta, "half_precision": True}
        )
    else:
        for f in ckpt.metadata["files"].values():
            shutil.copy2(src / f["file"], dest / f["file"])
        shutil.copy2(src / "meta.json", dest / "meta.json")

    teacher = load_teacher(dest)
    score = evaluate(teacher, teacher.env, episodes, epsilon=0.05, seed=seed)
    if half:
        half_check = {
            "full_precision_mean": full_score.mean,
            "half_precision_mean": score.mean,
            "same_returns": full_score.returns == score.returns,
            "episodes": episodes,
            "seed": seed,
            # a network carried in half precision: nothing in full precision left to compare with
            "source_half": any(v.dtype == torch.float16 for v in ckpt.tensors.values()),
        }
    random = random_policy_score(teacher, episodes, seed)
    commands = run_commands(run_dir)
    card: dict[str, Any] = {
        "name": name,
        "env_id": teacher.env.env_id,
        "env_settings": teacher.env.settings,
        "parameters": count_parameters(teacher.net),
        "commands": commands,
        **training,
        "machine": machine_description(),
        "eval": {"episodes": episodes, "epsilon": 0.05, "seed": seed, **score.to_dict()},
        "random_policy": {"episodes": episodes, "seed": seed, **random.to_dict()},
        "evaluate_command": f"poldist evaluate {name} --episodes {episodes} --seed {seed}",
        "network": "Nature DQN" if teacher.env.domain == "atari" else "MinAtar's DQN network",
        "notes": notes,
    }
    if half_check is not None:
        card["half_precision_check"] = half_check
    write_json(dest / "card.json", card)
    with tempfile.TemporaryDirectory() as tmp:  # the curve up to the published step
        evals = Path(tmp) / "evals.csv"
        rows, starts = chain_evals(run_dir, training)
        with open(evals, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["env_steps"])
            w.writeheader()
            w.writerows(rows)
        plot_learning_curve(
            evals,
            dest / "curve.png",
            x="env_steps",
            title=f"{teacher.env.env_id}: Double-DQN teacher (eval epsilon 0.05)",
            label="teacher in training",
            marks=starts,
            marks_label="warm start",
        )
    (dest / "MODEL_CARD.md").write_text(_card_markdown(card))
    if reference_episodes > 0:
        reference_score(name, episodes=reference_episodes)
    return dest


def training_record(run_dir: Path, carried: dict[str, Any] | None = None) -> dict[str, Any]:
    """What trained a teacher of ``run_dir``, for its card: seed, env steps, updates, wall time.

    ``carried``: the metadata of a checkpoint carried from the run at some step (its
    ``carried_from`` counters); None: the finished run (its ``summary.json``). A run warm-started
    from a carried network (``init_weights``) also gets ``warm_start``: the run it came from and
    that run's steps, updates and wall time, when the checkpoint is still on disk.

    Raises:
        PoldistError: ``carried`` names no counters, or another run.
    """
    if carried is None:
        summary = json.loads((run_dir / "summary.json").read_text())
        config = summary["config"]
        steps, updates, wall = summary["env_steps"], summary["updates"], summary["wall_seconds"]
        out: dict[str, Any] = {}
    else:
        origin = carried.get("carried_from")
        if not origin or "counters" not in origin:
            raise PoldistError("the checkpoint was not carried from a run (scripts/carry_run.py weights)")
        if origin["run"] != run_dir.name:
            raise PoldistError(f"the checkpoint was carried from run {origin['run']!r}, not {run_dir.name!r}")
        config = json.loads((run_dir / "config.json").read_text())
        c = origin["counters"]
        steps, updates, wall = c["step"], c["updates"], c["wall_seconds"]
        out = {"checkpoint_step": steps}
    out.update(
        seed=config["seed"],
        env_steps=steps,
        updates=updates,
        train_wall_seconds=wall,
        env_steps_per_second=steps / max(wall, 1e-9),
    )
    init = config.get("init_weights")
    if init:
        warm: dict[str, Any] = {"init_weights": init}
        segments = warm_start_chain(run_dir, init)
        if segments:  # the runs before this one, their counters summed; each in ``segments``
            warm.update(
                run=segments[-1]["run"],
                env_steps=sum(s["env_steps"] for s in segments),
                updates=sum(s["updates"] for s in segments),
                wall_seconds=sum(s["wall_seconds"] for s in segments),
                segments=segments,
            )
        out["warm_start"] = warm
    return out


def chain_evals(run_dir: Path, training: dict[str, Any]) -> tuple[list[dict[str, str]], list[int]]:
    """The training evaluations of a teacher's whole history, for its learning curve: every run
    of its warm-start chain (:func:`training_record`'s ``warm_start`` segments, each run's
    ``evals.csv`` found beside ``run_dir``), then ``run_dir``'s own, each cut at the step its
    network was carried (or published) and shifted by the steps before it. Returns the rows
    (``env_steps`` cumulative) and the cumulative step at which each warm start began; a segment
    whose run is gone adds no rows but still shifts the ones after it."""
    segments = [
        *training.get("warm_start", {}).get("segments", []),
        {"run": run_dir.name, "env_steps": training["env_steps"]},
    ]
    rows: list[dict[str, str]] = []
    starts: list[int] = []
    offset = 0
    for i, seg in enumerate(segments):
        path = run_dir.parent / seg["run"] / "evals.csv" if i < len(segments) - 1 else run_dir / "evals.csv"
        if i > 0:
            starts.append(offset)
        if path.exists():
            with open(path, newline="") as f:
                for r in csv.DictReader(f):
                    step = int(float(r["env_steps"]))
                    if step <= seg["env_steps"]:
                        rows.append({**r, "env_steps": str(offset + step)})
        offset += int(seg["env_steps"])
    return rows, starts


def run_commands(run_dir: Path) -> list[str]:
    """The commands a run was started and resumed with (its ``commands.txt``; ``[]`` if none)."""
    path = run_dir / "commands.txt"
    return path.read_text().strip().splitlines() if path.exists() else []


def warm_start_chain(run_dir: Path, init_weights: str) -> list[dict[str, Any]]:
    """The runs a warm-started run descends from, oldest first: each network it started from was
    carried from a run (its ``carried_from`` counters: steps, updates, wall time at the carry),
    and that run, found beside ``run_dir``, may itself have started from a carried network. The
    chain stops at a network that is gone, was not carried from a run, or whose run is gone."""
    segments: list[dict[str, Any]] = []
    init: str | None = init_weights
    while init and Path(init).exists() and all(s["init_weights"] != init for s in segments):
        origin = load_checkpoint(init, blobs=False).metadata.get("carried_from")
        if not origin or "counters" not in origin:
            break
        c = origin["counters"]
        segments.insert(
            0,
            {
                "run": origin["run"],
                "env_steps": c["step"],
                "updates": c["updates"],
                "wall_seconds": c["wall_seconds"],
                "init_weights": init,
                "commands": run_commands(run_dir.parent / origin["run"]),
            },
        )
        prior = run_dir.parent / origin["run"] / "config.json"
        init = json.loads(prior.read_text()).get("init_weights") if prior.exists() else None
    return segments


REFERENCE_ENVS = 50  # env seeds REFERENCE_SEED .. REFERENCE_SEED + 49, 20 episodes each


def reference_entry(
    teacher: Teacher, episodes: int, command: str, num_envs: int = REFERENCE_ENVS
) -> dict[str, Any]:
    """``teacher``'s reference score (``episodes`` episodes at epsilon 0.05 on env seeds from
    :data:`~poldist.envs.REFERENCE_SEED` on), as a card's ``reference`` entry made by ``command``."""
    res = evaluate(teacher, teacher.env, episodes, epsilon=0.05, seed=REFERENCE_SEED, num_envs=num_envs)
    return {
        "episodes": res.episodes,
        "epsilon": 0.05,
        "seed": REFERENCE_SEED,
        "num_envs": min(num_envs, episodes),
        "mean": res.mean,
        "ci_low": res.ci_low,
        "ci_high": res.ci_high,
        "returns": res.returns,
        "command": command,
        "machine": machine_description(),
    }


def random_policy_score(teacher: Teacher, episodes: int, seed: int) -> EvalResult:
    """A uniformly random policy over ``teacher``'s actions, on its env (the card's baseline)."""
    return evaluate(
        lambda o: torch.zeros(len(o), teacher.n_actions), teacher.env, episodes, epsilon=1.0, seed=seed
    )


def reference_score(name: str, *, episodes: int = 1000, num_envs: int = REFERENCE_ENVS) -> dict[str, Any]:
    """Score shipped teacher ``name`` for use as the yardstick of percent-of-teacher, and store it.

    ``episodes`` episodes at epsilon 0.05 on env seeds from :data:`~poldist.envs.REFERENCE_SEED`
    on, which no training, selection or student evaluation draws. The result (mean, 95% CI,
    every return) goes into the card as ``reference``; ``MODEL_CARD.md`` shows it beside the
    card's own score.

    Returns:
        The ``reference`` entry.
    """
    check_zoo_name(name)
    dest = ZOO / name
    card = json.loads((dest / "card.json").read_text())
    command = f"poldist reference-score {name} --episodes {episodes}"
    card["reference"] = reference_entry(load_teacher(dest), episodes, command, num_envs)
    write_json(dest / "card.json", card)
    (dest / "MODEL_CARD.md").write_text(_card_markdown(card))
    return card["reference"]


def add_card_video(
    name: str,
    student: str | Path,
    student_label: str,
    *,
    max_steps: int = 300,
    seed: int = 12345,
    provenance: str = "",
) -> dict[str, Any]:
    """Record shipped teacher ``name`` and a ``student`` side by side on one env seed (the
    evaluation protocol of :func:`poldist.record.record`) into ``play.gif`` beside the teacher,
    and show it in the model card.

    Args:
        name: shipped teacher, e.g. ``minatar/breakout``.
        student: the student's checkpoint directory.
        student_label: the student's panel name, e.g. ``student net2 (7%)``.
        max_steps: at most this many env steps of each (keeps the GIF a few hundred KB).
        provenance: how the student was made (a command), for the card.

    Returns:
        The card's ``video`` entry: file, labels, seed, steps, each agent's returns, bytes.
    """
    from poldist.record import record

    dest = ZOO / name
    card_path = dest / "card.json"
    if not card_path.exists():
        raise PoldistError(f"no shipped teacher {name!r} (shipped: {', '.join(zoo_names())})")
    card = json.loads(card_path.read_text())
    labels = ["teacher", student_label]
    rec = record(name, dest / "play.gif", vs=student, labels=labels, max_steps=max_steps, seed=seed)
    card["video"] = {
        "file": "play.gif",
        "labels": labels,
        "seed": seed,
        "epsilon": rec.epsilon,
        "max_steps": max_steps,
        "frames": rec.frames,
        "bytes": rec.bytes,
        "returns": {label: a.returns for label, a in zip(labels, rec.agents)},
        "student_provenance": provenance,
        "command": f"poldist record {name} --vs STUDENT --labels {shlex.quote(','.join(labels))} "
        f"--max-steps {max_steps} --seed {seed} --out play.gif",
    }
    write_json(card_path, card)
    (dest / "MODEL_CARD.md").write_text(_card_markdown(card))
    return card["video"]


def reference_returns(name: str) -> list[float]:
    """The reference episode returns of shipped teacher ``name`` (see :func:`reference_score`).

    Raises:
        PoldistError: the teacher has no reference score yet.
    """
    path = ZOO / name / "card.json"
    card = json.loads(path.read_text()) if path.exists() else {}
    if "reference" not in card:
        raise PoldistError(f"teacher {name} has no reference score: run poldist reference-score {name}")
    return card["reference"]["returns"]


def reference_mean(name: str) -> float | None:
    """The mean of shipped teacher ``name``'s reference score, or ``None`` if it has none."""
    try:
        returns = reference_returns(name)
    except PoldistError:
        return None
    return sum(returns) / len(returns)


def _card_markdown(card: dict[str, Any]) -> str:
    e, r = card["eval"], card["random_policy"]
    score = f"**{e['mean']:.2f}** (95% CI {e['ci_low']:.2f} to {e['ci_high']:.2f})"
    random = f"{r['mean']:.2f} (95% CI {r['ci_low']:.2f} to {r['ci_high']:.2f})"
    cmds = _commands_block(card)
    network = card.get("network", "MinAtar's DQN network")
    notes = f"\n\n{card['notes']}" if card.get("notes") else ""
    if card.get("half_precision_check"):
        h = card["half_precision_check"]
        same = "the same returns episode for episode" if h["same_returns"] else "different returns"
        if h.get("source_half"):
            same += "; the published network was carried in half precision, no full-precision copy was kept"
        notes += (
            f"\n\nWeights stored in half precision: {h['half_precision_mean']:.2f} against "
            f"{h['full_precision_mean']:.2f} in full precision over the same {h['episodes']} episodes "
            f"(seed {h['seed']}; {same})."
        )
    reference = ""
    if "reference" in card:
        ref = card["reference"]
        reference = (
            f"| reference score, the yardstick of percent-of-teacher (epsilon 0.05, {ref['episodes']:,} "
            f"episodes on env seeds {ref['seed']} to {ref['seed'] + ref['num_envs'] - 1}, used for "
            f"nothing else) | **{ref['mean']:.2f}** (95% CI {ref['ci_low']:.2f} to {ref['ci_high']:.2f}) |\n"
        )
        score = score.replace("**", "")
    return f"""# Teacher `{card["name"]}`

Double-DQN teacher for `{card["env_id"]}` ({network}, {card["parameters"]:,} parameters),
trained by this library.{notes}

| | |
|---|---|
{reference}| score (epsilon 0.05, {e["episodes"]} episodes, seed {e["seed"]}) | {score} |
| uniformly random policy ({r["episodes"]} episodes) | {random} |
{_training_rows(card)}
| machine | {card["machine"]} |
| training seed | {card["seed"]} |
| env settings | `{json.dumps(card["env_settings"])}` |

Trained with:

```bash
{cmds}
```

Reproduce the score: `{card["evaluate_command"]}`{
        f"; the reference score: `{card['reference']['command']}`" if "reference" in card else ""
    }

![learning curve](curve.png)
{_curve_caption(card)}{_video_markdown(card)}"""


def _commands_block(card: dict[str, Any]) -> str:
    """The card's "Trained with" lines: a warm-started teacher's every run in order, each under a
    comment with its name and steps (a run whose commands were not kept says so)."""
    segments = card.get("warm_start", {}).get("segments")
    if not segments:
        return "\n".join(card["commands"]) or "(not recorded)"
    last = {"run": "the published run", "env_steps": card["env_steps"], "commands": card["commands"]}
    blocks = []
    for i, seg in enumerate([*segments, last]):
        start = f", warm-started from run {i}'s network" if i else ""
        head = f"# run {i + 1} ({seg['run']}): {seg['env_steps']:,} env steps{start}"
        blocks.append("\n".join([head, *(seg.get("commands") or ["# (commands not kept)"])]))
    return "\n\n".join(blocks)


def _curve_caption(card: dict[str, Any]) -> str:
    """A line under a warm-started teacher's curve: it spans every run of the chain."""
    if not card.get("warm_start", {}).get("segments"):
        return ""
    return (
        "\nThe training evaluations of every run in its history, at cumulative env steps (dotted "
        "lines: where a warm start began); each point is a few episodes on training-time env seeds, "
        "not the reference score.\n"
    )


def total_env_steps(card: dict[str, Any]) -> int:
    """A teacher's env steps in all: its run's and, warm-started, the earlier runs' of its chain."""
    return card["env_steps"] + card.get("warm_start", {}).get("env_steps", 0)


def total_wall_seconds(card: dict[str, Any]) -> float:
    """A teacher's training wall time in all (its run's and the earlier runs' of its chain)."""
    return card["train_wall_seconds"] + card.get("warm_start", {}).get("wall_seconds", 0.0)


def _training_rows(card: dict[str, Any]) -> str:
    """The card's env steps, updates and wall time rows; a warm-started run's in all and per run."""
    steps = f"{card['env_steps']:,} ({card['env_steps_per_second']:,.0f} steps/s)"
    updates, wall = f"{card['updates']:,}", f"{card['train_wall_seconds'] / 60:.1f} min"
    warm = card.get("warm_start")
    if warm and "env_steps" in warm:
        before, rate = warm["env_steps"], card["env_steps_per_second"]
        # cards made before chains were followed hold one earlier run, without ``segments``
        segments = warm.get("segments") or [warm]
        earlier = ", then ".join(f"{s['env_steps']:,} in run `{s['run']}`" for s in segments)
        steps = (
            f"{before + card['env_steps']:,} in all: {earlier}, then {card['env_steps']:,} "
            f"warm-started from its online network ({rate:,.0f} steps/s; each warm start with a new "
            "replay memory, optimiser and target network)"
        )
        parts = [s["updates"] for s in segments] + [card["updates"]]
        updates = f"{sum(parts):,} in all ({' + '.join(f'{u:,}' for u in parts)})"
        mins = [s["wall_seconds"] / 60 for s in segments] + [card["train_wall_seconds"] / 60]
        wall = f"{sum(mins):.1f} min in all ({' + '.join(f'{m:.1f}' for m in mins)})"
    elif warm:
        steps += f", warm-started from `{warm['init_weights']}`"
    if "checkpoint_step" in card:
        steps += f"; the network carried at step {card['checkpoint_step']:,} of its run"
    return f"| env steps | {steps} |\n| gradient updates | {updates} |\n| training wall time | {wall} |"


def _video_markdown(card: dict[str, Any]) -> str:
    """The card's video paragraph, or nothing."""
    v = card.get("video")
    if not v:
        return ""
    provenance = f" The student: {v['student_provenance']}." if v.get("student_provenance") else ""
    return f"""
The teacher (left) and a distilled {v["labels"][1].removeprefix("student ")} student (right) on the
same env seed ({v["seed"]}, epsilon {v["epsilon"]:g}, at most {v["max_steps"]} steps each).{provenance}

![teacher and student playing]({v["file"]})
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
    """The shipped teachers with their reference and model-card scores, beside the MinAtar paper's DQN."""
    rows = []
    for name in zoo_names():
        card_path = ZOO / name / "card.json"
        if not card_path.exists():
            continue
        card = json.loads(card_path.read_text())
        e, r = card["eval"], card["random_policy"]
        game = name.split("/", 1)[1]
        paper = MINATAR_PAPER_DQN.get(game) if name.startswith("minatar/") else None
        ref = card.get("reference")
        rows.append(
            [
                name,
                f"{ref['mean']:.2f} [{ref['ci_low']:.2f}, {ref['ci_high']:.2f}]" if ref else "-",
                f"{e['mean']:.2f} [{e['ci_low']:.2f}, {e['ci_high']:.2f}]",
                f"{r['mean']:.2f}",
                f"~{paper:g}" if paper is not None else "-",
                f"{total_env_steps(card) / 1e6:.3g}M",
                f"{total_wall_seconds(card) / 60:.0f} min",
            ]
        )
    headers = [
        "teacher",
        "reference score [95% CI]",
        "card score [95% CI]",
        "random",
        "MinAtar paper DQN",
        "env steps",
        "train time",
    ]
    if not markdown:
        return format_table(headers, rows)
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def check_zoo_name(name: str) -> None:
    """Refuse names that would escape the zoo folder."""
    if ".." in Path(name).parts or Path(name).is_absolute() or name.count("/") != 1:
        raise PoldistError(f"teacher name must look like 'minatar/breakout', got {name!r}")
