"""Per-domain distillation recipes: the settings ``poldist distill`` starts from.

Like RL Zoo's per-env hyper-parameter files, a recipe is a set of :class:`DistillConfig` fields
that replace the dataclass defaults for one domain; a ``--config`` file and the flags given on the
command line still win over it. :class:`DistillConfig`'s own defaults are the paper's Atari
settings (RMSProp, batch 32, 5.4 fresh transitions per update, KL at tau 0.01 for Q-values).

- ``minatar``: chosen on MinAtar's five games with run seed 0 only (RESULTS.md section 5b, issue
  18) and reported on fresh seeds: 40,000 updates of 256 transitions on 20 fresh teacher
  transitions per update, the student acting while the teacher labels (on Seaquest, 84% of the
  teacher against 58% with the teacher acting), KL at temperature 1 (MinAtar teachers' best two
  Q-values are close: a median gap of 0.03-0.13, so tau 0.01 makes near-ties 20:1 targets), and a
  learning rate that falls to 0 on a cosine, on 16 envs (issue 22: one teacher forward pass per
  16 transitions brings collection to half of random stepping's speed on this machine, where 8
  envs fell just short; the students' fresh-seed scores at 16 envs are within noise of those at 8,
  RESULTS.md sections 5c and 6). At ``--student net2`` a student trains in about 2.5 CPU minutes
  (section 5c's `CPU min/run`).
- ``atari``: the paper's settings over 90,000 updates instead of 30,000, chosen on Pong's tuning
  seed (RESULTS.md section 7: net2 15.59 against 6.41 at 30k, the teacher 18.60) and reported on
  fresh seeds there. The Pong students sit at the random policy's score for 9-36k updates, then
  take off; at 30k half of them had taken off at 18k or later, or not at all, and their scores
  swung from seed to seed. At 90k all three fresh net2 seeds took off (14.0-15.3); of net3's
  fresh seeds so far one did (15.0) and one stayed at the random score throughout (seed 2, as at
  30k): with a small student, look at its curve, and rerun with another ``--seed`` if it never
  leaves the random score. About 25 minutes of one core per net2 student on this machine. It
  collects in two pipelined env groups (``env_groups`` 2, where the teacher acts on the local
  backend): the same data as one group, and collection alone faster (RESULTS.md section 6).
- ``paper``: the dataclass defaults (the paper's Atari settings at its 30,000 updates).

``auto`` picks ``minatar`` for a MinAtar teacher (or ``--env-id``), ``atari`` for an Atari one
(a Stable-Baselines3 or CleanRL file is one: those loaders read Atari networks only), and
``paper`` when neither the teacher nor ``--env-id`` names a domain.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from poldist.errors import PoldistError

RECIPES: dict[str, dict[str, Any]] = {
    "paper": {},
    # env_groups 2: one group's envs step in ALE's threads while the teacher labels the other; the
    # same data as 1 group (bit-identical students), collection alone faster (RESULTS.md section 6)
    "atari": {"updates": 90_000, "eval_interval": 9_000, "checkpoint_interval": 9_000, "env_groups": 2},
    "minatar": {
        "tau": 1.0,
        "lr_schedule": "cosine",
        "control": "student",
        "updates": 40_000,
        "batch_size": 256,
        "optimizer": "rmsprop",
        "lr": 1e-3,
        "transitions_per_update": 20.0,
        "learning_starts": 10_000,
        "memory_size": 200_000,
        "eval_interval": 5_000,
        "eval_episodes": 10,
        "checkpoint_interval": 5_000,
        # 16, not 8: collection at half of random stepping's speed, the students' scores unchanged
        # within noise (issue 22; the study's `recipe` cells ran at 8, its `recipe-envs16` at 16)
        "num_envs": 16,
    },
}
RECIPE_CHOICES = ("auto", *RECIPES)


def teacher_domain(teacher: str, env_id: str = "") -> str:
    """The domain (``"minatar"`` or ``"atari"``) a distillation runs on: ``env_id``'s if given,
    else the first teacher's recorded env; ``"atari"`` for a Stable-Baselines3 or CleanRL file (the
    only networks those loaders read); ``""`` when neither says."""
    if env_id:
        return "minatar" if env_id.startswith("MinAtar/") else "atari"
    from poldist.checkpoints import load_checkpoint, model_envs
    from poldist.external import is_external
    from poldist.teachers import expand_teacher_names, resolve_checkpoint

    names = expand_teacher_names(teacher)
    if not names:
        return ""
    path = resolve_checkpoint(names[0])
    if is_external(path):  # the SB3 and CleanRL loaders read Atari (Nature-CNN) networks only
        return "atari"
    if not Path(path, "meta.json").exists():
        return ""
    meta = load_checkpoint(path, blobs=False).metadata
    return model_envs(meta, path)[0].domain


def recipe_for(name: str, teacher: str, env_id: str = "") -> tuple[str, dict[str, Any]]:
    """The recipe ``name`` (``auto`` resolved by the teacher's domain) and its field values.

    Raises:
        PoldistError: an unknown recipe name.
    """
    if name == "auto":
        domain = teacher_domain(teacher, env_id)  # a domain with a recipe of its name gets it
        name = domain if domain in RECIPES else "paper"
    if name not in RECIPES:
        raise PoldistError(f"unknown recipe {name!r}: choose from {', '.join(RECIPE_CHOICES)}")
    return name, dict(RECIPES[name])


def recipe_config(teacher: str, recipe: str = "auto", **fields: Any) -> Any:
    """A :class:`~poldist.config.DistillConfig` from a recipe, with ``fields`` over it: what
    ``poldist distill --teacher TEACHER`` runs, from Python.

    Example::

        cfg = recipe_config("minatar/breakout", student="net3", seed=1)
        distill(cfg, "runs/breakout-net3")
    """
    from poldist.config import DistillConfig

    _, values = recipe_for(recipe, teacher, fields.get("env_id", ""))
    cfg = DistillConfig(**with_recipe(values, {**fields, "teacher": teacher}, DistillConfig))
    cfg.validate()
    return cfg


def with_recipe(recipe: dict[str, Any], given: dict[str, Any], cls: type) -> dict[str, Any]:
    """``given`` fields over ``recipe``'s, for a config of dataclass ``cls``.

    The recipe's ``env_groups`` (pipelined collection, an execution setting that leaves the data
    unchanged) applies only where pipelining runs: the teacher acting, the local backend, and at
    least that many envs; elsewhere the run keeps one group rather than failing on a flag the
    user did not give.
    """
    values = {**recipe, **given}
    if "env_groups" in recipe and "env_groups" not in given:
        merged = {**{f.name: f.default for f in dataclasses.fields(cls)}, **values}
        pipelined = merged.get("control") == "teacher" and merged.get("backend") == "local"
        values["env_groups"] = min(recipe["env_groups"], merged["num_envs"]) if pipelined else 1
    return values
