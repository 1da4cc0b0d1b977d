"""cProfile of the two hot paths RESULTS.md section 6 explains: teacher-labelled collection on
MinAtar (``collect``) and Atari Double-DQN teacher training (``dqn``). Prints the top functions by
own time; ratios between rows of one run are what to read (other jobs slow every row alike).
``ort``: onnxruntime's own profile of the MinAtar teacher's labelling graph, each node's mean
time per call at a batch, and the multiply-adds per second of the matrix products::

    .venv/bin/python scripts/profile_hot_paths.py collect --envs 8 --labeller torch
    .venv/bin/python scripts/profile_hot_paths.py dqn --threads 1
    .venv/bin/python scripts/profile_hot_paths.py ort --batch 8
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import tempfile
from pathlib import Path


def profile_collect(envs: int, labeller: str, transitions: int) -> cProfile.Profile:
    """``collect()`` teacher-driven on MinAtar Breakout with the shipped teacher, ``envs`` envs."""
    import numpy as np
    import torch

    from poldist.collection import TeacherControl, collect
    from poldist.distillation import DistillConfig, base_architecture, make_student
    from poldist.experiments.bench_common import filled_task
    from poldist.fast_teacher import make_labeller

    torch.set_num_threads(1)  # as poldist bench and the library's default (torch_threads=1)
    cfg = DistillConfig(teacher="minatar/breakout", num_envs=envs)
    task = filled_task(cfg, None, 0, 0)
    student = make_student(cfg, [task], base_architecture([task]))
    controller, rng = TeacherControl(cfg.epsilon), np.random.default_rng(0)
    lab = make_labeller(task.teacher, labeller)
    for _ in range(50):  # warm-up
        collect(task, controller, student, envs, rng, labeller=lab)
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(transitions // envs):
        collect(task, controller, student, envs, rng, labeller=lab)
    prof.disable()
    return prof


def profile_dqn(threads: int, steps: int) -> cProfile.Profile:
    """``DQNTrainer`` on Pong with CleanRL's settings (one env, batch 32, an update per 4 steps):
    ``steps`` learning steps after 2,000 of play."""
    from poldist.dqn import DQNConfig, DQNTrainer

    cfg = DQNConfig(
        env_id="ALE/Pong-v5",
        total_steps=2_000 + steps,
        num_envs=1,
        batch_size=32,
        buffer_size=2_000 + steps,
        learning_starts=2_000,
        updates_per_step=0.25,
        target_update=250,
        eval_interval=10**12,
        checkpoint_interval=10**12,
        torch_threads=threads,
    )
    with tempfile.TemporaryDirectory() as tmp, DQNTrainer(cfg, Path(tmp) / "run", show_progress=False) as t:
        t.run(2_000)
        prof = cProfile.Profile()
        prof.enable()
        t.run(2_000 + steps)
        prof.disable()
    return prof


def profile_ort(batch: int, calls: int) -> None:
    """Print each node of the shipped MinAtar Breakout teacher's onnxruntime graph (as the labeller
    builds it, one thread) with its mean time per call at ``batch`` observations, and the
    multiply-adds per second of its Gemm nodes."""
    import collections
    import json

    import numpy as np
    import onnxruntime as ort

    from poldist.fast_teacher import onnx_graph
    from poldist.teachers import load_teacher

    teacher = load_teacher("minatar/breakout")
    model = onnx_graph(teacher.net, teacher.task)
    with tempfile.TemporaryDirectory() as tmp:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = 1, 1
        opts.enable_profiling, opts.profile_file_prefix = True, str(Path(tmp) / "ort")
        session = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        obs = (np.random.default_rng(0).random((batch, *teacher.net.arch.obs_shape)) < 0.1).astype(np.uint8)
        for _ in range(calls):
            session.run(["outputs"], {"obs": obs})
        events = json.loads(Path(session.end_profiling()).read_text())
    total: collections.Counter[str] = collections.Counter()
    count: collections.Counter[str] = collections.Counter()
    macs: dict[str, int] = {}  # a matrix product's multiply-adds per call, from its input shapes
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            total[e["name"]] += e["dur"]
            count[e["name"]] += 1
            args = e.get("args", {})
            if args.get("op_name") in ("Gemm", "FusedGemm"):
                (x,), (w,) = (list(d.values()) for d in args["input_type_shape"][:2])
                macs[e["name"]] = x[0] * x[1] * w[0]  # (N, in) @ (out, in)^T
    print(f"batch {batch}, {calls} calls, mean us per call (profiling adds its own overhead):")
    for name, us in total.most_common():
        mean = us / count[name]
        rate = f"  {macs[name] / mean / 1e3:.1f} GMAC/s" if name in macs else ""
        print(f"{name.removesuffix('_kernel_time'):30s} {mean:8.1f}{rate}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    c = sub.add_parser("collect", help="MinAtar teacher-labelled collection")
    c.add_argument("--envs", type=int, default=8, help="envs in the vector env (default 8)")
    c.add_argument("--labeller", default="auto", help="auto | torch | onnxruntime (default auto, as distill)")
    c.add_argument("--transitions", type=int, default=16_000, help="transitions profiled (default 16,000)")
    d = sub.add_parser("dqn", help="Atari Double-DQN teacher training")
    d.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    d.add_argument("--steps", type=int, default=2_000, help="agent steps profiled (default 2,000)")
    o = sub.add_parser("ort", help="onnxruntime's node profile of the MinAtar teacher's labelling graph")
    o.add_argument("--batch", type=int, default=8, help="observations per call (default 8)")
    o.add_argument("--calls", type=int, default=3_000, help="calls profiled (default 3,000)")
    p.add_argument("--top", type=int, default=20, help="functions shown (default 20)")
    args = p.parse_args()
    if args.what == "ort":
        profile_ort(args.batch, args.calls)
        return
    if args.what == "collect":
        prof = profile_collect(args.envs, args.labeller, args.transitions)
    else:
        prof = profile_dqn(args.threads, args.steps)
    pstats.Stats(prof).sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    main()
