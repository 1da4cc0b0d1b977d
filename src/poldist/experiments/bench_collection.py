"""Benchmark section 2, collection efficiency: teacher-labelled transitions/s of
:func:`~poldist.collection.collect` against stepping the same vector env with random actions
(and with the teacher's greedy actions), and the Ray backend against the local one.

Each env gets one row per labeller (:mod:`poldist.fast_teacher`): ``auto``, the default
(onnxruntime where it is installed and the teacher is on the CPU, labels within 1e-5, on the
threads :func:`~poldist.fast_teacher.auto_threads` picks), and ``torch``, the bit-identical one.
The targets (issue 22, :data:`COLLECTION_TARGETS`) are for the default settings: ``auto``, 8
envs, in the groups ``poldist distill``'s recipe for the domain collects with
(:func:`default_groups`: one on MinAtar, two pipelined on Atari)."""

from __future__ import annotations

import importlib.util
import os
import statistics
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from poldist.collection import TeacherControl, collect
from poldist.distillation import DistillConfig, base_architecture, make_student
from poldist.envs import make_vector_env
from poldist.experiments.bench_common import (
    COLLECTION_TARGETS,
    CPU,
    MINATAR_TEACHER,
    Budget,
    atari_missing,
    filled_task,
    paired_rates,
    paired_ratio,
    random_atari_teacher,
    rate,
)
from poldist.fast_teacher import make_labeller, onnxruntime_missing
from poldist.recipes import RECIPES
from poldist.tables import format_table
from poldist.teachers import NetworkTeacher


def _collection_row(
    label: str,
    cfg: DistillConfig,
    teacher: NetworkTeacher | None,
    budget: Budget,
    seed: int,
    device: torch.device = CPU,
    labeller: str = "torch",
    groups: int = 1,
) -> dict[str, Any]:
    """``collect()`` against random-action and teacher-acting bare loops, each on its own vector env.

    The teacher (and the student ``collect`` is given) on ``device``: each vector step's
    observations go there and the outputs or actions come back, in the library and the bare
    teacher-acting loop alike. ``labeller``: who computes the teacher's outputs, in ``collect()``
    and in the bare teacher-acting loop alike (:func:`~poldist.fast_teacher.make_labeller`).
    ``groups`` > 1: ``collect()``'s envs as that many groups, pipelined
    (:class:`~poldist.collection.GroupedVectorEnv`); the bare loops keep one vector env.
    """
    task = filled_task(cfg, [teacher] if teacher else None, 0, seed, groups)
    task.teacher.net.to(device)
    student = make_student(cfg, [task], base_architecture([task])).to(device)
    controller = TeacherControl(cfg.epsilon)
    rng = np.random.default_rng(seed)
    n = cfg.num_envs
    lab = make_labeller(task.teacher, labeller, DistillConfig.labeller_threads)

    def library_collect() -> None:
        collect(task, controller, student, n, rng, labeller=lab)  # one vector step: n transitions

    spec = task.spec
    bare_env = make_vector_env(spec, n, seed + 1)
    bare_env.reset(seed=seed + 1)

    def bare_step() -> None:
        bare_env.step(rng.integers(0, spec.n_actions, n))

    act_env = make_vector_env(spec, n, seed + 2)
    state = {"obs": act_env.reset(seed=seed + 2)[0]}

    def bare_teacher_step() -> None:
        # the least a teacher-acting loop must do: one forward pass and one env step
        state["obs"] = act_env.step(lab(state["obs"]).argmax(1))[0]

    try:
        r = paired_rates(
            {
                "collect": (library_collect, n),
                "bare_random": (bare_step, n),
                "bare_teacher": (bare_teacher_step, n),
            },
            budget.collection_seconds,
            budget.collection_rounds,
        )
    finally:
        for env in (task.env, bare_env, act_env):
            env.close()
    lib, bare, bare_t = (r[k]["median"] for k in ("collect", "bare_random", "bare_teacher"))
    return {
        "env_id": spec.env_id,
        "device": str(device),
        "teacher": label,
        "labeller": labeller,
        "labeller_kind": lab.kind,
        "labeller_threads": getattr(lab, "threads", torch.get_num_threads()),
        "default": labeller == DistillConfig.labeller
        and groups == default_groups(spec.domain)
        and n == default_envs(spec.domain),
        "groups": groups,
        "num_envs": n,
        "memory_class": type(task.memory).__name__,
        "collect_transitions_per_s": lib,
        "bare_random_steps_per_s": bare,
        "bare_teacher_steps_per_s": bare_t,
        "ratio": paired_ratio(r["collect"]["rounds"], r["bare_random"]["rounds"]),
        "ratio_vs_bare_teacher": paired_ratio(r["collect"]["rounds"], r["bare_teacher"]["rounds"]),
        "ratio_estimate": "median of the rounds' ratios",
        "rounds": {k: v["rounds"] for k, v in r.items()},
    }


def ray_missing() -> str | None:
    """Why Ray rows cannot be measured (ray missing), or None."""
    return (
        None
        if importlib.util.find_spec("ray") is not None
        else "ray rows skipped: ray not installed (pip install 'poldist[ray]')"
    )


def bench_ray_collection(budget: Budget, seed: int = 0, actors: Sequence[int] = (1, 2)) -> dict[str, Any]:
    """Transitions/s that reach the learner's memory: the local backend against Ray actors.

    MinAtar Breakout, shipped teacher, teacher-driven, 8 envs per actor, on a local Ray (started
    here unless one is running). Each call takes one chunk's worth (``DEFAULT_CHUNK`` vector steps
    of 8 envs), so the local side is :func:`~poldist.collection.collect` of the same size; a
    Ray side's rate includes the learner waiting for actors and adding chunks to the memory. Its
    warm-up first takes the chunks the actors played while the other sides were timed.
    """
    from poldist.ray_backend import DEFAULT_CHUNK, DEFAULT_IN_FLIGHT, RayCollector, init_ray

    started = init_ray("", num_cpus=min(2, os.cpu_count() or 1))
    collectors: list[RayCollector] = []
    try:
        base = DistillConfig(teacher=MINATAR_TEACHER, memory_size=20_000, seed=seed)
        task = filled_task(base, None, 0, seed)
        student = make_student(base, [task], base_architecture([task]))
        controller = TeacherControl(base.epsilon)
        rng = np.random.default_rng(seed)
        n = DEFAULT_CHUNK * base.num_envs
        fns: dict[str, tuple[Callable[[], Any], int]] = {
            "local": (lambda: collect(task, controller, student, n, rng), 1)
        }
        for k in actors:
            c = RayCollector(DistillConfig(teacher=MINATAR_TEACHER, ray_actors=k, seed=seed), [task])
            collectors.append(c)
            fns[f"ray_{k}"] = (lambda c=c: c.collect(task, controller, student, n, rng), k)
        per: dict[str, list[float]] = {name: [] for name in fns}
        for _ in range(budget.rounds):  # alternated, as paired_rates, with a warm-up per side
            for name, (fn, k) in fns.items():
                per[name].append(rate(fn, n, budget.seconds, warmup=k * DEFAULT_IN_FLIGHT + 1))
        task.env.close()
    finally:
        for c in collectors:
            c.close()
        if started:
            import ray

            ray.shutdown()
    local = statistics.median(per["local"])
    rows = [{"backend": "local", "actors": 0, "transitions_per_s": local, "ratio_vs_local": 1.0}]
    for k in actors:
        r = statistics.median(per[f"ray_{k}"])
        rows.append({"backend": "ray", "actors": k, "transitions_per_s": r, "ratio_vs_local": r / local})
    for row, rounds in zip(rows, per.values()):
        row.update(env_id=task.spec.env_id, num_envs=base.num_envs, chunk_steps=DEFAULT_CHUNK, rounds=rounds)
    return {"rows": rows}


# MinAtar's envs step in microseconds, and the labeller's per-call costs (its call, the memory's
# add, the loop) are shared by the envs of a call: rows at other envs than the recipe's show what
# envs buy (8: DistillConfig's default, and the recipe's until issue 22)
MINATAR_OTHER_ENVS = (8, 16, 64)


def default_groups(domain: str) -> int:
    """The pipelined groups ``poldist distill`` collects with by default on ``domain``: its
    recipe's (Atari: 2), else :class:`~poldist.config.DistillConfig`'s (1)."""
    return RECIPES.get(domain, {}).get("env_groups", DistillConfig.env_groups)


def default_envs(domain: str) -> int:
    """The envs ``poldist distill`` collects on by default on ``domain``: its recipe's, else
    :class:`~poldist.config.DistillConfig`'s (8)."""
    return RECIPES.get(domain, {}).get("num_envs", DistillConfig.num_envs)


def collection_labellers(device: torch.device = CPU) -> tuple[list[tuple[str, int]], str | None]:
    """The ``(labeller, groups)`` section 2 measures on ``device``, and why onnxruntime is left
    out (or None): the default (``auto``) and ``torch`` on one vector env, then the default on two
    pipelined groups."""
    why = onnxruntime_missing()
    if why is None and device.type != "cpu":
        why = f"the teacher is on {device}"
    if why:  # auto is torch then
        return [("auto", 1), ("auto", 2)], why
    return [("auto", 1), ("torch", 1), ("auto", 2)], why


def labeller_name(row: dict[str, Any]) -> str:
    """How a row's teacher labelled, e.g. ``auto: onnxruntime x2`` (2 threads) or ``torch``."""
    lab = row.get("labeller", "torch")  # absent in older JSON
    kind = row.get("labeller_kind", lab)
    threads = row.get("labeller_threads", 1)
    name = kind + (f" x{threads}" if kind == "onnxruntime" and threads > 1 else "")
    return f"{lab}: {name}" if lab != kind else name


def bench_collection(
    budget: Budget,
    atari: bool,
    seed: int = 0,
    ray_rows: bool = True,
    device: torch.device = CPU,
    labellers: list[tuple[str, int]] | None = None,
    minatar_other: Sequence[int] = MINATAR_OTHER_ENVS,
) -> dict[str, Any]:
    """Teacher-labelled transitions/s of ``collect()`` against bare vector-env stepping on each
    domain's default envs (:func:`default_envs`), the teacher on ``device``, one row per
    ``(labeller, groups)`` (default: :func:`collection_labellers`); MinAtar also with each of
    ``minatar_other`` envs in one group (empty: none; the default's own skipped), where a teacher
    forward pass is shared by another number of envs; with ``ray_rows``, also the Ray backend
    with 1 and 2 local actors (:func:`bench_ray_collection`; its actors and its local side on the
    CPU)."""
    notes = []
    if labellers is None:
        labellers, why = collection_labellers(device)
        if why:
            notes.append(f"onnxruntime labeller rows skipped: {why}")
    envs = default_envs("minatar")
    minatar = [(envs, lab, g) for lab, g in labellers]
    minatar += [(n, lab, 1) for n in minatar_other if n != envs for lab, g in labellers if g == 1]
    rows = [
        _collection_row(
            MINATAR_TEACHER,
            DistillConfig(teacher=MINATAR_TEACHER, num_envs=n),
            None,
            budget,
            seed,
            device,
            lab,
            g,
        )
        for n, lab, g in minatar
    ]
    skip = "Atari skipped: --no-atari" if not atari else atari_missing()
    if skip:
        notes.append(skip)
    else:
        # a small memory: only the rows the timing writes are touched
        cfg = DistillConfig(teacher="", memory_size=20_000, num_envs=default_envs("atari"))
        for lab, g in labellers:
            teacher = random_atari_teacher(seed)
            rows.append(
                _collection_row("nature-dqn (random weights)", cfg, teacher, budget, seed, device, lab, g)
            )
    for r in rows:  # the targets are for the default settings
        if r["default"]:
            r["target"] = COLLECTION_TARGETS["atari" if r["env_id"].startswith("ALE/") else "minatar"]
    notes.append(
        "targets (issue 22): collect/random >= "
        + ", ".join(f"{v} ({k})" for k, v in COLLECTION_TARGETS.items())
        + " at the default settings (labeller auto: onnxruntime, labels within 1e-5 of torch's, "
        "on 2 threads for the Nature DQN and 1 for MinAtar's teacher; "
        f"{default_envs('minatar')} envs in {default_groups('minatar')} group on MinAtar and "
        f"{default_envs('atari')} in the atari recipe's {default_groups('atari')} pipelined groups "
        "on Atari: the same data as 1 group, as the labeller gives a group's rows what it gives "
        "them in one batch); torch (bit-identical), "
        "other groups and other numbers of envs are opt-in "
        f"(--num-envs; {' and '.join(str(n) for n in minatar_other if n != envs) or 'other'} envs on "
        "MinAtar: one teacher forward pass per as many transitions); each ratio is the median of "
        f"{budget.collection_rounds} "
        f"alternated rounds' own ratios ({budget.collection_seconds:g} s a side a round): the "
        "machine's speed drifts between rounds, not between a round's back-to-back timings"
    )
    result: dict[str, Any] = {"rows": rows, "notes": notes}
    ray_skip = "ray rows skipped: --quick (Ray starts in seconds)" if not ray_rows else ray_missing()
    if ray_skip:
        notes.append(ray_skip)
    else:
        result["ray_rows"] = bench_ray_collection(budget, seed)["rows"]
        if device.type != "cpu":
            notes.append("ray rows on the CPU: Ray actors always are, and so is their local baseline")
    return result


def collection_table(res: dict[str, Any]) -> str:
    """Section 2's rows (and the Ray rows, if measured) as plain-text tables."""
    return format_table(
        [
            "env",
            "teacher",
            "labeller",
            "groups",
            "envs",
            "collect() trans/s",
            "random steps/s",
            "collect/random",
            "teacher-acting steps/s",
            "collect/teacher-acting",
        ],
        [
            [
                r["env_id"],
                r["teacher"],
                labeller_name(r) + (" (default)" if r.get("default") else ""),
                r.get("groups", 1),
                r["num_envs"],
                round(r["collect_transitions_per_s"]),
                round(r["bare_random_steps_per_s"]),
                f"{r['ratio']:.2f}",
                round(r["bare_teacher_steps_per_s"]),
                f"{r['ratio_vs_bare_teacher']:.2f}",
            ]
            for r in res["rows"]
        ],
    ) + ray_table(res.get("ray_rows", []))


def ray_table(rows: list[dict[str, Any]]) -> str:
    """The Ray backend against the local one (empty when not measured)."""
    if not rows:
        return ""
    table = format_table(
        ["env", "backend", "actors", "envs/actor", "chunk (steps)", "trans/s to memory", "ray/local"],
        [
            [
                r["env_id"],
                r["backend"],
                r["actors"] or "-",
                r["num_envs"],
                r["chunk_steps"],
                round(r["transitions_per_s"]),
                f"{r['ratio_vs_local']:.2f}",
            ]
            for r in rows
        ],
    )
    return "\n\nteacher play in Ray actors (local Ray, teacher-driven):\n" + table
