"""Networks: the DQN teachers and the students of the paper, from one class.

A network is a conv trunk, one fully connected layer, and one output head per
task (the paper's per-game "controller"). Multi-task networks may put a hidden
layer in each head (``head_hidden``, 128 units in the paper). Teachers and
students differ only in widths, so a student is described by a size name or by
widths, never by a new class.

Parameter counts for 18 actions (PAPER.md, tested):

=============  =====================  =====  ==========
name           conv channels          fc     parameters
=============  =====================  =====  ==========
nature         32, 64, 64             512    1,693,362
net1 (25%)     16, 32, 32             256    427,874
net2 (7%)      16, 16, 16             128    113,346
net3 (4%)      16, 16, 16             64     61,954
=============  =====================  =====  ==========

MinAtar's DQN network (one 3x3 conv with 16 channels, 128 hidden units) is the
MinAtar teacher; its students halve or shrink those widths to about 25%, 7% and
4% of its parameters.

Devices: :func:`resolve_device` turns a ``--device`` name into a ``torch.device``; networks
live there, replay memories stay in host memory as uint8 numpy, and :func:`to_device` moves
only the sampled minibatches (or a vector env's observations) over, still uint8: the network
scales them to float on the device.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from poldist.errors import PoldistError
from poldist.schema import require, require_ints


@dataclass(frozen=True)
class Architecture:
    """Everything needed to rebuild a network (stored in checkpoint metadata).

    Attributes:
        obs_shape: ``(C, H, W)`` of the input.
        convs: one ``(out_channels, kernel, stride)`` per conv layer.
        hidden: width of the shared fully connected layer.
        n_actions: action count of each task's head.
        head_hidden: width of a per-task hidden layer (0: heads are linear).
        obs_scale: multiplies the uint8 input (1/255 for Atari).
    """

    obs_shape: tuple[int, int, int]
    convs: tuple[tuple[int, int, int], ...]
    hidden: int
    n_actions: tuple[int, ...]
    head_hidden: int = 0
    obs_scale: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "architecture") -> Architecture:
        """Inverse of :meth:`to_dict`, with every field's type and range checked.

        Raises:
            PoldistError: one line naming the field that is wrong (``where`` says whose).
        """
        obs_shape = require_ints(d, "obs_shape", where, length=3, minimum=1)
        convs = require(d, "convs", where, "list")
        for i in range(len(convs)):
            require_ints({"convs": convs[i]}, "convs", f"{where}.convs[{i}]", length=3, minimum=1)
        hidden = require(d, "hidden", where, "int", minimum=1)
        n_actions = require_ints(d, "n_actions", where, minimum=1)
        if not n_actions:
            raise PoldistError(f"{where}: n_actions must list at least one head")
        head_hidden = require(d, "head_hidden", where, "int", minimum=0, default=0)
        obs_scale = require(d, "obs_scale", where, "float", default=1.0)
        if not obs_scale > 0:
            raise PoldistError(f"{where}: obs_scale must be positive, got {obs_scale!r}")
        return cls(
            obs_shape=(obs_shape[0], obs_shape[1], obs_shape[2]),
            convs=tuple((c[0], c[1], c[2]) for c in convs),
            hidden=hidden,
            n_actions=tuple(n_actions),
            head_hidden=head_hidden,
            obs_scale=float(obs_scale),
        )


def nature_dqn(n_actions: int = 18, in_channels: int = 4) -> Architecture:
    """The Nature-DQN network (Mnih et al., 2015), the paper's teacher, on 84x84 frames."""
    return Architecture(
        (in_channels, 84, 84), ((32, 8, 4), (64, 4, 2), (64, 3, 1)), 512, (n_actions,), 0, 1 / 255
    )


def paper_multitask_atari(n_actions: tuple[int, ...], large: bool = False) -> Architecture:
    """The paper's multi-task networks: Nature-DQN trunk, one 128-unit hidden layer per game.

    ``large=False``: the 3-game multi-DQN / multi-dist network (32, 64, 64 conv channels, 512
    units); ``large=True``: the 10-game multi-dist-KL network (64, 64, 64 channels, 1500 units).
    The paper's totals (1,882,668 and 6,756,721 parameters) are reproduced exactly when the
    games' action counts add up to 12 and 85 output units; it does not list them, and today's
    ALE minimal action sets of its ten games add up to 88.
    """
    channels, hidden = ((64, 64, 64), 1500) if large else ((32, 64, 64), 512)
    convs = tuple((c, k, s) for c, (_, k, s) in zip(channels, nature_dqn().convs))
    return Architecture((4, 84, 84), convs, hidden, tuple(n_actions), 128, 1 / 255)


def minatar_dqn(in_channels: int, n_actions: int) -> Architecture:
    """MinAtar's DQN network (Young & Tian, 2019): one 3x3 conv (16), 128 hidden units."""
    return Architecture((in_channels, 10, 10), ((16, 3, 1),), 128, (n_actions,), 0, 1.0)


# Student widths by size name: (conv channels, fc width), kernels and strides the teacher's; or a
# widths string (see student_architecture) where a size sets its own kernels, strides or depth.
ATARI_STUDENTS: dict[str, tuple[tuple[int, ...], int] | str] = {
    "teacher": ((32, 64, 64), 512),
    "net1": ((16, 32, 32), 256),
    "net2": ((16, 16, 16), 128),
    "net3": ((16, 16, 16), 64),
}
# MinAtar's one conv layer feeds 64 cells x its filters to the hidden layer, so net1 and net2 keep
# 8 filters and narrow the hidden layer (RESULTS.md section 5b: at 7%, 8 filters and 18 units beat
# 4 filters and 36). At 4% that leaves 10 units; net3 instead halves the grid with a second conv
# (4x4 kernel, stride 2: 3x3 cells) and keeps 34 (sections 5b and 5c: 96% of the teachers on fresh
# seeds, against 86.5% for 8/10, which stays reachable as ``--student 8/10``).
MINATAR_STUDENTS: dict[str, tuple[tuple[int, ...], int] | str] = {
    "teacher": ((16,), 128),
    "net1": ((8,), 64),  # ~25% of the MinAtar DQN
    "net2": ((8,), 18),  # ~7%
    "net3": "16,8k4s2/34",  # ~4% (4.0% on 4-channel games, 4.6% on Seaquest's 10 channels)
}
# The family before issue 18's study (4 filters at net2 and net3): the widths of results made with it
LEGACY_MINATAR_STUDENTS = {"net1": "8/64", "net2": "4/36", "net3": "4/20"}
_CONV = r"\d+(k\d+)?(s\d+)?"
_WIDTHS = re.compile(rf"^(?P<convs>{_CONV}(,{_CONV})*)/(?P<hidden>\d+)$")
_CONV_PARTS = re.compile(r"^(?P<out>\d+)(k(?P<k>\d+))?(s(?P<s>\d+))?$")


def student_architecture(teacher: Architecture, size: str) -> Architecture:
    """A student of ``teacher``: same kernels, strides and heads, other widths.

    Args:
        teacher: the teacher's architecture.
        size: ``"teacher"``, ``"net1"``, ``"net2"``, ``"net3"``, or explicit widths
            ``"<conv1>,<conv2>,.../<fc>"`` (e.g. ``"16,16,16/128"``). A conv entry may set its
            kernel and stride, ``<channels>k<kernel>s<stride>``: ``"8s2/38"`` is one 3x3 conv of
            stride 2 on MinAtar; layers beyond the teacher's depth must give both
            (``"16,8k3s2/41"``), the others take the teacher's at the same position.

    Raises:
        PoldistError: unknown size name, fewer conv layers than the teacher's, or an extra
            layer without its kernel and stride.
    """
    table = ATARI_STUDENTS if len(teacher.convs) == 3 else MINATAR_STUDENTS
    entry = table.get(size)
    if isinstance(entry, str):  # a size named by widths with kernels and strides of its own
        size, entry = entry, None
    if entry is not None:
        channels, hidden = entry
        if size == "teacher":
            channels, hidden = tuple(c[0] for c in teacher.convs), teacher.hidden
    else:
        m = _WIDTHS.match(size)
        if not m:
            raise PoldistError(
                f"unknown student size {size!r}: use one of {sorted(table)} "
                "or widths like '16,16,16/128' (conv channels/fc units)"
            )
        return replace(teacher, convs=_explicit_convs(size, m["convs"], teacher), hidden=int(m["hidden"]))
    if len(channels) != len(teacher.convs):
        raise PoldistError(
            f"student size {size!r} has {len(channels)} conv layers, the teacher has {len(teacher.convs)}"
        )
    convs = tuple((c, k, s) for c, (_, k, s) in zip(channels, teacher.convs))
    return replace(teacher, convs=convs, hidden=hidden)


def _explicit_convs(size: str, spec: str, teacher: Architecture) -> tuple[tuple[int, int, int], ...]:
    """``"16,8k3s2"`` -> ``((16, k0, s0), (8, 3, 2))`` with ``k0, s0`` the teacher's first layer's."""
    entries = spec.split(",")
    if len(entries) < len(teacher.convs):
        raise PoldistError(
            f"student size {size!r} has {len(entries)} conv layers, the teacher has {len(teacher.convs)}"
        )
    convs = []
    for i, entry in enumerate(entries):
        parts = _CONV_PARTS.match(entry)
        assert parts is not None  # _WIDTHS matched every entry
        if i >= len(teacher.convs) and (parts["k"] is None or parts["s"] is None):
            raise PoldistError(
                f"student size {size!r} has {len(entries)} conv layers, the teacher has "
                f"{len(teacher.convs)}: give each extra layer its kernel and stride (e.g. '8k3s2')"
            )
        k, s = teacher.convs[min(i, len(teacher.convs) - 1)][1:]
        k = int(parts["k"]) if parts["k"] is not None else k
        s = int(parts["s"]) if parts["s"] is not None else s
        if k < 1 or s < 1:
            raise PoldistError(f"student size {size!r}: kernels and strides must be at least 1")
        convs.append((int(parts["out"]), k, s))
    return tuple(convs)


def network_input(obs: torch.Tensor, scale: float) -> torch.Tensor:
    """``obs.float() * scale`` bit for bit, ``(B, C, H, W)`` -> float32 of the same shape, with one
    buffer fewer: a uint8 batch is converted once and scaled in place, and a scale of 1 (MinAtar's
    {0, 1} grids) multiplies nothing (a profile of Atari teacher training put a sixth of the forward
    passes' time in the two-buffer version)."""
    if scale == 1.0:
        return obs.float()
    if obs.dtype == torch.float32:
        return obs * scale  # the caller's tensor: never in place
    return obs.float().mul_(scale)


class QNetwork(nn.Module):
    """Conv trunk -> fc -> one head per task.

    ``forward(obs, task)`` takes ``obs`` of shape ``(B, C, H, W)`` (uint8 or float,
    unscaled) and returns outputs of shape ``(B, n_actions[task])``: Q-values for a
    DQN teacher, logits/Q-estimates for a student.
    """

    def __init__(self, arch: Architecture):
        super().__init__()
        self.arch = arch
        layers: list[nn.Module] = []
        c, h, w = arch.obs_shape
        for out, k, s in arch.convs:
            layers += [nn.Conv2d(c, out, k, s), nn.ReLU()]
            c, h, w = out, (h - k) // s + 1, (w - k) // s + 1
        if h <= 0 or w <= 0:
            raise PoldistError(f"input {arch.obs_shape} is too small for convs {arch.convs}")
        self.trunk = nn.Sequential(*layers, nn.Flatten(), nn.Linear(c * h * w, arch.hidden), nn.ReLU())
        self.heads = nn.ModuleList()
        for n in arch.n_actions:
            if arch.head_hidden:
                head = nn.Sequential(
                    nn.Linear(arch.hidden, arch.head_hidden),
                    nn.ReLU(),
                    nn.Linear(arch.head_hidden, n),
                )
            else:
                head = nn.Linear(arch.hidden, n)
            self.heads.append(head)

    def features(self, obs: torch.Tensor) -> torch.Tensor:
        """Shared trunk: ``(B, C, H, W)`` -> ``(B, hidden)``.

        An input with fewer channels than the network's (a multi-task MinAtar student sees
        games with 4 to 10 channels) is zero-padded after its last channel.
        """
        x = network_input(obs, self.arch.obs_scale)
        missing = self.arch.obs_shape[0] - x.shape[1]
        if missing > 0:
            first = self.trunk[0]
            if not isinstance(first, nn.Conv2d):
                return self.trunk(F.pad(x, (0, 0, 0, 0, 0, missing)))
            # The padding would be zeros, which the first conv's weights on those channels
            # multiply to nothing: skip both (same outputs and gradients, fewer FLOPs).
            x = F.conv2d(x, first.weight[:, : x.shape[1]], first.bias, first.stride, first.padding)
            for layer in list(self.trunk)[1:]:
                x = layer(x)
            return x
        return self.trunk(x)

    def forward(self, obs: torch.Tensor, task: int = 0) -> torch.Tensor:
        """``(B, C, H, W)`` -> ``(B, n_actions[task])``."""
        return self.heads[task](self.features(obs))


def adam(params: Iterable[nn.Parameter], lr: float, eps: float = 1e-8) -> torch.optim.Adam:
    """Adam, fused into one kernel where this torch build supports it (CPU: torch >= 2.4).

    About 0.3 ms less per update of a MinAtar DQN than the per-tensor loop. Fused steps write
    the weights without bumping their in-place version counters.
    """
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, eps=eps, fused=True)
    except (RuntimeError, TypeError):  # fused not available for these tensors in this build
        return torch.optim.Adam(params, lr=lr, eps=eps, foreach=True)


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


DEVICES = ("auto", "cpu", "cuda", "mps")
DEVICE_HELP = (
    "where the networks run: auto (CUDA if available, else MPS, else CPU) | cpu | cuda (or cuda:N) "
    "| mps; replay memories stay in host memory"
)


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """The ``torch.device`` a ``--device`` name stands for.

    Args:
        name: ``auto`` (CUDA when ``torch.cuda.is_available()``, else MPS when available, else
            CPU), ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` (case-insensitive).

    Returns:
        ``cpu``, ``cuda:N`` (plain ``cuda``: the current CUDA device) or ``mps``.

    Raises:
        PoldistError: an unknown name, or a device this machine does not have (one line, naming
            the way out), so that a run fails before it creates anything on disk.
    """
    text = str(name).strip().lower()
    if text == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    if text == "cpu":
        return torch.device("cpu")
    cuda = re.fullmatch(r"cuda(?::(\d+))?", text)
    if cuda:
        if not torch.cuda.is_available():
            raise PoldistError("CUDA is not available on this machine; use --device cpu or auto")
        if cuda[1] is None:
            return torch.device("cuda", torch.cuda.current_device())
        count = torch.cuda.device_count()
        if int(cuda[1]) >= count:
            raise PoldistError(
                f"no CUDA device {cuda[1]}: this machine has {count} (cuda:0 to cuda:{count - 1}); "
                "use --device cuda or auto"
            )
        return torch.device("cuda", int(cuda[1]))
    if text == "mps":
        if not _mps_available():
            raise PoldistError("MPS is not available on this machine; use --device cpu or auto")
        return torch.device("mps")
    raise PoldistError(f"unknown device {str(name)!r}: choose auto, cpu, cuda (or cuda:N) or mps")


def to_device(x: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    """A host array as a tensor on ``device``: same shape and dtype (uint8 frames stay uint8).

    ``torch.as_tensor(x).to(device, non_blocking=True)`` on CUDA; on the CPU the tensor shares
    ``x``'s memory (no copy, the same numbers as ``torch.as_tensor(x)``). MPS copies blocking
    (non-blocking host-to-MPS copies have read freed memory in some torch releases).
    """
    return torch.as_tensor(x).to(device, non_blocking=device.type == "cuda")


def module_device(module: nn.Module) -> torch.device:
    """The device of ``module``'s first parameter (CPU for a module without parameters)."""
    param = next(module.parameters(), None)
    return torch.device("cpu") if param is None else param.device
