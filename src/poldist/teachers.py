"""Teachers: anything that maps observations to a vector of action outputs (:class:`Teacher`).

A teacher labels states for the student. It exposes what kind of outputs it gives
(``"q"``: Q-values of a DQN, sharpened by the KL temperature; ``"logits"``: policy
logits, read at temperature 1) and the env spec it was trained with, so the
library can refuse a student env whose preprocessing differs; and a ``version`` that
changes whenever its weights do, so that copies elsewhere (Ray actors) know when to refresh.
:class:`NetworkTeacher` is the one this library builds.

Shipped teachers live in the package's ``zoo/`` folder and are named by a short
name such as ``minatar/breakout``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

import poldist.external as external
from poldist.checkpoints import load_model, model_envs
from poldist.envs import EnvSpec
from poldist.errors import PoldistError
from poldist.networks import QNetwork, count_parameters, module_device

ZOO = Path(__file__).parent / "zoo"


def zoo_names() -> list[str]:
    """Short names of the shipped teachers, e.g. ``["minatar/breakout"]``."""
    return sorted(str(p.parent.relative_to(ZOO)) for p in ZOO.glob("*/*/meta.json"))


def expand_teacher_names(spec: str) -> list[str]:
    """Split a comma-separated teacher list; ``<domain>/all`` names every shipped teacher of it.

    ``"minatar/all"`` -> ``["minatar/asterix", "minatar/breakout", ...]`` (the shipped ones).
    """
    names: list[str] = []
    for name in (n.strip() for n in spec.split(",")):
        if not name:
            continue
        if name.endswith("/all") and not Path(name).exists():
            domain = name[: -len("/all")]
            shipped = [n for n in zoo_names() if n.startswith(domain + "/")]
            if not shipped:
                raise PoldistError(f"no shipped teachers for {domain!r} (shipped: {', '.join(zoo_names())})")
            names += shipped
        else:
            names.append(name)
    return names


def resolve_checkpoint(name_or_path: str | Path) -> Path:
    """A checkpoint directory from a path or a zoo name.

    Raises:
        PoldistError: neither an existing path nor a shipped teacher's name.
    """
    path = Path(name_or_path)
    if path.exists():
        return path
    zoo_path = ZOO / str(name_or_path).lower()
    if (zoo_path / "meta.json").exists():
        return zoo_path
    raise PoldistError(
        f"no checkpoint at {name_or_path!r}, and no shipped teacher of that name "
        f"(shipped: {', '.join(zoo_names()) or 'none'})"
    )


class Teacher(Protocol):
    """What the distillation loop asks of a teacher.

    Attributes:
        env: the env spec the teacher was trained on (a student env must preprocess alike).
        output_kind: ``"q"`` (Q-values) or ``"logits"`` (policy logits).
        name: for logs, tables and summaries.
    """

    env: EnvSpec
    output_kind: str
    name: str

    @property
    def n_actions(self) -> int:
        """Size of the action set: the length of the output vector."""
        ...

    @property
    def default_tau(self) -> float:
        """The KL temperature that fits the outputs (0.01 for Q-values, 1 for logits)."""
        ...

    @property
    def device(self) -> torch.device:
        """Where observations to label go."""
        ...

    @property
    def version(self) -> int:
        """An integer that changes whenever the teacher's weights change (a fixed teacher keeps one)."""
        ...

    def num_parameters(self) -> int:
        """Parameters of the teacher (for the compression a summary reports)."""
        ...

    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` uint8 observations on :attr:`device` -> ``(B, n_actions)`` outputs there."""
        ...


@dataclass
class NetworkTeacher:
    """A :class:`Teacher` backed by a :class:`~poldist.networks.QNetwork`.

    The network is used as it is at each call, so a network that keeps training
    elsewhere (online distillation) is a teacher that changes: whoever writes its weights
    calls :meth:`weights_changed` (or writes them with :meth:`load_weights`), which bumps
    :attr:`version`.

    Attributes:
        net: the network; called under ``no_grad``.
        env: the env spec the teacher was trained on.
        output_kind: ``"q"`` or ``"logits"``.
        task: which head of ``net`` to read.
        name: for logs and tables.
        version: bumped by :meth:`weights_changed`.
    """

    net: QNetwork
    env: EnvSpec
    output_kind: str = "q"
    task: int = 0
    name: str = "teacher"
    version: int = field(default=0, compare=False)

    def weights_changed(self) -> None:
        """Record that :attr:`net`'s weights were written (optimizer step, load): bump :attr:`version`."""
        self.version += 1

    def load_weights(self, state: dict[str, torch.Tensor]) -> None:
        """Copy a state dict into :attr:`net` (in place) and bump :attr:`version`."""
        self.net.load_state_dict(state)
        self.weights_changed()

    def to(self, device: torch.device | str) -> NetworkTeacher:
        """Move :attr:`net` to ``device`` in place (the weights keep their values); returns ``self``."""
        self.net.to(device)
        return self

    @property
    def n_actions(self) -> int:
        """Size of the action set."""
        return self.net.arch.n_actions[self.task]

    @property
    def default_tau(self) -> float:
        """The KL temperature that fits the outputs: 0.01 for Q-values, 1 for logits."""
        return 0.01 if self.output_kind == "q" else 1.0

    @property
    def device(self) -> torch.device:
        """Where :attr:`net` lives; observations to label go there (:func:`~poldist.networks.to_device`)."""
        return module_device(self.net)

    def num_parameters(self) -> int:
        """Parameters of the teacher network."""
        return count_parameters(self.net)

    @torch.no_grad()
    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` uint8 observations on :attr:`device` -> ``(B, n_actions)`` outputs there."""
        return self.net(obs, self.task)


def load_teacher(
    name_or_path: str | Path,
    task: int = 0,
    env_id: str = "",
    device: str | torch.device = "cpu",
) -> NetworkTeacher:
    """Load a teacher from a checkpoint directory, a shipped name, or an external file.

    External files (see :mod:`poldist.external`) are told by their suffix: ``.zip`` is a
    Stable-Baselines3 model (DQN, PPO, A2C with CnnPolicy), ``.cleanrl_model``, ``.pt``
    and ``.pth`` a CleanRL Atari checkpoint.

    Args:
        name_or_path: checkpoint directory, shipped name (``minatar/breakout``) or external file.
        task: head of a multi-task network.
        env_id: the env the teacher will label (needed by formats that do not record it:
            CleanRL checkpoints; SB3 zips whose file name holds no ``<Game>NoFrameskip-v4``).
        device: where the network is put (a ``torch.device`` or a name such as ``"cuda"``;
            checkpoints hold CPU tensors, loaded first on the CPU and then moved).

    Raises:
        PoldistError: missing/corrupted checkpoint, or a task index it does not have; for
            external files, anything :mod:`poldist.external` refuses.
    """
    ext_path = Path(name_or_path)
    if not ext_path.is_dir() and ext_path.suffix.lower() in (".zip", ".pt", ".pth", ".cleanrl_model"):
        if task != 0:
            raise PoldistError(f"{ext_path.name} has 1 task; task {task} does not exist")
        if ext_path.suffix.lower() != ".zip" and not env_id:
            raise PoldistError("CleanRL checkpoints record no env: pass --env-id")
        return _external_teacher(external.read_external_model(ext_path, env_id), device)
    path = resolve_checkpoint(name_or_path)
    net, meta = load_model(path)
    envs = model_envs(meta, path)
    if not 0 <= task < len(envs):
        raise PoldistError(f"{path} has {len(envs)} task(s); task {task} does not exist")
    return NetworkTeacher(net.to(device), envs[task], meta["output_kind"], task, str(name_or_path))


def check_teacher_fits(teacher: Teacher, spec: EnvSpec) -> None:
    """Refuse a teacher whose observations or actions differ from the env's.

    Raises:
        PoldistError: naming the mismatch (observation shape, action count, preprocessing).
    """
    if tuple(teacher.env.obs_shape) != tuple(spec.obs_shape):
        raise PoldistError(
            f"teacher {teacher.name} expects observations of shape {teacher.env.obs_shape}, "
            f"env {spec.env_id} gives {spec.obs_shape}"
        )
    if teacher.n_actions != spec.n_actions:
        raise PoldistError(
            f"teacher {teacher.name} has {teacher.n_actions} actions, "
            f"env {spec.env_id} has {spec.n_actions} actions"
        )
    if teacher.env.domain != spec.domain or teacher.env.obs_scale != spec.obs_scale:
        raise PoldistError(
            f"teacher {teacher.name} was trained on {teacher.env.env_id} "
            f"({teacher.env.domain}), which preprocesses differently from {spec.env_id}"
        )


def _external_teacher(model: external.ExternalModel, device: torch.device | str = "cpu") -> NetworkTeacher:
    return NetworkTeacher(model.net.to(device), model.env, model.output_kind, 0, model.path)


def load_sb3_teacher(path: str | Path, env_id: str = "", **env_settings: Any) -> NetworkTeacher:
    """A teacher from a Stable-Baselines3 ``.zip`` (see :func:`poldist.external.read_sb3_model`)."""
    return _external_teacher(external.read_sb3_model(path, env_id, **env_settings))


def load_cleanrl_teacher(path: str | Path, env_id: str, **env_settings: Any) -> NetworkTeacher:
    """A teacher from a CleanRL Atari checkpoint (see :func:`poldist.external.read_cleanrl_model`)."""
    return _external_teacher(external.read_cleanrl_model(path, env_id, **env_settings))
