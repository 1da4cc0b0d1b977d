"""Benchmark section 1, update efficiency: distillation updates/s as ``Distiller.run`` does them
against a bare PyTorch loop of the same network, batch and RMSprop on tensors made once."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from poldist.collection import DistillTask
from poldist.distillation import (
    DistillConfig,
    base_architecture,
    distill_step,
    make_optimizer,
    make_student,
)
from poldist.experiments.bench_common import (
    CPU,
    MINATAR_TEACHER,
    UPDATE_TARGET,
    Budget,
    filled_task,
    paired_rates,
    synchronize,
)
from poldist.losses import make_loss
from poldist.networks import count_parameters, to_device
from poldist.tables import format_table


def _update_row(
    task: DistillTask,
    size: str,
    batch_size: int,
    tau: float,
    budget: Budget,
    seed: int,
    device: torch.device = CPU,
) -> dict[str, Any]:
    """Library and bare-loop updates/s of one student size and batch on ``task``'s filled memory.

    Both networks on ``device``: the library samples the host memory and moves each minibatch
    there; the bare loop's tensors are made there once.
    """
    cfg = DistillConfig(teacher=MINATAR_TEACHER, student=size, batch_size=batch_size, seed=seed)
    torch.manual_seed(seed)
    student = make_student(cfg, [task], base_architecture([task])).to(device)
    optimizer = make_optimizer(cfg, student.parameters())  # as Distiller makes it
    loss_fn = make_loss(cfg.loss, tau)
    rng = np.random.default_rng(seed)

    def library_update() -> None:
        # the body of Distiller.run's loop, collection and logging aside
        batch = task.memory.sample(cfg.batch_size, rng)
        obs, teacher_out = to_device(batch["obs"], device), to_device(batch["teacher_out"], device)
        loss = distill_step(student, optimizer, loss_fn, obs, teacher_out, 0)
        if not np.isfinite(loss):
            raise RuntimeError(f"library loss became {loss}")

    bare_net = copy.deepcopy(student)  # same weights, its own optimizer state
    bare_opt = torch.optim.RMSprop(bare_net.parameters(), lr=cfg.lr, alpha=0.95, eps=1e-6)
    _check_same_optimizer(optimizer, bare_opt)
    c, h, w = task.spec.obs_shape
    obs_t = torch.randint(0, 2, (batch_size, c, h, w), dtype=torch.uint8).to(device)
    target_t = torch.randn(batch_size, task.teacher.n_actions).to(device)

    def bare_update() -> None:
        log_p_s = F.log_softmax(bare_net(obs_t), dim=1)
        log_p_t = F.log_softmax(target_t / tau, dim=1)
        loss = F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True)
        bare_opt.zero_grad(set_to_none=True)
        loss.backward()
        bare_opt.step()
        if device.type != "cpu":  # the library's loss.item() waits for the device; so does this
            synchronize(device)

    r = paired_rates(
        {"library": (library_update, 1), "bare": (bare_update, 1)}, budget.seconds, budget.rounds
    )
    lib, bare = r["library"]["median"], r["bare"]["median"]
    return {
        "env_id": task.spec.env_id,
        "device": str(device),
        "student": size,
        "params": count_parameters(student),
        "batch": batch_size,
        "library_updates_per_s": lib,
        "bare_updates_per_s": bare,
        "ratio": lib / bare,
        "library_rounds": r["library"]["rounds"],
        "bare_rounds": r["bare"]["rounds"],
    }


def bench_update(budget: Budget, seed: int = 0, device: torch.device = CPU) -> dict[str, Any]:
    """Distillation updates/s as ``Distiller.run`` does them against a bare PyTorch loop.

    MinAtar Breakout, the shipped teacher's transitions in memory; students net2 and
    teacher-sized, batches 32 and 256, KL loss, RMSprop; networks on ``device``.
    """
    base = DistillConfig(teacher=MINATAR_TEACHER, loss="kl", seed=seed)
    task = filled_task(base, None, budget.fill, seed)
    task.env.close()
    tau = base.tau or task.teacher.default_tau
    rows = [
        _update_row(task, size, batch_size, tau, budget, seed, device)
        for size in ("net2", "teacher")
        for batch_size in (32, 256)
    ]
    return {
        "target_ratio": UPDATE_TARGET,
        "loss": "kl",
        "tau": tau,
        "optimizer": "rmsprop",
        "memory_rows": task.memory.size,
        "rows": rows,
    }


def _check_same_optimizer(a: torch.optim.Optimizer, b: torch.optim.Optimizer) -> None:
    """Refuse to compare against a baseline whose optimizer differs from the library's."""
    keys = ("lr", "alpha", "eps", "momentum", "weight_decay", "centered")
    if type(a) is not type(b) or any(a.param_groups[0].get(k) != b.param_groups[0].get(k) for k in keys):
        raise RuntimeError(f"bare loop's optimizer {b} differs from the library's {a}")


def update_table(res: dict[str, Any]) -> str:
    """Section 1's rows as a plain-text table."""
    return format_table(
        ["env", "student", "params", "batch", "library upd/s", "bare torch upd/s", "library/bare"],
        [
            [
                r["env_id"],
                r["student"],
                r["params"],
                r["batch"],
                round(r["library_updates_per_s"]),
                round(r["bare_updates_per_s"]),
                f"{r['ratio']:.2f}",
            ]
            for r in res["rows"]
        ],
    )
