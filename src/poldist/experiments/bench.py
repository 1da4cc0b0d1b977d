"""The library's benchmark, run in one go on the current machine.

``poldist bench`` (or ``python -m poldist.experiments.bench``) ``[--quick] [--no-atari] [--json PATH]``
prints one plain-text table per section and writes every raw number, the machine and the date as
JSON. Each section is a ratio of two rates measured in the same run, so that a loaded machine
depresses both sides alike:

1. **update efficiency**: distillation updates/s as :class:`~poldist.distillation.Distiller` does
   them (``memory.sample`` + ``torch.as_tensor`` + :func:`~poldist.distillation.distill_step`, KL
   loss) against a bare PyTorch loop of the same network, batch and RMSprop on tensors made once.
2. **collection efficiency**: teacher-labelled transitions/s of
   :func:`~poldist.collection.collect` against stepping the same vector env with random actions
   (and against a bare loop that steps it with the teacher's greedy actions).
3. **inference**: actions/s of the teacher and the students, PyTorch and onnxruntime.
4. **time to quality**: training seconds for a net2 student to reach 95% of its teacher by
   distillation, against Double DQN from scratch on the same network.
5. **memory**: bytes per stored transition of the distillation replay memory, and the size of the
   paper's 540,000-transition memory.
6. **Atari DQN**: ``poldist train-teacher`` on Pong against a bare CleanRL-style loop (CPU only).

Each section lives in its own module (``bench_update``, ``bench_collection``, ``bench_inference``,
``bench_ttq``, ``bench_memory``, ``bench_dqn``; shared budgets and timing helpers in
``bench_common``); this module runs them, prints their tables and writes the JSON.

The full run takes about 2 to 3 minutes on 2 CPU cores (at most about 8 when distillation misses
its target and the DQN runs to its 300 s cap); ``--quick`` (tests) about 10 s, and only checks
the plumbing. Everything runs on one torch thread, the library's default
(``torch_threads=1`` of the configs).

``--device`` (default ``auto``: CUDA, else MPS, else CPU) puts the networks of sections 1 to 4 on
that device, both sides of each ratio alike: minibatches and observations go there as the library
sends them; replay memories, env stepping, onnxruntime and the Ray actors stay on the CPU. Off the
CPU, each timed call ends by waiting for the device, so queued kernels are not left out.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from poldist.errors import PoldistError
from poldist.experiments.bench_collection import bench_collection, collection_table, labeller_name
from poldist.experiments.bench_common import (
    ATARI_MEMORY_TARGET_GB,
    DQN_TARGET,
    FULL,
    QUICK,
    TTQ_TARGET,
    UPDATE_TARGET,
    atari_missing,
)
from poldist.experiments.bench_inference import bench_inference, inference_table
from poldist.experiments.bench_memory import bench_memory, memory_table
from poldist.experiments.bench_ttq import bench_time_to_quality, ttq_table
from poldist.experiments.bench_update import bench_update, update_table
from poldist.networks import resolve_device
from poldist.runs import machine_info
from poldist.tables import format_table

DQN_ATARI_TITLE = "6. Atari Double DQN (Pong): poldist train-teacher against a bare CleanRL-style loop"
# each section (--only) and its key in the result
SECTION_KEYS = {
    "update": "update_efficiency",
    "collection": "collection_efficiency",
    "inference": "inference",
    "time_to_quality": "time_to_quality",
    "memory": "memory",
    "dqn_atari": "dqn_atari",
}
SECTIONS = tuple(SECTION_KEYS)


# --------------------------------------------------------------------------- tables


def _print_section(title: str, body: str, notes: Sequence[str] = ()) -> None:
    print(f"\n== {title} ==\n{body}", flush=True)
    for note in notes:
        print(f"note: {note}", flush=True)


def _summary(result: dict[str, Any]) -> list[list[Any]]:
    """One line per headline ratio: value, target, met."""
    out: list[list[Any]] = []
    if "update_efficiency" in result:
        worst = min(result["update_efficiency"]["rows"], key=lambda r: r["ratio"])
        v = worst["ratio"]
        out.append(
            [
                "update: library/bare (worst)",
                f"{v:.2f}",
                f">= {UPDATE_TARGET}",
                "yes" if v >= UPDATE_TARGET else "no",
            ]
        )
    if "collection_efficiency" in result:
        for r in result["collection_efficiency"]["rows"]:
            how = labeller_name(r) + (f", {r['groups']} groups" if r.get("groups", 1) > 1 else "")
            how += f", {r['num_envs']} envs" if "num_envs" in r else ""
            target = r.get("target")
            out.append(
                [
                    f"collection {r['env_id']} ({how}): collect/random",
                    ratio_text(r["ratio"], target),
                    "-" if target is None else f">= {target}",
                    "-" if target is None else _met(r["ratio"], target),
                ]
            )
    if "inference" in result:
        for r in result["inference"]["rows"]:
            if r["role"] == "net2" and r["batch"] == 1:
                out.append(
                    [
                        f"inference {r['domain']} net2/teacher, batch 1",
                        f"{r['torch_over_teacher']:.2f}x",
                        "-",
                        "-",
                    ]
                )
    if "time_to_quality" in result:
        t = result["time_to_quality"]
        if t["ratio_valid"]:
            v = f"{'>' if t['ratio_is_lower_bound'] else ''}{t['ratio']:.1f}x"
            met = "yes" if t["ratio"] >= TTQ_TARGET else ("not shown" if t["ratio_is_lower_bound"] else "no")
        else:
            v, met = "n/a", "not measured"
        out.append(["time to 95%: DQN/distillation", v, f">= {TTQ_TARGET:.0f}x", met])
    if "memory" in result:
        for r in result["memory"]["rows"]:
            if r["env_id"].startswith("ALE/"):
                gb = r["paper_memory_gb"]
                out.append(
                    [
                        "memory: Atari 540k transitions (GB)",
                        f"{gb:.2f}",
                        f"< {ATARI_MEMORY_TARGET_GB}",
                        "yes" if gb < ATARI_MEMORY_TARGET_GB else "no",
                    ]
                )
    if "dqn_atari" in result:
        d = result["dqn_atari"]
        out.append(["Atari DQN steps/s: poldist/bare, 1 thread each", f"{d['ratio_1_thread']:.2f}", "-", "-"])
        v = d["ratio_2_threads_vs_bare_1"]
        out.append(
            [
                "Atari DQN steps/s: poldist 2 threads/bare 1",
                f"{v:.2f}",
                f">= {DQN_TARGET}",
                _met(v, DQN_TARGET),
            ]
        )
        if "ratio_2_threads_overlap_vs_bare_1" in d:
            v = d["ratio_2_threads_overlap_vs_bare_1"]
            out.append(
                [
                    "Atari DQN steps/s: poldist 2 threads, envs overlapped/bare 1",
                    f"{v:.2f}",
                    f">= {DQN_TARGET}",
                    _met(v, DQN_TARGET),
                ]
            )
        if "ratio_2_threads_overlap_4envs_vs_bare_1" in d:
            v = d["ratio_2_threads_overlap_4envs_vs_bare_1"]
            out.append(
                [
                    "Atari DQN steps/s: poldist 2 threads, 4 envs overlapped/bare 1 (1 env)",
                    f"{v:.2f}",
                    f">= {DQN_TARGET}",
                    _met(v, DQN_TARGET),
                ]
            )
    return out


def _met(value: float, target: float) -> str:
    return "yes" if value >= target else "no"


def ratio_text(value: float, target: float | None = None) -> str:
    """``value`` to 2 decimals, or to as many more (up to 6) as it takes not to round it onto the
    other side of ``target``: 0.4997 against 0.5 reads "0.4997" and "no", never "0.50" and "no"."""
    for digits in range(2, 7):
        text = f"{value:.{digits}f}"
        if target is None or (float(text) >= target) == (value >= target):
            break
    return text


# --------------------------------------------------------------------------- entry points


def run_bench(
    quick: bool = False,
    atari: bool = True,
    out_json: Path | None = None,
    *,
    sections: Sequence[str] | None = None,
    seed: int = 0,
    device: str | torch.device = "auto",
    merge: bool = False,
) -> dict[str, Any]:
    """Run the benchmark sections, print a table for each, and return (and write) every number.

    Args:
        quick: tiny budgets that only check the plumbing (tests); numbers are not meaningful.
        atari: include the Atari rows (skipped with a note when ale-py is missing).
        out_json: where to write the JSON (parents created); None: not written.
        sections: a subset of :data:`SECTIONS` (profiling one section); default all.
        seed: seeds of envs, networks and samplers.
        device: where the networks run (:func:`~poldist.networks.resolve_device`: ``auto``,
            ``cpu``, ``cuda``, ``mps``); checked before anything runs.
        merge: write the sections run into the existing ``out_json``, keeping its other sections
            (each section's ratios still come from one run; ``section_dates`` says when each ran).

    Returns:
        ``{"date", "machine", "device", "quick", "atari", "wall_seconds", "notes", <section>: {...}}`` with
        sections ``update_efficiency``, ``collection_efficiency``, ``inference``,
        ``time_to_quality``, ``memory``.
    """
    dev = resolve_device(device)
    chosen = tuple(SECTIONS if sections is None else sections)
    unknown = set(chosen) - set(SECTIONS)
    if unknown:
        raise ValueError(f"unknown sections {sorted(unknown)}: choose from {list(SECTIONS)}")
    budget = QUICK if quick else FULL
    atari_note = atari_missing() if atari else None
    atari = atari and atari_note is None
    threads_before = torch.get_num_threads()
    torch.set_num_threads(1)  # the library's default (torch_threads=1); both sides of each ratio alike
    start = time.perf_counter()
    result: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "device": str(dev),
        "quick": quick,
        "atari": atari,
        "notes": [atari_note] if atari_note else [],
    }
    m = result["machine"]
    print(
        f"poldist bench{' --quick' if quick else ''}: {m['cpu_model']}, {m['cpu_count']} cores, "
        f"torch {m['torch_version']} on {m['torch_threads']} thread(s), networks on {dev}, load average "
        f"{', '.join(f'{x:.2f}' for x in m.get('load_average_1_5_15min', []))}",
        flush=True,
    )
    try:
        if "update" in chosen:
            res = result["update_efficiency"] = bench_update(budget, seed, dev)
            _print_section(
                f"1. update efficiency (target library/bare >= {UPDATE_TARGET})", update_table(res)
            )
        if "collection" in chosen:
            res = result["collection_efficiency"] = bench_collection(budget, atari, seed, not quick, dev)
            _print_section("2. collection efficiency", collection_table(res), res["notes"])
        if "inference" in chosen:
            res = result["inference"] = bench_inference(1, budget.inference_seconds, atari, device=dev)
            _print_section("3. inference (1 thread)", inference_table(res["rows"]), res["notes"])
        if "time_to_quality" in chosen:
            with tempfile.TemporaryDirectory(prefix="poldist-bench-") as tmp:
                res = result["time_to_quality"] = bench_time_to_quality(budget, Path(tmp), seed, dev)
            _print_section("4. time to 95% of the teacher (training time only)", ttq_table(res))
        if "memory" in chosen:
            res = result["memory"] = bench_memory(budget, atari, seed)
            _print_section("5. replay memory", memory_table(res), res["notes"])
        if "dqn_atari" in chosen and atari and dev.type == "cpu":
            from poldist.experiments.bench_dqn import bench_dqn_atari, dqn_atari_table

            res = result["dqn_atari"] = bench_dqn_atari(
                budget.atari_dqn_steps,
                budget.atari_dqn_learning_starts,
                budget.atari_dqn_repeats,
                budget.atari_dqn_memory_rows,
            )
            _print_section(DQN_ATARI_TITLE, dqn_atari_table(res))
    finally:
        torch.set_num_threads(threads_before)
    result["wall_seconds"] = time.perf_counter() - start
    if hasattr(os, "getloadavg"):
        result["machine"]["load_average_at_end"] = list(os.getloadavg())
    summary = _summary(result)
    if summary:
        _print_section("summary", format_table(["ratio", "value", "target", "met"], summary))
    print(f"\n{result['wall_seconds']:.0f} s in all", flush=True)
    if out_json is not None:
        out_json = Path(out_json)
        out_json.parent.mkdir(parents=True, exist_ok=True)
        if merge and out_json.exists():
            result = merge_sections(json.loads(out_json.read_text()), result)
        out_json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"raw numbers: {out_json}", flush=True)
    return result


def report_text(result: dict[str, Any]) -> str:
    """The tables :func:`run_bench` printed, rebuilt from its JSON result (for RESULTS.md)."""
    m = result["machine"]
    on = f", networks on {result['device']}" if "device" in result else ""  # absent in older JSON
    parts = [
        f"{result['date']}: {m['cpu_model']}, {m['cpu_count']} cores, torch {m['torch_version']} on "
        f"{m['torch_threads']} thread(s){on}, load average at start "
        + ", ".join(f"{x:.2f}" for x in m.get("load_average_1_5_15min", []))
    ]
    sections = [
        (
            "update_efficiency",
            f"1. update efficiency (target library/bare >= {UPDATE_TARGET})",
            update_table,
        ),
        ("collection_efficiency", "2. collection efficiency", collection_table),
        ("inference", "3. inference (1 thread)", lambda r: inference_table(r["rows"])),
        ("time_to_quality", "4. time to 95% of the teacher (training time only)", ttq_table),
        ("memory", "5. replay memory", memory_table),
        ("dqn_atari", DQN_ATARI_TITLE, _dqn_atari_table),
    ]
    for key, title, table in sections:
        if key in result:
            parts.append(f"== {title} ==\n{table(result[key])}")
            parts += [f"note: {n}" for n in result[key].get("notes", [])]
    summary = _summary(result)
    if summary:
        parts.append("== summary ==\n" + format_table(["ratio", "value", "target", "met"], summary))
    parts += [f"note: {n}" for n in result.get("notes", [])]
    total = f"{result['wall_seconds']:.0f} s in all"
    reruns = result.get("rerun_seconds") or {}
    if reruns:  # a merged JSON: the first run's time, and each rerun's (sections run together, once)
        together: dict[tuple[str, float], list[str]] = {}
        for key, sec in reruns.items():
            together.setdefault((result["section_dates"][key], sec), []).append(key)
        total = f"{result['wall_seconds']:.0f} s for the run of {result['date']}; reruns: " + ", ".join(
            f"{' and '.join(keys)} {sec:.0f} s ({date})" for (date, sec), keys in together.items()
        )
    parts.append(total)
    return "\n\n".join(parts)


def _dqn_atari_table(res: dict[str, Any]) -> str:
    from poldist.experiments.bench_dqn import dqn_atari_table

    return dqn_atari_table(res)


def merge_sections(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``old`` (a bench JSON) with the sections ``new`` measured put in its place, and a note of
    each: when it ran, on which machine. Every ratio still comes from one run of its section; the
    section it replaces is kept inside the new one as ``previous`` (with its date), so that a
    report can say how a rerun moved."""
    merged = dict(old)
    dates = merged["section_dates"] = dict(
        old.get("section_dates") or {k: old["date"] for k in SECTION_KEYS.values() if k in old}
    )
    m = new["machine"]
    seconds = merged["rerun_seconds"] = dict(old.get("rerun_seconds", {}))
    for key in SECTION_KEYS.values():
        if key in new:
            merged[key] = dict(new[key])
            if isinstance(old.get(key), dict):  # the run it replaces, one level deep, for the report
                replaced = {k: v for k, v in old[key].items() if k != "previous"}
                merged[key]["previous"] = {"date": dates.get(key, old["date"]), **replaced}
            dates[key] = new["date"]
            if "wall_seconds" in new:  # the whole rerun's, shared by the sections it measured
                seconds[key] = new["wall_seconds"]
            merged["notes"] = [  # a section merged before: only its latest note stays
                *(n for n in merged.get("notes", []) if not n.startswith(f"{key} measured again")),
                f"{key} measured again on {new['date']} ({m['cpu_model']}, {m['cpu_count']} cores) "
                f"with --only --merge; the other sections are from {old['date']}",
            ]
    return merged


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The benchmark's flags (``poldist bench`` and ``python -m poldist.experiments.bench``)."""
    parser.add_argument("--quick", action="store_true", help="tiny budgets: check the plumbing (tests)")
    parser.add_argument("--no-atari", dest="atari", action="store_false", help="skip the Atari rows")
    parser.add_argument(
        "--json", type=Path, default=Path("runs/bench.json"), help="raw numbers (default: %(default)s)"
    )
    parser.add_argument(
        "--device",
        default="auto",
        help="where the networks run: auto (CUDA if available, else MPS, else CPU) | cpu | cuda "
        "(or cuda:N) | mps; env stepping, replay memories, onnxruntime and Ray actors stay on the CPU "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--only",
        default="",
        help=f"comma-separated sections to run (profiling), from {','.join(SECTIONS)}; default all",
    )
    parser.add_argument(
        "--merge",
        action="store_true",
        help="put the sections run into the existing --json file, keeping its other sections",
    )


def run_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """Run the benchmark from parsed :func:`add_arguments` flags."""
    only = [s.strip() for s in args.only.split(",") if s.strip()] or None
    return run_bench(
        quick=args.quick,
        atari=args.atari,
        out_json=args.json,
        sections=only,
        device=args.device,
        merge=args.merge,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m poldist.experiments.bench``: the benchmark's command line (:func:`add_arguments`)."""
    prog = "python -m poldist.experiments.bench"
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    add_arguments(parser)
    try:
        run_from_args(parser.parse_args(argv))
    except PoldistError as e:  # e.g. --device cuda without CUDA: one line, as the poldist command
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
