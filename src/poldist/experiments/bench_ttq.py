"""Benchmark section 4, time to quality: training seconds for a net2 student to reach 95% of its
teacher by distillation, against Double DQN from scratch on the same network."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from poldist.distillation import Distiller
from poldist.dqn import DQNConfig, DQNTrainer
from poldist.envs import env_seed
from poldist.evaluation import evaluate
from poldist.experiments.bench_common import CPU, MINATAR_TEACHER, TTQ_TARGET, Budget
from poldist.networks import count_parameters
from poldist.recipes import recipe_config
from poldist.tables import format_table
from poldist.teachers import ZOO
from poldist.zoo import reference_returns


def _eval_seed(seed: int, updates: int) -> int:
    """The env seed of the student's evaluation after ``updates`` updates (the teacher's: 0)."""
    return env_seed(seed, "ttq-eval", updates)


def teacher_card_score(name: str = MINATAR_TEACHER) -> float:
    """The shipped teacher's score from its model card (100 episodes at epsilon 0.05)."""
    return float(json.loads((ZOO / name / "card.json").read_text())["eval"]["mean"])


def bench_time_to_quality(
    budget: Budget, workdir: Path, seed: int = 0, device: torch.device = CPU
) -> dict[str, Any]:
    """Training seconds to 95% of the teacher: distillation into net2 against Double DQN on net2,
    both on ``device``.

    Distillation runs the minatar recipe (what ``poldist distill`` runs for this teacher) at a
    constant learning rate, since its length is open. The bar is 95% of the teacher's reference
    score (1,000 episodes on reserved env seeds, the yardstick of percent-of-teacher everywhere).
    Every evaluation of either side (``eval_episodes`` episodes, epsilon 0.05) plays on env seeds
    of its own: one fixed set read the teacher 1.8 points below its reference score, a bar no
    student could clear on it. The teacher on one such set and its model card's score are
    recorded alongside. Evaluation time is excluded on both sides.
    """
    cfg = recipe_config(
        MINATAR_TEACHER,
        "minatar",
        student="net2",
        lr_schedule="constant",
        learning_starts=budget.ttq_learning_starts,
        updates=10**9,  # never the last update: Distiller.run then neither evaluates nor checkpoints
        eval_interval=10**9,  # we evaluate between the timed chunks ourselves
        checkpoint_interval=10**9,
        eval_episodes=budget.ttq_eval_episodes,
        seed=seed,
        device=str(device),
    )
    distiller = Distiller(cfg, workdir / "distill")
    teacher = distiller.tasks[0].teacher
    card = teacher_card_score()
    paired = evaluate(
        teacher,
        distiller.tasks[0].spec,
        cfg.eval_episodes,
        epsilon=0.05,
        seed=_eval_seed(seed, 0),
        device=teacher.device,
    ).mean
    teacher_score = float(np.mean(reference_returns(MINATAR_TEACHER)))  # the yardstick (issue 18)
    target = 0.95 * teacher_score
    curve: list[dict[str, float]] = []
    train_s, reached = 0.0, False
    try:
        distiller.evaluate()  # the untrained student's evaluation (update 0): not training time
        while train_s < budget.ttq_distill_max_s:
            start = time.perf_counter()
            distiller.run(distiller.updates + budget.ttq_chunk, show_progress=False)
            train_s += time.perf_counter() - start
            distiller_eval = distiller.evaluate_student(
                cfg.eval_episodes, _eval_seed(seed, distiller.updates)
            )[0].mean
            curve.append({"updates": distiller.updates, "train_seconds": train_s, "score": distiller_eval})
            if distiller_eval >= target:
                reached = True
                break
    finally:
        distiller.close()
    distill = {
        "reached": reached,
        "train_seconds": train_s,
        "updates": distiller.updates,
        "updates_per_s_incl_collection": distiller.updates / train_s,
        "best_score": max(p["score"] for p in curve),
        "final_score": curve[-1]["score"],
        "params": count_parameters(distiller.student),
        "curve": curve,
    }

    # Double DQN from scratch on the same network, stopped at the target or at 10x the distillation time
    cap = min(TTQ_TARGET * train_s, budget.ttq_dqn_max_s)
    dcfg = DQNConfig(
        env_id=teacher.env.env_id,
        network="net2",
        seed=seed,
        total_steps=budget.dqn_total_steps,
        learning_starts=budget.dqn_learning_starts,
        buffer_size=budget.dqn_buffer_size,
        eval_interval=budget.dqn_eval_interval,
        eval_episodes=cfg.eval_episodes,
        checkpoint_interval=10**12,  # no periodic checkpoints (writing the memory is not training)
        eval_seeds="fresh",  # as the student's: each evaluation on env seeds of its own
        device=str(device),
    )
    dqn_curve: list[dict[str, float]] = []
    dqn_reached, dqn_s = False, 0.0
    with DQNTrainer(dcfg, workdir / "dqn", show_progress=False) as trainer:
        while trainer.step < dcfg.total_steps:
            start, eval_before = time.perf_counter(), trainer.eval_seconds
            results = trainer.run(trainer.next_eval)  # stops right after the evaluation due next
            # training time: the chunk without its evaluation
            dqn_s += time.perf_counter() - start - (trainer.eval_seconds - eval_before)
            if results is None:
                continue
            dqn_curve.append({"env_steps": trainer.step, "train_seconds": dqn_s, "score": results[0].mean})
            dqn_reached = results[0].mean >= target
            if dqn_reached or dqn_s >= cap:
                break
        summary = trainer.finish()
    dqn = {
        "reached": dqn_reached,
        "train_seconds": dqn_s,
        "time_cap_seconds": cap,
        "env_steps": summary["env_steps"],
        "updates": summary["updates"],
        "best_score": max(p["score"] for p in dqn_curve),
        "final_score": dqn_curve[-1]["score"],
        "curve": dqn_curve,
    }
    return {
        "env_id": teacher.env.env_id,
        "network": "net2",
        "teacher_score": teacher_score,
        "teacher_score_source": "reference score (1,000 episodes on reserved env seeds)",
        "teacher_paired_score": paired,
        "teacher_paired_source": f"evaluated as the student is: {cfg.eval_episodes} episodes on env "
        f"seeds of their own (seed {_eval_seed(seed, 0)})",
        "teacher_card_score": card,
        "target_fraction": 0.95,
        "target_score": target,
        "distillation": distill,
        "dqn": dqn,
        # a lower bound while the DQN has not reached the target; undefined if distillation did not
        "ratio": dqn_s / train_s,
        "ratio_is_lower_bound": reached and not dqn_reached,
        "ratio_valid": reached,
        "target_ratio": TTQ_TARGET,
        "config": {"distill_chunk_updates": budget.ttq_chunk, "dqn_eval_interval": dcfg.eval_interval},
    }


def ttq_table(res: dict[str, Any]) -> str:
    """Section 4 as a plain-text table and what it shows."""
    d, q = res["distillation"], res["dqn"]
    table = format_table(
        ["method", "network", "reached target", "train seconds", "updates", "best score", "last score"],
        [
            [
                "distillation (recipe)",
                res["network"],
                "yes" if d["reached"] else "no",
                d["train_seconds"],
                d["updates"],
                d["best_score"],
                d["final_score"],
            ],
            [
                "Double DQN",
                res["network"],
                "yes" if q["reached"] else "no",
                q["train_seconds"],
                q["updates"],
                q["best_score"],
                q["final_score"],
            ],
        ],
    )
    lines = [
        table,
        f"teacher {res['teacher_score']:.2f} ({res['teacher_score_source']}; model card: "
        f"{res['teacher_card_score']:.2f}), target {res['target_score']:.2f} (95%)",
    ]
    if not res["ratio_valid"]:
        lines.append("distillation did not reach the target within its budget: no ratio")
    elif res["ratio_is_lower_bound"]:
        lines.append(
            f"DQN did not reach the target in {q['train_seconds']:.1f} s "
            f"(cap {q['time_cap_seconds']:.1f} s): distillation is more than {res['ratio']:.1f}x faster "
            f"(best DQN score {q['best_score']:.2f})"
        )
    else:
        lines.append(f"distillation is {res['ratio']:.1f}x faster than DQN")
    return "\n".join(lines)
