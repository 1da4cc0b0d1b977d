"""Double-DQN update speed of the multi-task DQN baseline's network, before and after two changes,
both measured in one run (interleaved, so machine noise hits both alike):

- before: inputs zero-padded to 10 channels, per-tensor Adam, per-tensor gradient-norm clipping;
- after (the library's): the first conv skips the padded channels, fused Adam, foreach clipping.

Five MinAtar games (4, 4, 7, 10 and 6 channels), batch 64, the 128-unit per-game layer, one
thread; random minibatches (the update's cost does not depend on the data)::

    .venv/bin/python scripts/bench_dqn_update.py --updates 3000
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F

from poldist.dqn import double_dqn_loss
from poldist.networks import QNetwork, adam, minatar_dqn
from poldist.runs import machine_info

CHANNELS = (4, 4, 7, 10, 6)  # Asterix, Breakout, Freeway, Seaquest, Space Invaders


def make_update(after: bool, batch_size: int) -> Callable[[int], None]:
    """One update on head ``u % 5`` per call, the way before or after the change."""
    arch = replace(minatar_dqn(10, 6), n_actions=(6,) * 5, head_hidden=128)
    online, target = QNetwork(arch), QNetwork(arch)
    batches = [
        {
            "obs": torch.randint(0, 2, (batch_size, c, 10, 10), dtype=torch.uint8),
            "next_obs": torch.randint(0, 2, (batch_size, c, 10, 10), dtype=torch.uint8),
            "action": torch.randint(0, 6, (batch_size,)),
            "reward": torch.rand(batch_size),
            "done": torch.zeros(batch_size),
        }
        for c in CHANNELS
    ]
    if after:
        opt = adam(online.parameters(), lr=1e-4, eps=1.5e-4)
        on, tg = online, target
    else:
        opt = torch.optim.Adam(online.parameters(), lr=1e-4, eps=1.5e-4, foreach=False)

        def padded(net: QNetwork) -> Callable[[torch.Tensor, int], torch.Tensor]:
            return lambda x, k: net.heads[k](net.trunk(F.pad(x.float(), (0, 0, 0, 0, 0, 10 - x.shape[1]))))

        on, tg = padded(online), padded(target)

    def update(u: int) -> None:
        k = u % len(CHANNELS)
        loss = double_dqn_loss(lambda x: on(x, k), lambda x: tg(x, k), batches[k], 0.99)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(online.parameters(), 10.0, foreach=after)
        opt.step()

    return update


def main() -> None:
    """Time both ways in alternating blocks; print ms per update and the ratio; write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=3000, help="timed updates per way")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--json", type=Path, default=Path("runs/bench_dqn_update.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    ways = {"before": make_update(False, args.batch_size), "after": make_update(True, args.batch_size)}
    for u in range(100):  # warm-up
        for update in ways.values():
            update(u)
    seconds = dict.fromkeys(ways, 0.0)
    block = 100
    for start in range(0, args.updates, block):
        for name, update in ways.items():
            t = time.perf_counter()
            for u in range(start, start + block):
                update(u)
            seconds[name] += time.perf_counter() - t
    ms = {name: 1000 * s / args.updates for name, s in seconds.items()}
    ratio = ms["before"] / ms["after"]
    print(f"before {ms['before']:.2f} ms/update, after {ms['after']:.2f} ms/update: {ratio:.2f}x")
    result = {"ms_per_update": ms, "speedup": ratio, "updates": args.updates, "machine": machine_info()}
    args.json.parent.mkdir(parents=True, exist_ok=True)  # runs/ is absent in a fresh clone
    args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
