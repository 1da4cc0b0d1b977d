"""Inference speed of deployed policies: PyTorch vs onnxruntime, in actions per second.

Times the shipped MinAtar Breakout teacher and students of it (net1, net2, net3; random weights:
speed does not depend on them) at batch 1 (acting in one env) and batch 256 (many envs), from a
numpy uint8 batch to numpy actions: ``net(torch.from_numpy(obs)).argmax(1)`` under
``torch.inference_mode`` against :meth:`poldist.deploy.OnnxPolicy.act`. Both use the same number
of threads. Prints a table and writes JSON; about 30 s (``--atari`` adds the Nature-DQN network
and its students on 84x84 frames)::

    .venv/bin/python scripts/bench_inference.py --threads 1 --json runs/bench_inference.json
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch

from poldist.checkpoints import save_model
from poldist.cli import format_table
from poldist.deploy import OnnxPolicy
from poldist.envs import make_env_spec
from poldist.export import export_onnx
from poldist.networks import QNetwork, count_parameters, nature_dqn, student_architecture
from poldist.teachers import load_teacher

SIZES = ("net1", "net2", "net3")


def rate(fn: Callable[[], Any], batch: int, seconds: float) -> float:
    """Actions per second of ``fn`` (one call acts on ``batch`` observations), after a warm-up."""
    for _ in range(3):
        fn()
    calls, start = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return batch * calls / elapsed


def models(atari: bool) -> list[tuple[str, QNetwork, Any]]:
    """``(name, network, env spec)`` of each network to time."""
    teacher = load_teacher("minatar/breakout")
    out = [("minatar/breakout teacher", teacher.net, teacher.env)]
    for size in SIZES:
        out.append((f"minatar {size}", QNetwork(student_architecture(teacher.net.arch, size)), teacher.env))
    if atari:
        spec = make_env_spec("ALE/Breakout-v5")
        arch = nature_dqn(spec.n_actions)
        out.append(("atari nature (teacher)", QNetwork(arch), spec))
        for size in SIZES:
            out.append((f"atari {size}", QNetwork(student_architecture(arch, size)), spec))
    return out


def _rates(net: QNetwork, policy: OnnxPolicy, obs: np.ndarray, seconds: float) -> tuple[float, float]:
    """Actions per second of torch and of onnxruntime on one batch ``obs`` (B, C, H, W) uint8."""

    def torch_act() -> np.ndarray:
        with torch.inference_mode():
            return net(torch.from_numpy(obs)).argmax(1).numpy()

    np.testing.assert_array_equal(torch_act(), policy.act(obs))
    return rate(torch_act, len(obs), seconds), rate(lambda: policy.act(obs), len(obs), seconds)


def bench(threads: int, seconds: float, atari: bool, batches: tuple[int, ...] = (1, 256)) -> list[dict]:
    """One row per (network, batch): actions/s of torch and onnxruntime, and their ratio."""
    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, net, spec) in enumerate(models(atari)):
            net.eval()
            save_model(Path(tmp) / f"m{i}", net, spec)
            policy = OnnxPolicy(export_onnx(Path(tmp) / f"m{i}", Path(tmp) / f"m{i}.onnx"), threads=threads)
            high = 2 if net.arch.obs_scale == 1.0 else 256
            for batch in batches:
                obs = rng.integers(0, high, (batch, *net.arch.obs_shape), dtype=np.uint8)
                t, o = _rates(net, policy, obs, seconds)
                rows.append(
                    {
                        "model": name,
                        "params": count_parameters(net),
                        "batch": batch,
                        "torch_actions_per_s": t,
                        "onnxruntime_actions_per_s": o,
                        "speedup": o / t,
                    }
                )
    return rows


def main() -> None:
    """Parse flags, time, print the table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="threads of torch and onnxruntime (default 1)")
    parser.add_argument("--seconds", type=float, default=0.5, help="timing per measurement (default 0.5)")
    parser.add_argument("--atari", action="store_true", help="also the Nature-DQN network and its students")
    parser.add_argument("--json", type=Path, default=Path("runs/bench_inference.json"))
    args = parser.parse_args()
    start = time.perf_counter()
    rows = bench(args.threads, args.seconds, args.atari)
    table = format_table(
        ["model", "params", "batch", "torch actions/s", "onnxruntime actions/s", "onnxruntime/torch"],
        [
            [
                r["model"],
                r["params"],
                r["batch"],
                round(r["torch_actions_per_s"]),
                round(r["onnxruntime_actions_per_s"]),
                f"{r['speedup']:.2f}x",
            ]
            for r in rows
        ],
    )
    print(table)
    result = {
        "threads": args.threads,
        "seconds_per_measurement": args.seconds,
        "torch_version": torch.__version__,
        "onnxruntime_version": ort.__version__,
        "machine": f"{platform.machine()} {platform.processor()}".strip(),
        "wall_seconds": time.perf_counter() - start,
        "rows": rows,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\n{args.threads} thread(s), {result['wall_seconds']:.0f} s; results: {args.json}")


if __name__ == "__main__":
    main()
