"""Atari Double-DQN training on this machine: speed against a bare CleanRL-style loop, and peak memory.

Two measurements, each side in a fresh subprocess so that its peak resident memory is its own:

- **speed**: agent steps per second once learning has started, with CleanRL's ``dqn_atari.py``
  settings (batch 32, one update per 4 agent steps, Adam 1e-4, target copied every 1,000 steps).
  ``poldist`` is :func:`poldist.dqn.train_dqn` (Double DQN: three forward passes an update); the
  baseline is a bare loop written here after CleanRL's (the same C++ env and Nature network, a
  numpy ring buffer of observations, vanilla DQN: two forward passes an update). The learning
  phase of ``train_dqn`` is timed as the difference between a run that stops where learning
  starts and one that goes on ``steps`` further. Sides alternate, ``repeats`` times each; the
  median counts.
- **memory**: the peak resident memory of ``poldist train-teacher``'s own process filling a
  replay memory of ``memory_rows`` transitions and writing its final checkpoint, against the bare
  loop's buffer of the same size (observations stored once, as CleanRL's
  ``optimize_memory_usage=True`` does).

``python -m poldist.experiments.bench_dqn --json results/bench/dqn_atari.json`` (a few minutes;
``--steps`` and ``--memory-rows`` scale it).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from poldist.envs import make_env_spec, make_vector_env
from poldist.networks import QNetwork, nature_dqn
from poldist.tables import format_table

ENV_ID = "ALE/Pong-v5"


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def bare_dqn(
    steps: int, learning_starts: int, buffer_rows: int, threads: int, seed: int = 0
) -> dict[str, Any]:
    """A CleanRL-style DQN loop on one env: returns agent steps/s of the learning phase and peak RSS.

    Observations are stored once per step in a ``(buffer_rows, 4, 84, 84)`` uint8 ring; the next
    observation of row ``i`` is row ``i + 1`` (the last step of an episode keeps its own final
    observation in a small side array, so nothing is wrong at episode ends).
    """
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    spec = make_env_spec(ENV_ID)
    env = make_vector_env(spec, 1, seed, clip_rewards=True)
    q, target = QNetwork(nature_dqn(spec.n_actions)), QNetwork(nature_dqn(spec.n_actions))
    target.load_state_dict(q.state_dict())
    opt = torch.optim.Adam(q.parameters(), lr=1e-4)
    obs_buf = np.zeros((buffer_rows, *spec.obs_shape), np.uint8)
    final_obs = np.zeros((buffer_rows, *spec.obs_shape), np.uint8)  # touched only at episode ends
    act_buf = np.zeros(buffer_rows, np.int64)
    rew_buf = np.zeros(buffer_rows, np.float32)
    done_buf = np.zeros(buffer_rows, np.float32)
    ended = np.zeros(buffer_rows, bool)
    obs, _ = env.reset(seed=seed)
    total = learning_starts + steps
    start = 0.0
    for step in range(total):
        if step == learning_starts:
            start = time.perf_counter()
        eps = max(0.01, 1.0 - step / max(1, 0.1 * total))
        if rng.random() < eps:
            action = np.array([rng.integers(spec.n_actions)])
        else:
            with torch.no_grad():
                action = q(torch.as_tensor(obs)).argmax(1).numpy()
        next_obs, reward, term, trunc, info = env.step(action)
        i = step % buffer_rows
        obs_buf[i], act_buf[i], rew_buf[i], done_buf[i] = obs[0], action[0], reward[0], term[0]
        ended[i] = bool(term[0] or trunc[0])
        if ended[i]:
            final_obs[i] = info["final_obs"][0]
        obs = next_obs
        if step >= learning_starts and step % 4 == 0:
            n = min(step, buffer_rows - 1)  # rows whose next observation exists
            idx = (step - 1 - rng.integers(0, n, 32)) % buffer_rows
            nxt = np.where(ended[idx][:, None, None, None], final_obs[idx], obs_buf[(idx + 1) % buffer_rows])
            o, n_o = torch.as_tensor(obs_buf[idx]), torch.as_tensor(nxt)
            with torch.no_grad():
                y = torch.as_tensor(rew_buf[idx]) + 0.99 * target(n_o).max(1).values * (
                    1 - torch.as_tensor(done_buf[idx])
                )
            loss = F.mse_loss(q(o).gather(1, torch.as_tensor(act_buf[idx])[:, None]).squeeze(1), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        if step % 1000 == 0:
            target.load_state_dict(q.state_dict())
    wall = time.perf_counter() - start
    env.close()
    return {"steps_per_second": steps / wall, "peak_rss_mb": _peak_rss_mb()}


def poldist_dqn(
    steps: int,
    learning_starts: int,
    buffer_rows: int,
    threads: int,
    seed: int = 0,
    checkpoint: bool = False,
    overlap: bool = False,
    num_envs: int = 1,
) -> dict[str, Any]:
    """``train_dqn`` with CleanRL's settings on ``num_envs`` envs (one update per 4 agent steps
    whatever their number) for ``learning_starts + steps`` agent steps (``overlap``: the envs step
    in their threads while the network updates)."""
    from poldist.dqn import DQNConfig, train_dqn

    cfg = DQNConfig(
        env_id=ENV_ID,
        total_steps=learning_starts + steps,
        num_envs=num_envs,
        seed=seed,
        lr=1e-4,
        batch_size=32,
        buffer_size=buffer_rows,
        learning_starts=learning_starts,
        updates_per_step=0.25,
        target_update=250,  # 1,000 agent steps
        eval_interval=10**12,
        eval_episodes=1,
        checkpoint_interval=10**12 if not checkpoint else learning_starts + steps,
        torch_threads=threads,
        overlap_envs=overlap,
    )
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        summary = train_dqn(cfg, Path(tmp) / "run")
        wall = time.perf_counter() - start
    return {
        "wall_seconds": wall,
        "train_wall_seconds": summary["wall_seconds"],
        "peak_rss_mb": _peak_rss_mb(),
    }


def _in_subprocess(fn: str, **kwargs: Any) -> dict[str, Any]:
    code = (
        "import json, sys; from poldist.experiments import bench_dqn; "
        f"print(json.dumps(bench_dqn.{fn}(**json.loads(sys.argv[1]))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, json.dumps(kwargs)], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_dqn_atari(
    steps: int = 4000, learning_starts: int = 2000, repeats: int = 2, memory_rows: int = 50_000
) -> dict[str, Any]:
    """Run both measurements (see the module docstring); every raw number is returned."""
    runs: dict[str, list[float]] = {
        "bare-1": [],
        "poldist-1": [],
        "bare-2": [],
        "poldist-2": [],
        "poldist-2-overlap": [],
        "poldist-2-overlap-4envs": [],
    }
    for _ in range(repeats):
        for threads in (1, 2):
            bare = _in_subprocess(
                "bare_dqn",
                steps=steps,
                learning_starts=learning_starts,
                buffer_rows=steps + learning_starts,
                threads=threads,
            )
            runs[f"bare-{threads}"].append(bare["steps_per_second"])
            # (overlap, envs): the plain trainer; with 2 threads also the envs stepping during the
            # update, on one env and on 4 (the shipped Pong teacher's setting: ALE steps them in 2
            # threads, one update per vector step)
            for overlap, envs in ((False, 1), (True, 1), (True, 4)) if threads == 2 else ((False, 1),):
                pre, full = (
                    _in_subprocess(
                        "poldist_dqn",
                        steps=s,
                        learning_starts=learning_starts,
                        buffer_rows=steps + learning_starts,
                        threads=threads,
                        overlap=overlap,
                        num_envs=envs,
                    )
                    for s in (0, steps)
                )
                key = f"poldist-{threads}" + ("-overlap" if overlap else "") + ("-4envs" if envs == 4 else "")
                runs[key].append(steps / (full["train_wall_seconds"] - pre["train_wall_seconds"]))
    speed = {k: statistics.median(v) for k, v in runs.items()}
    mem_bare = _in_subprocess(
        "bare_dqn", steps=1, learning_starts=memory_rows, buffer_rows=memory_rows + 1, threads=1
    )
    mem_poldist = _in_subprocess(
        "poldist_dqn",
        steps=0,
        learning_starts=memory_rows,
        buffer_rows=memory_rows,
        threads=1,
        checkpoint=True,
    )
    return {
        "env_id": ENV_ID,
        "settings": "batch 32, 1 update per 4 agent steps, Adam 1e-4, target every 1,000 steps, 1 env "
        "(the bare loop always; poldist unless a row says 4 envs)",
        "steps": steps,
        "learning_starts": learning_starts,
        "repeats": repeats,
        "steps_per_second": speed,
        "raw": runs,
        "ratio_1_thread": speed["poldist-1"] / speed["bare-1"],
        "ratio_2_threads_vs_bare_1": speed["poldist-2"] / speed["bare-1"],
        "ratio_2_threads": speed["poldist-2"] / speed["bare-2"],
        "ratio_2_threads_overlap_vs_bare_1": speed["poldist-2-overlap"] / speed["bare-1"],
        "ratio_2_threads_overlap": speed["poldist-2-overlap"] / speed["bare-2"],
        "ratio_2_threads_overlap_4envs_vs_bare_1": speed["poldist-2-overlap-4envs"] / speed["bare-1"],
        "ratio_2_threads_overlap_4envs": speed["poldist-2-overlap-4envs"] / speed["bare-2"],
        "memory_rows": memory_rows,
        "peak_rss_mb": {"poldist": mem_poldist["peak_rss_mb"], "bare": mem_bare["peak_rss_mb"]},
    }


def dqn_atari_table(res: dict[str, Any]) -> str:
    """Plain-text table of :func:`bench_dqn_atari`'s numbers."""
    sps = res["steps_per_second"]
    rows = [
        [
            "agent steps/s, 1 torch thread",
            f"{sps['poldist-1']:.1f}",
            f"{sps['bare-1']:.1f}",
            f"{res['ratio_1_thread']:.2f}",
        ],
        [
            "agent steps/s, 2 torch threads",
            f"{sps['poldist-2']:.1f}",
            f"{sps['bare-2']:.1f}",
            f"{res['ratio_2_threads']:.2f}",
        ],
        *(
            [
                [
                    "agent steps/s, 2 torch threads, env stepping during the update (--overlap-envs)",
                    f"{sps['poldist-2-overlap']:.1f}",
                    f"{sps['bare-2']:.1f}",
                    f"{res['ratio_2_threads_overlap']:.2f} "
                    f"({res['ratio_2_threads_overlap_vs_bare_1']:.2f} vs bare at 1 thread)",
                ]
            ]
            if "poldist-2-overlap" in sps
            else []
        ),
        *(
            [
                [
                    "agent steps/s, 2 torch threads, 4 envs stepping during the update",
                    f"{sps['poldist-2-overlap-4envs']:.1f}",
                    f"{sps['bare-2']:.1f}",
                    f"{res['ratio_2_threads_overlap_4envs']:.2f} "
                    f"({res['ratio_2_threads_overlap_4envs_vs_bare_1']:.2f} vs bare at 1 thread)",
                ]
            ]
            if "poldist-2-overlap-4envs" in sps
            else []
        ),
        [
            f"peak resident memory (MB), {res['memory_rows']:,} transitions",
            f"{res['peak_rss_mb']['poldist']:.0f}",
            f"{res['peak_rss_mb']['bare']:.0f}",
            f"{res['peak_rss_mb']['poldist'] / res['peak_rss_mb']['bare']:.2f}",
        ],
    ]
    return format_table(["measure", "poldist (Double DQN)", "bare (DQN)", "ratio"], rows) + (
        f"\n{res['settings']}; learning phase only, median of {res['repeats']} alternated runs; "
        "the memory runs fill the memory and write poldist's checkpoint"
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m poldist.experiments.bench_dqn [--steps N] [--memory-rows N] [--json PATH]``."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=4000, help="agent steps timed after learning starts")
    p.add_argument("--learning-starts", type=int, default=2000, help="agent steps before updates start")
    p.add_argument("--repeats", type=int, default=2, help="alternated runs per side (median counts)")
    p.add_argument("--memory-rows", type=int, default=50_000, help="transitions for the peak-memory runs")
    p.add_argument("--json", type=Path, help="write the raw numbers here")
    args = p.parse_args(argv)
    res = bench_dqn_atari(args.steps, args.learning_starts, args.repeats, args.memory_rows)
    res["machine"] = __import__("poldist.runs", fromlist=["machine_info"]).machine_info()
    print(json.dumps({k: v for k, v in res.items() if k != "raw"}, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
