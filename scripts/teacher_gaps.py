"""How close are the shipped teachers' best two Q-values? (Why tau = 0.01 is sharp on MinAtar.)

Each teacher plays 20,000 steps (epsilon 0.05, 8 envs, seed 0); for every state the gap between
its largest and second-largest Q-value is recorded. Prints and writes the share of states per gap
range and the mean gap; with tau = 0.01 a gap of 0.01 already makes the KL target e:1 between the
two actions, a gap of 0.05 makes it e^5 = 148:1::

    .venv/bin/python scripts/teacher_gaps.py --out results/teacher_gaps.json
"""

from __future__ import annotations

import argparse

import numpy as np

from poldist.collection import TeacherControl, collect
from poldist.distillation import DistillConfig, build_tasks
from poldist.runs import write_json
from poldist.tables import format_table
from poldist.teachers import zoo_names

EDGES = (0.0, 0.01, 0.03, 0.1, 0.3, float("inf"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--states", type=int, default=20_000)
    parser.add_argument("--out", default="results/teacher_gaps.json")
    args = parser.parse_args()
    results, rows = {}, []
    for name in (n for n in zoo_names() if n.startswith("minatar/")):
        task = build_tasks(DistillConfig(teacher=name, memory_size=args.states))[0]
        task.start(8, seed=0)
        collect(task, TeacherControl(0.05), None, args.states, np.random.default_rng(0))
        task.env.close()
        q = np.sort(task.memory.all_rows()["teacher_out"], axis=1)
        gap = q[:, -1] - q[:, -2]
        shares = [float(((gap >= lo) & (gap < hi)).mean()) for lo, hi in zip(EDGES, EDGES[1:])]
        results[name] = {"mean_gap": float(gap.mean()), "median_gap": float(np.median(gap)), "shares": shares}
        rows.append([name, f"{np.median(gap):.3f}"] + [f"{100 * s:.1f}" for s in shares])
    ranges = [f"[{lo:g}, {hi:g})" for lo, hi in zip(EDGES, EDGES[1:])]
    print(format_table(["teacher", "median gap"] + [f"% gap {r}" for r in ranges], rows))
    write_json(args.out, {"states": args.states, "edges": list(EDGES[:-1]) + ["inf"], "teachers": results})


if __name__ == "__main__":
    main()
