"""Teacher labelling at the speed of the envs: host observations in, host outputs out.

:func:`~poldist.collection.collect` asks a :class:`Labeller` for the teacher's outputs of each
vector step's observations. Two kinds:

- :class:`TorchLabeller` (``"torch"``): the teacher's own PyTorch network under
  ``torch.inference_mode``, its layers called directly (no module dispatch). The same kernels
  as ``NetworkTeacher.__call__`` in the same order, so the outputs are bit-identical to it (and a
  distillation is bit-identical for the same seed). A teacher that is not a
  :class:`~poldist.teachers.NetworkTeacher` (only the Teacher protocol) is called as it is.
- :class:`OnnxLabeller` (``"onnxruntime"``): the teacher's network rebuilt as an ONNX
  graph straight from its weights (no exporter, a few milliseconds) and run by onnxruntime
  (one thread for a small network, two for one of at least :data:`MULTI_THREAD_MACS`
  multiply-adds per observation, such as the Nature DQN, where the second core would otherwise
  idle while the envs wait: see :func:`auto_threads`). 2 to 5 times faster than PyTorch at
  8 envs on the CPU; the outputs differ from PyTorch's by float rounding, at most
  :data:`LABEL_TOLERANCE` relative to the largest output above 1 (checked when the graph is
  built, see :func:`onnx_parity`), so greedy actions can differ on near-ties and a run is no
  longer bit-identical to the PyTorch one. The graph is rebuilt whenever the teacher's
  ``version`` changes (online distillation), and only the CPU is supported (a teacher on
  another device keeps PyTorch).

:func:`make_labeller` picks one by name (``"torch"``, ``"onnxruntime"``, or ``"auto"``, the
default of :class:`~poldist.config.DistillConfig`: onnxruntime when installed and the teacher is
a CPU :class:`~poldist.teachers.NetworkTeacher` of plain layers, else torch).
"""

from __future__ import annotations

import importlib.util
import os
import weakref
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from poldist.errors import PoldistError
from poldist.networks import QNetwork, network_input, to_device
from poldist.teachers import NetworkTeacher, Teacher

LABEL_TOLERANCE = 1e-5
"""Largest ``|onnxruntime - torch|`` of a label, relative to ``max(1, max |torch output|)``."""

LABELLERS = ("torch", "onnxruntime", "auto")

MULTI_THREAD_MACS = 1_000_000
"""Multiply-adds per observation from which onnxruntime labels on two threads (when two cores are
usable): the Nature DQN's ~9.3M at batch 8 labels in about half the time on two threads, while a
MinAtar teacher's ~0.17M labels a batch of 8 no faster on two (both measured while profiling on
2 cores, not committed; the committed effect is RESULTS.md section 6's Atari collection row)."""


class Labeller(Protocol):
    """The teacher's outputs for one vector step, on the host.

    ``__call__(obs)``: ``obs`` ``(N, C, H, W)`` uint8 numpy -> ``(N, A)`` float32 numpy (a fresh
    array the caller may keep); ``teacher``: the teacher it labels for.
    """

    teacher: Teacher
    kind: str

    def __call__(self, obs: np.ndarray) -> np.ndarray: ...


def onnxruntime_missing() -> str | None:
    """Why the onnxruntime labeller cannot be used (a missing package), or None."""
    missing = [m for m in ("onnx", "onnxruntime") if importlib.util.find_spec(m) is None]
    return f"{', '.join(missing)} not installed (pip install 'poldist[deploy]')" if missing else None


# --------------------------------------------------------------------------- PyTorch, bit-identical


def _plain_layers(net: QNetwork, task: int) -> list[nn.Module] | None:
    """``net``'s trunk and head ``task`` as a flat list of Conv2d/ReLU/Flatten/Linear, or None.

    None when the network holds anything else (then it is called as a module).
    """
    if type(net) is not QNetwork:  # a subclass may change forward()
        return None
    head = net.heads[task]
    layers = [*net.trunk, *(head if isinstance(head, nn.Sequential) else [head])]
    plain = all(type(m) in (nn.Conv2d, nn.ReLU, nn.Flatten, nn.Linear) for m in layers)
    hooked = any(m._forward_hooks or m._forward_pre_hooks for m in (net, net.trunk, *layers))
    if not plain or hooked or any(isinstance(m, nn.Conv2d) and m.padding_mode != "zeros" for m in layers):
        return None
    return layers


_PLAIN: weakref.WeakKeyDictionary[QNetwork, dict[int, list[nn.Module] | None]] = weakref.WeakKeyDictionary()


def plain_forward(net: QNetwork, obs_t: torch.Tensor, task: int = 0) -> torch.Tensor:
    """``net(obs_t, task)`` under ``torch.inference_mode``, bit-identical, without module dispatch.

    For a plain :class:`~poldist.networks.QNetwork` the layers' functions (``F.conv2d``,
    ``F.linear``, ``relu``) are called one after the other, as the modules would call them (about
    100 us less per call for a MinAtar network at batch 8 on the CPU); anything else is called as a
    module. ``obs_t``: ``(N, C, H, W)`` uint8 on the network's device -> ``(N, A)`` outputs there.
    """
    per_task = _PLAIN.setdefault(net, {})
    if task not in per_task:
        per_task[task] = _plain_layers(net, task)
    layers = per_task[task]
    with torch.inference_mode():
        if layers is None or obs_t.shape[1] != net.arch.obs_shape[0]:
            return net(obs_t, task)  # also the zero-padded channels of QNetwork.features
        x = network_input(obs_t, net.arch.obs_scale)  # as QNetwork.features
        for m in layers:
            if type(m) is nn.Conv2d:
                x = F.conv2d(x, m.weight, m.bias, m.stride, m.padding, m.dilation, m.groups)
            elif type(m) is nn.Linear:
                x = F.linear(x, m.weight, m.bias)
            elif type(m) is nn.ReLU:
                x = torch.relu_(x)  # in place: the same values as F.relu, one buffer fewer
            else:
                x = x.flatten(m.start_dim, m.end_dim)
        return x


class TorchLabeller:
    """The teacher's PyTorch network, outputs bit-identical to ``teacher(obs)``.

    For a :class:`~poldist.teachers.NetworkTeacher` whose network is a plain
    :class:`~poldist.networks.QNetwork`, the layers' functions (``F.conv2d``, ``F.linear``,
    ``relu``) are called one after the other under ``torch.inference_mode``: what the modules
    call, without their dispatch. Any other teacher is called as it is.
    """

    kind = "torch"

    def __init__(self, teacher: Teacher):
        self.teacher = teacher

    def outputs(self, obs_t: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W)`` uint8 on the teacher's device -> ``(N, A)`` outputs there."""
        t = self.teacher
        # the layer-by-layer path is NetworkTeacher.__call__'s arithmetic; a teacher that is not one,
        # or a subclass that changes what a call returns, is called as it is
        if not isinstance(t, NetworkTeacher) or type(t).__call__ is not NetworkTeacher.__call__:
            return t(obs_t)
        return plain_forward(t.net, obs_t, t.task)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """``(N, C, H, W)`` uint8 host array -> ``(N, A)`` float32 host array."""
        out = self.outputs(to_device(obs, self.teacher.device))
        return out.cpu().numpy()


# --------------------------------------------------------------------------- onnxruntime, the default


def onnx_graph(net: QNetwork, task: int = 0, in_channels: int | None = None) -> Any:
    """An ONNX model of head ``task`` of ``net``: ``obs`` uint8 ``(N, C, H, W)`` -> ``outputs`` ``(N, A)``.

    ``outputs`` are float32. Built node by node from the weights (Cast, Mul by ``obs_scale``,
    Conv, Relu, Flatten, Gemm): the same computation as :meth:`QNetwork.forward`, except that a
    first Conv takes ``obs_scale`` into its weights (no Mul; equal within float rounding).
    ``in_channels`` below the network's (a multi-task network reading a game with fewer
    channels) uses only those channels of the first conv's weights, as
    :meth:`QNetwork.features` does.

    Raises:
        PoldistError: a network with layers other than Conv2d/ReLU/Flatten/Linear.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    layers = _plain_layers(net, task)
    if layers is None:
        raise PoldistError(f"{type(net).__name__} has layers the onnxruntime labeller does not build")
    c, h, w = net.arch.obs_shape
    c_in = c if in_channels is None else in_channels
    nodes, inits = [], []

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    nodes.append(helper.make_node("Cast", ["obs"], ["x0"], to=TensorProto.FLOAT))
    x = "x0"
    # conv(s * x, W) + b = conv(x, s * W) + b: a first conv takes the input scale into its weights
    # (within float rounding, which the labeller's parity check bounds), saving a pass over the input
    fold_scale = type(layers[0]) is nn.Conv2d
    if net.arch.obs_scale != 1.0 and not fold_scale:
        scale = const("scale", np.array(net.arch.obs_scale, np.float32))
        nodes.append(helper.make_node("Mul", [x, scale], ["xs"]))
        x = "xs"
    first_conv = True
    for i, m in enumerate(layers):
        y = f"y{i}"
        if type(m) is nn.Conv2d:
            wt = m.weight.detach().cpu().numpy()
            if first_conv:
                wt, first_conv = wt[:, :c_in], False
                if fold_scale and net.arch.obs_scale != 1.0:
                    wt = wt * np.float32(net.arch.obs_scale)
            ins = [x, const(f"w{i}", wt)]
            if m.bias is not None:
                ins.append(const(f"b{i}", m.bias.detach().cpu().numpy()))
            pads = [*m.padding, *m.padding] if isinstance(m.padding, tuple) else None
            if pads is None:
                raise PoldistError(f"conv padding {m.padding!r} is not supported by the onnxruntime labeller")
            nodes.append(
                helper.make_node(
                    "Conv",
                    ins,
                    [y],
                    kernel_shape=list(m.kernel_size),
                    strides=list(m.stride),
                    pads=pads,
                    dilations=list(m.dilation),
                    group=m.groups,
                )  # fmt: skip
            )
        elif type(m) is nn.Linear:
            ins = [x, const(f"w{i}", m.weight.detach().cpu().numpy())]
            if m.bias is not None:
                ins.append(const(f"b{i}", m.bias.detach().cpu().numpy()))
            nodes.append(helper.make_node("Gemm", ins, [y], transB=1))
        elif type(m) is nn.ReLU:
            nodes.append(helper.make_node("Relu", [x], [y]))
        else:
            nodes.append(helper.make_node("Flatten", [x], [y], axis=1))
        x = y
    nodes.append(helper.make_node("Identity", [x], ["outputs"]))
    graph = helper.make_graph(
        nodes,
        "poldist_teacher",
        [helper.make_tensor_value_info("obs", TensorProto.UINT8, ["N", c_in, h, w])],
        [helper.make_tensor_value_info("outputs", TensorProto.FLOAT, ["N", net.arch.n_actions[task]])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # readable by every onnxruntime that reads opset 17
    onnx.checker.check_model(model)
    return model


def onnx_parity(
    session: Any, net: QNetwork, task: int, in_channels: int, batch: int = 16, seed: int = 0
) -> float:
    """Largest ``|onnxruntime - torch|`` on random observations, relative to ``max(1, max |torch|)``.

    Observations in the domain's range: {0, 1} for MinAtar (``obs_scale`` 1), 0..255 for frames.
    """
    rng = np.random.default_rng(seed)
    high = 2 if net.arch.obs_scale == 1.0 else 256
    obs = rng.integers(0, high, (batch, in_channels, *net.arch.obs_shape[1:]), dtype=np.uint8)
    got = session.run(None, {"obs": obs})[0]
    with torch.inference_mode():
        want = net(torch.from_numpy(obs).to(next(net.parameters()).device), task).cpu().numpy()
    return float(np.abs(got - want).max() / max(1.0, float(np.abs(want).max())))


def forward_macs(net: QNetwork, task: int = 0) -> int:
    """Multiply-adds of one observation through ``net``'s trunk and head ``task`` (conv and
    linear layers), from the layers' output shapes on a zero observation."""
    layers = _plain_layers(net, task)
    if layers is None:
        raise PoldistError(f"{type(net).__name__} has layers the onnxruntime labeller does not build")
    macs = 0
    with torch.inference_mode():
        x = torch.zeros((1, *net.arch.obs_shape), device=next(net.parameters()).device)
        for m in layers:
            x = m(x)
            if type(m) is nn.Conv2d:
                k = m.weight[0].numel()  # in_channels / groups * kh * kw
                macs += x.numel() * k
            elif type(m) is nn.Linear:
                macs += m.in_features * m.out_features
    return macs


def usable_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def auto_threads(net: QNetwork, task: int = 0) -> int:
    """onnxruntime intra-op threads for labelling with ``net``: 2 when a forward pass costs at
    least :data:`MULTI_THREAD_MACS` multiply-adds per observation and 2 cores are usable, else 1.

    Labelling runs while the envs wait for their actions, so a second core is free then.
    """
    return 2 if usable_cores() >= 2 and forward_macs(net, task) >= MULTI_THREAD_MACS else 1


class OnnxLabeller:
    """A CPU :class:`~poldist.teachers.NetworkTeacher`'s network run by onnxruntime.

    ``threads``: onnxruntime intra-op threads; 0 (default): :func:`auto_threads`. With more than
    one, the threads sleep between calls instead of spinning (a spinning thread would take a core
    from the envs stepping meanwhile). The session is built on the first call, and again whenever
    ``teacher.version`` changes or the observations' channel count does. Each build checks parity
    with PyTorch (:func:`onnx_parity`) and refuses a graph off by more than :data:`LABEL_TOLERANCE`.

    Raises:
        PoldistError: onnx/onnxruntime missing, a teacher that is not a CPU ``NetworkTeacher``,
            or a parity failure.
    """

    kind = "onnxruntime"

    def __init__(self, teacher: Teacher, threads: int = 0):
        why = onnxruntime_missing()
        if why:
            raise PoldistError(f"the onnxruntime labeller needs {why}")
        if not isinstance(teacher, NetworkTeacher) or teacher.device.type != "cpu":
            raise PoldistError(
                f"the onnxruntime labeller labels for a CPU NetworkTeacher; {teacher.name} is "
                f"{type(teacher).__name__} on {teacher.device}"
            )
        if threads < 0:
            raise PoldistError(f"labeller threads must be >= 0 (0: automatic), got {threads}")
        self.teacher = teacher
        self.threads = threads or auto_threads(teacher.net, teacher.task)
        self._session: Any = None
        self._key: tuple[int, int, int] | None = None
        self.builds = 0

    def _build(self, in_channels: int) -> None:
        import onnxruntime as ort

        t = self.teacher
        model = onnx_graph(t.net, t.task, in_channels)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.log_severity_level = 3
        if self.threads > 1:
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        diff = onnx_parity(session, t.net, t.task, in_channels)
        if not diff <= LABEL_TOLERANCE:
            raise PoldistError(
                f"onnxruntime labels of {t.name} differ from PyTorch by {diff:.3g} "
                f"(tolerance {LABEL_TOLERANCE}); use the torch labeller"
            )
        self._session = session
        self._key = (t.version, id(t.net), in_channels)
        self.builds += 1

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """``(N, C, H, W)`` uint8 host array -> ``(N, A)`` float32 host array."""
        t = self.teacher
        if self._key != (t.version, id(t.net), obs.shape[1]):
            self._build(obs.shape[1])
        if obs.dtype != np.uint8 or not obs.flags.c_contiguous:
            obs = np.ascontiguousarray(obs, dtype=np.uint8)
        return self._session.run(_OUTPUTS, {"obs": obs})[0]  # named: ~7 us sooner than None


_OUTPUTS = ["outputs"]


def make_labeller(teacher: Teacher, kind: str = "torch", threads: int = 0) -> Labeller:
    """A labeller for ``teacher``: ``"torch"`` (bit-identical), ``"onnxruntime"`` (faster,
    within :data:`LABEL_TOLERANCE`; raises when it cannot be used) or ``"auto"`` (onnxruntime for
    a CPU ``NetworkTeacher`` of plain layers when onnx and onnxruntime are installed, else torch).
    ``threads``: onnxruntime's intra-op threads (0: :func:`auto_threads`); torch ignores it.

    Raises:
        PoldistError: an unknown ``kind``, or ``"onnxruntime"`` where it cannot be used.
    """
    if kind == "auto":
        usable = isinstance(teacher, NetworkTeacher) and type(teacher).__call__ is NetworkTeacher.__call__
        usable = usable and teacher.device.type == "cpu"
        usable = usable and onnxruntime_missing() is None
        usable = usable and _plain_layers(teacher.net, teacher.task) is not None
        kind = "onnxruntime" if usable else "torch"
    if kind == "torch":
        return TorchLabeller(teacher)
    if kind == "onnxruntime":
        return OnnxLabeller(teacher, threads)
    raise PoldistError(f"unknown labeller {kind!r}: choose from {', '.join(LABELLERS)}")
