"""Every name a config accepts has a factory, and every factory a name the config accepts: the
registries' keys are the configs' choices (config.validate() is the one check of a name)."""

from __future__ import annotations

import pytest

from poldist import collection, distillation, losses
from poldist.config import (
    BACKEND_CHOICES,
    CONTROL_CHOICES,
    LOSS_CHOICES,
    LR_SCHEDULE_CHOICES,
    OPTIMIZER_CHOICES,
    DistillConfig,
    DQNConfig,
    OnlineConfig,
    field_choices,
)


@pytest.mark.parametrize(
    ("registry", "choices"),
    [
        (losses.LOSSES, LOSS_CHOICES),
        (collection.CONTROLLERS, CONTROL_CHOICES),
        (distillation.OPTIMIZERS, OPTIMIZER_CHOICES),
        (distillation.COLLECTORS, BACKEND_CHOICES),
        (distillation.LR_SCHEDULES, LR_SCHEDULE_CHOICES),
    ],
    ids=["losses", "controllers", "optimizers", "collectors", "lr_schedules"],
)
def test_registry_keys_are_the_config_choices(registry: dict, choices: tuple) -> None:
    assert tuple(registry) == tuple(choices)


def _choices(cls: type, name: str) -> tuple:
    return field_choices(cls, name)


def test_config_fields_offer_the_registry_names() -> None:
    assert _choices(DistillConfig, "loss") == tuple(losses.LOSSES)
    assert _choices(OnlineConfig, "loss") == tuple(losses.LOSSES)
    assert _choices(DQNConfig, "kickstart_loss") == ("auto", *losses.LOSSES)
    assert _choices(DistillConfig, "control") == tuple(collection.CONTROLLERS)
    assert _choices(DistillConfig, "optimizer") == tuple(distillation.OPTIMIZERS)
    assert _choices(DistillConfig, "backend") == tuple(distillation.COLLECTORS)
    assert _choices(OnlineConfig, "backend") == tuple(distillation.COLLECTORS)
    assert _choices(DistillConfig, "lr_schedule") == tuple(distillation.LR_SCHEDULES)


@pytest.mark.parametrize("name", OPTIMIZER_CHOICES)
def test_every_optimizer_is_made_at_the_configured_rate(name: str) -> None:
    import torch

    param = torch.nn.Parameter(torch.zeros(2))
    opt = distillation.make_optimizer(DistillConfig(optimizer=name, lr=0.25), [param])
    assert opt.param_groups[0]["lr"] == 0.25
