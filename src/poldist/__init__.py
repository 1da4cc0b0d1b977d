"""poldist: Policy Distillation (Rusu et al., 2015) for reinforcement learning.

Modules read like the paper: :mod:`poldist.envs`, :mod:`poldist.networks`,
:mod:`poldist.teachers`, :mod:`poldist.memory`, :mod:`poldist.losses`,
:mod:`poldist.collection` (teacher play), :mod:`poldist.distillation`,
:mod:`poldist.evaluation`, :mod:`poldist.checkpoints`, :mod:`poldist.dqn` (teacher
training), :mod:`poldist.online` and :mod:`poldist.cli`.

The names in ``__all__`` are the public API, e.g. ``poldist.distill(poldist.DistillConfig(), "run")``.
Each is imported from its module when first used, so ``import poldist`` (and the torch-free
:mod:`poldist.deploy`) loads nothing heavy; the optional dependencies (Ray, matplotlib,
TensorBoard) are imported only by the code that needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from poldist._version import __version__

if TYPE_CHECKING:  # what __getattr__ imports, spelled out for type checkers and readers
    from poldist.checkpoints import load_model, save_model
    from poldist.collection import (
        Collector,
        Controller,
        LocalCollector,
        MixedControl,
        StudentControl,
        TeacherControl,
    )
    from poldist.config import DistillConfig, DQNConfig, OnlineConfig
    from poldist.distillation import Distiller, distill
    from poldist.dqn import DQNTrainer, train_dqn
    from poldist.errors import PoldistError
    from poldist.evaluation import EvalResult, evaluate
    from poldist.losses import LOSSES, erd_loss, kl_loss, make_loss, mse_loss, nll_loss
    from poldist.online import online_distill
    from poldist.recipes import RECIPES, recipe_config
    from poldist.teachers import NetworkTeacher, Teacher, load_teacher

# public name -> the module it lives in
_EXPORTS = {
    "load_model": "poldist.checkpoints",
    "save_model": "poldist.checkpoints",
    "Collector": "poldist.collection",
    "Controller": "poldist.collection",
    "LocalCollector": "poldist.collection",
    "MixedControl": "poldist.collection",
    "StudentControl": "poldist.collection",
    "TeacherControl": "poldist.collection",
    "DQNConfig": "poldist.config",
    "DistillConfig": "poldist.config",
    "OnlineConfig": "poldist.config",
    "Distiller": "poldist.distillation",
    "distill": "poldist.distillation",
    "DQNTrainer": "poldist.dqn",
    "train_dqn": "poldist.dqn",
    "PoldistError": "poldist.errors",
    "EvalResult": "poldist.evaluation",
    "evaluate": "poldist.evaluation",
    "LOSSES": "poldist.losses",
    "erd_loss": "poldist.losses",
    "kl_loss": "poldist.losses",
    "make_loss": "poldist.losses",
    "mse_loss": "poldist.losses",
    "nll_loss": "poldist.losses",
    "online_distill": "poldist.online",
    "RECIPES": "poldist.recipes",
    "recipe_config": "poldist.recipes",
    "NetworkTeacher": "poldist.teachers",
    "Teacher": "poldist.teachers",
    "load_teacher": "poldist.teachers",
}

__all__ = [
    "Collector",
    "Controller",
    "DQNConfig",
    "DQNTrainer",
    "DistillConfig",
    "Distiller",
    "EvalResult",
    "LOSSES",
    "LocalCollector",
    "MixedControl",
    "NetworkTeacher",
    "OnlineConfig",
    "PoldistError",
    "RECIPES",
    "StudentControl",
    "Teacher",
    "TeacherControl",
    "__version__",
    "distill",
    "erd_loss",
    "evaluate",
    "kl_loss",
    "load_model",
    "load_teacher",
    "make_loss",
    "mse_loss",
    "nll_loss",
    "online_distill",
    "recipe_config",
    "save_model",
    "train_dqn",
]


def __getattr__(name: str) -> Any:
    """The public name ``name``, imported from its module on first use (PEP 562)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'poldist' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
