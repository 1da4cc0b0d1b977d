"""What teacher-labelled collection could reach on this machine: the CPU work of a vector step.

``poldist bench`` compares ``collect()`` with stepping the same envs with random actions. This
measures the two costs ``collect()`` adds up, per vector step of each domain's default envs (its
recipe's: 16 on MinAtar, 8 on Atari), in wall time and in CPU time of every thread of the process
(``resource.getrusage``):

- ``random``: stepping the envs with random actions (ALE steps them in its own threads, MinAtar
  in Python on this thread);
- ``label``: the default labeller (``auto``: onnxruntime on the threads ``distill`` picks) on a
  batch of as many observations;
- ``collect``: ``collect()`` at the default settings (as the bench's default row), for reference.

From them, two ceilings on collect/random:

- ``turns``: ``random / (random + label)`` in wall time: labelling and stepping one after the
  other (the bench's bare teacher-acting loop, with nothing else);
- ``cores``: ``random / max(random, (random CPU + label CPU) / cores)``: no schedule on this
  machine's cores beats it, however the labelling overlaps the stepping.

The three are timed back to back in each of ``--rounds`` alternated rounds and each ratio is the
median of the rounds' own ratios::

    .venv/bin/python scripts/collection_bounds.py --out results/collection_bounds.json
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from poldist.collection import TeacherControl, collect
from poldist.config import DistillConfig
from poldist.distillation import base_architecture, make_student
from poldist.envs import make_vector_env
from poldist.experiments.bench_collection import default_envs, default_groups
from poldist.experiments.bench_common import MINATAR_TEACHER, filled_task, random_atari_teacher
from poldist.fast_teacher import make_labeller, usable_cores
from poldist.runs import write_json
from poldist.zoo import machine_description


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def timed(fn: Callable[[], Any], seconds: float) -> tuple[float, float]:
    """``fn``'s wall and process CPU seconds per call, timed for ``seconds`` after 3 warm-up calls."""
    for _ in range(3):
        fn()
    calls, c0, w0 = 0, _cpu(), time.perf_counter()
    while time.perf_counter() - w0 < seconds:
        fn()
        calls += 1
    return (time.perf_counter() - w0) / calls, (_cpu() - c0) / calls


def measure(domain: str, rounds: int, seconds: float, seed: int = 0) -> dict[str, Any]:
    """The rounds' per-vector-step costs on ``domain`` (``minatar`` or ``atari``) and the ceilings."""
    envs = default_envs(domain)
    if domain == "minatar":
        cfg, teachers = DistillConfig(teacher=MINATAR_TEACHER, num_envs=envs), None
    else:
        cfg = DistillConfig(teacher="", memory_size=20_000, num_envs=envs)
        teachers = [random_atari_teacher(seed)]
    groups = default_groups(domain)
    task = filled_task(cfg, teachers, 0, seed, groups)
    n, spec = cfg.num_envs, task.spec
    student = make_student(cfg, [task], base_architecture([task]))
    lab = make_labeller(task.teacher, cfg.labeller, cfg.labeller_threads)
    rng = np.random.default_rng(seed)
    env = make_vector_env(spec, n, seed + 1)
    obs = env.reset(seed=seed + 1)[0]
    for _ in range(20):  # observations from play, not the first frame
        obs = env.step(rng.integers(0, spec.n_actions, n))[0]
    batch = obs.copy()
    controller = TeacherControl(cfg.epsilon)
    fns = {
        "random": lambda: env.step(rng.integers(0, spec.n_actions, n)),
        "label": lambda: lab(batch),
        "collect": lambda: collect(task, controller, student, n, rng, labeller=lab),
    }
    cores = usable_cores()
    per: list[dict[str, Any]] = []
    try:
        for _ in range(rounds):
            t = {name: timed(fn, seconds) for name, fn in fns.items()}
            (wr, cr), (wl, cl), (wc, _) = t["random"], t["label"], t["collect"]
            per.append(
                {
                    **{f"{k}_wall_ms": v[0] * 1e3 for k, v in t.items()},
                    **{f"{k}_cpu_ms": v[1] * 1e3 for k, v in t.items()},
                    "collect_vs_random": wr / wc,
                    "ceiling_turns": wr / (wr + wl),
                    "ceiling_cores": wr / max(wr, (cr + cl) / cores),
                }
            )
    finally:
        env.close()
        task.close()
    return {
        "env_id": spec.env_id,
        "teacher": MINATAR_TEACHER if domain == "minatar" else "nature-dqn (random weights)",
        "num_envs": n,
        "groups": groups,
        "labeller": lab.kind,
        "labeller_threads": getattr(lab, "threads", 1),
        "cores": cores,
        "median": {k: statistics.median(r[k] for r in per) for k in per[0]},
        "rounds": per,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--domains", default="minatar,atari", help="comma-separated: minatar, atari (default both)"
    )
    p.add_argument("--rounds", type=int, default=7, help="alternated rounds (default 7)")
    p.add_argument(
        "--seconds", type=float, default=0.5, help="seconds each cost is timed a round (default 0.5)"
    )
    p.add_argument("--out", default="runs/collection_bounds.json", help="JSON written (a path)")
    args = p.parse_args(argv)
    rows = []
    for domain in args.domains.split(","):
        row = measure(domain, args.rounds, args.seconds)
        m = row["median"]
        print(
            f"{row['env_id']}: random {m['random_wall_ms']:.3f} ms ({m['random_cpu_ms']:.3f} CPU), "
            f"label {m['label_wall_ms']:.3f} ms ({m['label_cpu_ms']:.3f} CPU), collect/random "
            f"{m['collect_vs_random']:.2f}; ceilings: turns {m['ceiling_turns']:.2f}, "
            f"cores {m['ceiling_cores']:.2f}",
            flush=True,
        )
        rows.append(row)
    command = "python scripts/collection_bounds.py " + " ".join(sys.argv[1:] if argv is None else argv)
    write_json(
        args.out,
        {
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": machine_description(),
            "command": command.strip(),
            "rows": rows,
        },
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
