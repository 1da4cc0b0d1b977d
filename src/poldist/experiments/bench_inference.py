"""Benchmark section 3, inference: actions/s of the teacher and the students, PyTorch and onnxruntime."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from poldist.checkpoints import save_model
from poldist.envs import EnvSpec, make_env_spec
from poldist.experiments.bench_common import (
    ATARI_ID,
    CPU,
    MINATAR_TEACHER,
    SIZES,
    atari_missing,
    onnx_missing,
    rate,
)
from poldist.networks import QNetwork, count_parameters, nature_dqn, student_architecture, to_device
from poldist.tables import format_table
from poldist.teachers import load_teacher


def inference_models(atari: bool) -> list[tuple[str, str, QNetwork, EnvSpec]]:
    """``(name, role, network, env spec)`` of each network to time; role ``teacher`` or a size name.

    The shipped MinAtar Breakout teacher and students of it (random weights: speed does not
    depend on them); with ``atari``, the Nature-DQN network and its students on 84x84 frames.
    """
    teacher = load_teacher(MINATAR_TEACHER)
    out = [("minatar/breakout teacher", "teacher", teacher.net, teacher.env)]
    for size in SIZES:
        net = QNetwork(student_architecture(teacher.net.arch, size))
        out.append((f"minatar {size}", size, net, teacher.env))
    if atari:
        spec = make_env_spec(ATARI_ID)
        arch = nature_dqn(spec.n_actions)
        out.append(("atari nature (teacher)", "teacher", QNetwork(arch), spec))
        for size in SIZES:
            out.append((f"atari {size}", size, QNetwork(student_architecture(arch, size)), spec))
    return out


def bench_inference(
    threads: int = 1,
    seconds: float = 0.5,
    atari: bool = True,
    batches: tuple[int, ...] = (1, 256),
    onnx: bool = True,
    device: torch.device = CPU,
) -> dict[str, Any]:
    """Actions/s from a numpy uint8 batch to numpy actions, PyTorch against onnxruntime.

    PyTorch: ``net(to_device(obs, device)).argmax(1)`` back to numpy, under
    ``torch.inference_mode``, the network on ``device``; onnxruntime (always the CPU):
    :meth:`poldist.deploy.OnnxPolicy.act` on the exported model. Both get ``threads`` CPU threads.
    One row per (network, batch), with each network's speed relative to its domain's teacher at
    the same batch and backend. On the CPU, PyTorch's and onnxruntime's actions are checked equal.
    """
    notes = []
    if device.type != "cpu":
        notes.append(f"torch rows on {device}, onnxruntime rows on the CPU")
    if atari and atari_missing():
        notes.append(atari_missing())
        atari = False
    why_not = onnx_missing() if onnx else "onnx rows skipped: not asked for"
    if why_not:
        notes.append(why_not)
    if not why_not:  # optional dependencies: imported only when present
        from poldist.deploy import OnnxPolicy
        from poldist.export import export_onnx
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    rows: list[dict[str, Any]] = []
    teacher_rates: dict[tuple[str, int], dict[str, Any]] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for i, (name, role, net, spec) in enumerate(inference_models(atari)):
                net.eval().to(device)
                policy = None
                if not why_not:
                    save_model(Path(tmp) / f"m{i}", net, spec)
                    onnx_path = export_onnx(Path(tmp) / f"m{i}", Path(tmp) / f"m{i}.onnx")
                    policy = OnnxPolicy(onnx_path, threads=threads)
                high = 2 if net.arch.obs_scale == 1.0 else 256  # MinAtar {0, 1} grids, Atari pixels
                for batch in batches:
                    obs = rng.integers(0, high, (batch, *net.arch.obs_shape), dtype=np.uint8)

                    def torch_act(net: QNetwork = net, obs: np.ndarray = obs) -> np.ndarray:
                        with torch.inference_mode():
                            return net(to_device(obs, device)).argmax(1).cpu().numpy()

                    row: dict[str, Any] = {
                        "model": name,
                        "domain": spec.domain,
                        "role": role,
                        "device": str(device),
                        "params": count_parameters(net),
                        "batch": batch,
                        "torch_actions_per_s": rate(torch_act, batch, seconds),
                        "onnxruntime_actions_per_s": None,
                        "onnx_over_torch": None,
                    }
                    if policy is not None:
                        if device.type == "cpu":  # other devices' kernels may break near-ties otherwise
                            np.testing.assert_array_equal(torch_act(), policy.act(obs))
                        o = rate(lambda p=policy, x=obs: p.act(x), batch, seconds)
                        row.update(
                            onnxruntime_actions_per_s=o, onnx_over_torch=o / row["torch_actions_per_s"]
                        )
                    if role == "teacher":
                        teacher_rates[spec.domain, batch] = row
                    ref = teacher_rates[spec.domain, batch]
                    row["torch_over_teacher"] = row["torch_actions_per_s"] / ref["torch_actions_per_s"]
                    if policy is not None:
                        row["onnx_over_teacher"] = (
                            row["onnxruntime_actions_per_s"] / ref["onnxruntime_actions_per_s"]
                        )
                    rows.append(row)
    finally:
        torch.set_num_threads(previous)
    return {"threads": threads, "seconds_per_measurement": seconds, "rows": rows, "notes": notes}


def inference_table(rows: list[dict[str, Any]]) -> str:
    """The inference rows as a plain-text table."""

    def num(x: float | None, fmt: str = "{:,.0f}") -> str:
        return "-" if x is None else fmt.format(x)

    return format_table(
        ["model", "params", "batch", "torch act/s", "onnxrt act/s", "onnxrt/torch", "vs teacher (torch)"],
        [
            [
                r["model"],
                r["params"],
                r["batch"],
                num(r["torch_actions_per_s"]),
                num(r["onnxruntime_actions_per_s"]),
                num(r["onnx_over_torch"], "{:.2f}x"),
                f"{r['torch_over_teacher']:.2f}x",
            ]
            for r in rows
        ],
    )
