"""Train a Pong agent with Stable-Baselines3 itself, to be a teacher brought from elsewhere (issue 19).

PPO with RL Zoo's published Atari hyper-parameters (``hyperparams/ppo.yml``, ``atari``: 8 envs,
``AtariWrapper``, 4 stacked frames, ``n_steps`` 128, ``n_epochs`` 4, ``batch_size`` 256, learning
rate and clip range falling linearly from 2.5e-4 and 0.1, ``vf_coef`` 0.5, ``ent_coef`` 0.01), on
``PongNoFrameskip-v4``, saved with SB3's own ``model.save``. The result is distilled exactly as the
README tells a user to::

    poldist distill --teacher runs/sb3-pong/ppo-PongNoFrameskip-v4.zip --student net2 --out runs/sb3-pong-net2

Needs OpenCV for SB3's Atari wrappers: ``pip install -e '.[sb3]'`` (``make setup-sb3``). Resumable
across sessions: a checkpoint is saved every ``--checkpoint-steps`` env steps, and a rerun of the same
command continues from the newest one with the learning-rate and clip-range schedules where they were
(the total budget stays ``--total-steps``)::

    .venv/bin/python scripts/train_sb3_pong.py --total-steps 10000000 --out runs/sb3-pong

To cross machines (this project's ``runs/`` does not survive one), pass ``--carry carry/sb3-pong``:
at every checkpoint the policy's weights, in half precision with their env steps
(``policy-fp16.safetensors``, 3.4 MB for Pong's CNN policy, small enough to commit; SB3's own
checkpoint is 20.7 MB, two thirds of it Adam's state), and ``train_log.json`` (each segment's steps,
wall and CPU seconds) are written there. On the next machine the same command starts from them when
they are newer than the run directory's checkpoints, with the schedules where they were and a fresh
optimizer state (the log's ``start`` says so); once ``--total-steps`` is reached it only rebuilds the
final zip from them::

    .venv/bin/python scripts/train_sb3_pong.py --total-steps 3000000 --carry carry/sb3-pong
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any

ENV_ID = "PongNoFrameskip-v4"
CHECKPOINT_GLOB = "ppo_pong_*_steps.zip"
CARRY_FILE = "policy-fp16.safetensors"


def _steps(path: Path) -> int:
    return int(re.findall(r"(\d+)_steps", path.name)[0])


def checkpoints(folder: Path) -> list[Path]:
    """SB3's checkpoints in ``folder`` (``ppo_pong_<steps>_steps.zip``), oldest first."""
    return sorted(folder.glob(CHECKPOINT_GLOB), key=_steps)


def _copy_atomic(src: Path, dst: Path) -> None:
    tmp = dst.with_name(dst.name + ".tmp")
    shutil.copyfile(src, tmp)
    tmp.replace(dst)  # a kill mid-copy leaves the old file, never a torn one


def carry_out(policy_state: dict[str, Any], steps: int, log_path: Path, carry: Path) -> None:
    """Write ``policy_state`` (SB3's ``policy.state_dict()``) in half precision with ``steps`` to
    ``carry/policy-fp16.safetensors``, replacing the last one atomically, and copy ``log_path``
    (``train_log.json``) beside it."""
    from safetensors.torch import save_file

    carry.mkdir(parents=True, exist_ok=True)
    # SB3's policy lists its shared features extractor three times (features_extractor, pi_ and
    # vf_features_extractor): each tensor is written once, the other names kept as aliases
    tensors: dict[str, Any] = {}
    aliases: dict[str, str] = {}
    first: dict[int, str] = {}
    for k, v in policy_state.items():
        if v.data_ptr() in first:
            aliases[k] = first[v.data_ptr()]
            continue
        first[v.data_ptr()] = k
        tensors[k] = (v.half() if v.is_floating_point() else v).detach().cpu().contiguous()
    tmp = carry / (CARRY_FILE + ".tmp")
    save_file(tensors, str(tmp), metadata={"num_timesteps": str(steps), "aliases": json.dumps(aliases)})
    tmp.replace(carry / CARRY_FILE)
    if log_path.exists():
        _copy_atomic(log_path, carry / "train_log.json")


def carried(carry: Path) -> tuple[dict[str, Any], int] | None:
    """The weights :func:`carry_out` wrote (floating tensors as float32 again) and their env steps;
    None when ``carry`` holds none."""
    path = carry / CARRY_FILE
    if not path.exists():
        return None
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        steps, aliases = int(f.metadata()["num_timesteps"]), json.loads(f.metadata()["aliases"])
        state = {k: f.get_tensor(k) for k in f.keys()}
    state.update({alias: state[name] for alias, name in aliases.items()})
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}, steps


def linear(start: float):
    """RL Zoo's ``lin_<start>``: the value falls linearly from ``start`` to 0 over training."""
    return lambda progress_remaining: progress_remaining * start


class SegmentLog:
    """``train_log.json``: one entry per segment (a run of this script), rewritten in place as it
    goes: the env steps it covered, its wall and CPU seconds (CPU: this process, one core's worth
    with ``--threads 1``; wall counts any time the process was stopped) and its command."""

    def __init__(self, path: Path, from_steps: int, command: str, start: str = ""):
        self.path, self.from_steps, self.command, self.start = path, from_steps, command, start
        self.history = json.loads(path.read_text()) if path.exists() else []
        self.wall0, self.cpu0 = time.perf_counter(), time.process_time()

    def write(self, steps: int, finished: bool = False) -> None:
        """Record this segment up to ``steps`` env steps (atomically: a kill leaves the old log)."""
        entry = {
            "from_steps": self.from_steps,
            "to_steps": steps,
            "wall_seconds": round(time.perf_counter() - self.wall0, 1),
            "cpu_seconds": round(time.process_time() - self.cpu0, 1),
            "finished": finished,
            "command": self.command,
            **({"start": self.start} if self.start else {}),
        }
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps([*self.history, entry], indent=2))
        tmp.replace(self.path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--total-steps", type=int, default=10_000_000, help="env steps in all (RL Zoo: 10M)")
    p.add_argument("--checkpoint-steps", type=int, default=250_000, help="env steps between checkpoints")
    p.add_argument("--seed", type=int, default=0, help="training seed")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--out", type=Path, default=Path("runs/sb3-pong"), help="run directory")
    p.add_argument(
        "--carry",
        type=Path,
        default=None,
        help="folder (e.g. carry/sb3-pong) that keeps the newest weights (half precision) across machines: "
        "written at every checkpoint, started from when newer than --out's checkpoints",
    )
    args = p.parse_args(argv)

    import ale_py
    import gymnasium as gym
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import CheckpointCallback
    from stable_baselines3.common.env_util import make_atari_env
    from stable_baselines3.common.vec_env import VecFrameStack

    gym.register_envs(ale_py)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    env = VecFrameStack(make_atari_env(ENV_ID, n_envs=8, seed=args.seed), n_stack=4)
    from_carry = carried(args.carry) if args.carry else None
    found = checkpoints(args.out)
    if from_carry and found and _steps(found[-1]) < from_carry[1]:
        found = []  # the carried weights are newer than this machine's checkpoints
    model, start = None, "new"
    for path in reversed(found):  # the newest that loads: a kill during a save leaves a torn zip
        try:
            model = PPO.load(path, env=env)  # its schedules read progress from num_timesteps
        except Exception as e:  # noqa: BLE001 - zipfile, pickle and torch errors alike
            print(f"skipping {path.name}: {type(e).__name__}: {e}", flush=True)
            continue
        print(f"resuming from {path.name} ({model.num_timesteps:,} steps)", flush=True)
        model.tensorboard_log = str(args.out / "tb")  # the saved one may be another machine's
        start = f"checkpoint {path.name}"
        break
    if model is None:
        model = PPO(
            "CnnPolicy",
            env,
            n_steps=128,
            n_epochs=4,
            batch_size=256,
            learning_rate=linear(2.5e-4),
            clip_range=linear(0.1),
            vf_coef=0.5,
            ent_coef=0.01,
            seed=args.seed,
            verbose=1,
            tensorboard_log=str(args.out / "tb"),
        )
        if from_carry:
            model.policy.load_state_dict(from_carry[0])
            model.num_timesteps = from_carry[1]  # the schedules continue from here
            if (args.carry / "train_log.json").exists():
                _copy_atomic(args.carry / "train_log.json", args.out / "train_log.json")
            start = "carried half-precision weights, fresh optimizer state"
            print(f"starting from the weights carried in {args.carry} ({from_carry[1]:,} steps)", flush=True)
    done = model.num_timesteps
    final = args.out / f"ppo-{ENV_ID}.zip"
    if done >= args.total_steps:  # finished before, here or where the carry was written: the zip only,
        model.save(final)  # and neither a segment of no steps in the log nor a rewritten carry
        print(f"saved {final} from the finished run's weights ({done:,} env steps)")
        return 0
    log = SegmentLog(
        args.out / "train_log.json",
        done,
        " ".join(["python", "scripts/train_sb3_pong.py", *(argv or sys.argv[1:])]),
        start,
    )

    class CheckpointAndLog(CheckpointCallback):
        """SB3's checkpoints, and this segment's steps and time in the log at each one (a
        session's kill then loses neither)."""

        def _on_step(self) -> bool:
            keep_going = super()._on_step()
            if self.n_calls % self.save_freq == 0:
                log.write(self.num_timesteps)
                if args.carry:
                    carry_out(self.model.policy.state_dict(), self.num_timesteps, log.path, args.carry)
            return keep_going

    callback = CheckpointAndLog(
        save_freq=max(1, args.checkpoint_steps // 8), save_path=str(args.out), name_prefix="ppo_pong"
    )
    # SB3 counts the schedules' progress over num_timesteps + the steps asked for now
    model.learn(args.total_steps - done, callback=callback, reset_num_timesteps=False)
    model.save(final)
    log.write(model.num_timesteps, finished=True)
    if args.carry:
        carry_out(model.policy.state_dict(), model.num_timesteps, log.path, args.carry)
    print(f"saved {final} after {model.num_timesteps:,} env steps")
    return 0


if __name__ == "__main__":
    sys.exit(main())
