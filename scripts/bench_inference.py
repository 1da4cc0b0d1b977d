"""Inference speed of deployed policies: PyTorch vs onnxruntime, in actions per second.

A thin wrapper around the inference section of ``poldist bench`` (the code lives in
:func:`poldist.experiments.bench_inference.bench_inference`), for timing inference alone with
other threads or timings: the shipped MinAtar Breakout teacher and students of it (net1, net2,
net3) at batch 1 and 256, ``--atari`` adds the Nature-DQN network and its students on 84x84 frames::

    .venv/bin/python scripts/bench_inference.py --threads 1 --json runs/bench_inference.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from poldist.experiments.bench_inference import bench_inference, inference_table
from poldist.runs import machine_info


def main() -> None:
    """Parse flags, time, print the table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="threads of torch and onnxruntime (default 1)")
    parser.add_argument("--seconds", type=float, default=0.5, help="timing per measurement (default 0.5)")
    parser.add_argument("--atari", action="store_true", help="also the Nature-DQN network and its students")
    parser.add_argument("--json", type=Path, default=Path("runs/bench_inference.json"))
    args = parser.parse_args()
    start = time.perf_counter()
    result = bench_inference(args.threads, args.seconds, args.atari)
    print(inference_table(result["rows"]))
    for note in result["notes"]:
        print(f"note: {note}")
    result.update(machine=machine_info(), wall_seconds=time.perf_counter() - start)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\n{args.threads} thread(s), {result['wall_seconds']:.0f} s; results: {args.json}")


if __name__ == "__main__":
    main()
