"""How Atari collection fits between the student's updates: a whole distillation, three ways.

``collect()`` leaves Atari's envs stepping in ALE's own threads after its last vector step, so
that they step while the student updates (the next ``collect()`` receives the step). This runs
the same distillation (the atari recipe; a small memory and warm-up so that it is short) three
ways, alternated for ``--rounds`` rounds:

- ``in-flight``: one group (``env_groups`` 1), its last step left in flight;
- ``received``: one group, each ``collect()`` followed by receiving the step at once (the envs
  idle during the update; how the library collected before);
- ``2-groups``: ``env_groups`` 2, the atari recipe's default (one group's envs step while the
  teacher labels the other), the groups' last steps left in flight.

It records each run's training updates per second (after a warm-up of ``--warmup`` updates and the
first evaluation, both untimed) and a hash of the student's weights at the end: equal hashes mean
bit-identical students, i.e. the same data::

    .venv/bin/python scripts/atari_collection_check.py --out results/atari/collection_check.json
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from poldist.collection import Collector, DistillTask
from poldist.distillation import Distiller
from poldist.recipes import recipe_config
from poldist.runs import write_json
from poldist.zoo import machine_description

WAYS = ("in-flight", "received", "2-groups")


class ReceivingCollector:
    """A collector that receives the envs' step in flight as soon as ``collect()`` returns."""

    def __init__(self, inner: Collector):
        self.inner = inner

    def collect(self, task: DistillTask, *args: Any, **kwargs: Any) -> None:
        """The inner collector's ``collect``, then the step it left in flight received."""
        self.inner.collect(task, *args, **kwargs)
        _ = task.obs

    def close(self) -> None:
        """Close the inner collector."""
        self.inner.close()


def student_hash(distiller: Distiller) -> str:
    """sha256 over the student's tensors, in state-dict order."""
    h = hashlib.sha256()
    for name, tensor in distiller.student.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def one_run(args: argparse.Namespace, way: str, run_dir: Path) -> dict[str, Any]:
    """One distillation collected ``way``: its timed updates/s and the student's hash."""
    cfg = recipe_config(
        args.teacher,
        student=args.student,
        seed=args.seed,
        env_groups=2 if way == "2-groups" else 1,
        learning_starts=args.learning_starts,
        memory_size=args.memory_size,
        eval_episodes=1,
        eval_interval=10**9,
        checkpoint_interval=10**9,
    )
    with Distiller(cfg, run_dir) as d:
        if way == "received":
            d.collector = ReceivingCollector(d.collector)
        d.evaluate()  # the untrained student's evaluation, out of the timed part
        d.run(args.warmup, show_progress=False)  # fills learning_starts
        start = time.perf_counter()
        d.run(args.warmup + args.updates, show_progress=False)
        seconds = time.perf_counter() - start
        return {"way": way, "updates_per_s": args.updates / seconds, "student_sha256": student_hash(d)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teacher", default="atari/pong", help="an Atari teacher (shipped name or checkpoint)")
    p.add_argument("--student", default="net2", help="student size")
    p.add_argument("--seed", type=int, default=0, help="run seed")
    p.add_argument("--updates", type=int, default=1500, help="timed updates per run")
    p.add_argument("--warmup", type=int, default=200, help="untimed updates before the timed ones")
    p.add_argument("--learning-starts", type=int, default=2000, help="teacher transitions before updates")
    p.add_argument("--memory-size", type=int, default=20_000, help="replay memory, in transitions")
    p.add_argument("--rounds", type=int, default=3, help="alternations of the three ways")
    p.add_argument(
        "--out", type=Path, default=Path("results/atari/collection_check.json"), help="result JSON"
    )
    args = p.parse_args()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for way in WAYS:
                run = one_run(args, way, Path(tmp) / f"r{r}-{way}")
                runs.append({"round": r, **run})
                print(f"round {r}, {way}: {run['updates_per_s']:.1f} updates/s", flush=True)
    median = {w: statistics.median(x["updates_per_s"] for x in runs if x["way"] == w) for w in WAYS}
    identical = len({x["student_sha256"] for x in runs}) == 1
    result = {
        "command": "python scripts/atari_collection_check.py "
        + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()),
        "machine": machine_description(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "runs": runs,
        "median_updates_per_s": median,
        "in_flight_vs_received": median["in-flight"] / median["received"],
        "two_groups_vs_received": median["2-groups"] / median["received"],
        "students_identical": identical,
    }
    write_json(args.out, result)
    print(
        f"in-flight / received: {result['in_flight_vs_received']:.3f}x, 2-groups / received: "
        f"{result['two_groups_vs_received']:.3f}x updates/s; students "
        f"{'bit-identical' if identical else 'DIFFER'}; {args.out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
