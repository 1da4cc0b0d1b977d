"""RESULTS.md sections 4 and 6: online distillation (``poldist reproduce online``) and speed and
memory (the latest ``poldist bench`` output)."""

from __future__ import annotations

import csv
import json
import textwrap
from pathlib import Path
from typing import Any

from poldist.experiments.report_stats import ReportContext
from poldist.plotting import online_plot
from poldist.tables import md_table

# What limits each ratio: from profiling the bench's sections (cProfile and per-part timings); the
# numbers quoted are read from the bench JSON, so that the text follows a rerun.
LIMITS_HEAD = "What limits each (read off the tables above, and cProfiles: `scripts/profile_hot_paths.py`):"
UPDATE_LIMITS = """\
- **Updates**: the library's update is the bare loop's (backward, convolution, RMSProp step) plus
  the uint8 minibatch gather from the replay memory and its conversion; the ratio is that overhead."""
INFERENCE_LIMITS = """\
- **Inference**: at batch 1 per-call overhead dominates, so small students gain little under
  PyTorch and more under onnxruntime; at batch 256 compute dominates and the students' gain grows.
  MinAtar's net3 (two convs, the second 4x4 of stride 2) is slower than its teacher at batch 1
  under PyTorch (the table above): PyTorch's oneDNN path for that small strided conv carries a
  per-call cost that the one-conv students do not pay; onnxruntime runs it at net2's speed, so
  deploy it through ONNX."""
MEMORY_LIMITS = "- **Memory**: Atari rows are dominated by the one stored frame (frame deduplication)."


def _collection_row(rows: list[dict[str, Any]], env: str, labeller: str, envs: int = 8) -> dict[str, Any]:
    """The single-group row of ``env`` (a prefix: ``MinAtar`` or ``ALE``) for ``labeller`` at ``envs``."""
    return next(
        r
        for r in rows
        if r["env_id"].startswith(env)
        and r.get("labeller", "torch") == labeller
        and r.get("groups", 1) == 1
        and r["num_envs"] == envs
    )


def collection_limits(res: dict[str, Any]) -> str:
    """Why section 2's ratios are what they are, with this run's numbers."""
    rows = res["rows"]
    # MinAtar's default row: the recipe's envs (16 since issue 22; 8 in a JSON from before)
    envs = next((r["num_envs"] for r in rows if r["env_id"].startswith("MinAtar") and r.get("default")), 8)
    m_auto = _collection_row(rows, "MinAtar", "auto", envs)
    m_torch = _collection_row(rows, "MinAtar", "torch", envs)
    acting = m_auto["bare_teacher_steps_per_s"] / m_auto["bare_random_steps_per_s"]
    m_target = m_auto.get("target", 0.5)
    m_met = "met" if m_auto["ratio"] >= m_target else "not met"
    others = [
        r
        for r in rows
        if r["env_id"].startswith("MinAtar")
        and r["num_envs"] != envs
        and r["labeller"] == "auto"
        and r.get("groups", 1) == 1
    ]
    a_auto, a_torch = _collection_row(rows, "ALE", "auto"), _collection_row(rows, "ALE", "torch")
    # the default row: the atari recipe's two groups; in a JSON from before them, one group's
    a_default = next((r for r in rows if r["env_id"].startswith("ALE") and r.get("default")), a_auto)
    a_target = a_default.get("target", 0.6)
    met = "met" if a_default["ratio"] >= a_target else "not met"
    if a_default is a_auto:
        a_text = f"{a_auto['ratio']:.2f} (target {a_target:g}, {met})"
    else:
        a_text = (
            f"{a_auto['ratio']:.2f} in one group; the atari recipe's default, {a_default['groups']} "
            "pipelined groups (one group's envs step in ALE's own threads, outside the GIL, while the "
            "teacher labels the other; the same data as one group), gives "
            f"{a_default['ratio']:.2f} (target {a_target:g}, {met}), a ratio that moves by several "
            "hundredths from run to run"
        )
    others_text = (
        "".join(f"; at {r['num_envs']} envs {r['ratio']:.2f}" for r in others)
        + "). The recipe steps 16 envs since issue 22: "
        "its students at 16 envs scored within noise of those at 8 on fresh seeds at every size "
        "(section 5c, `recipe-envs16`), while with 64 they scored below the recipe on four of five "
        "games of the tuning seed (section 5b, `recipe-envs64`); `--num-envs` sets another number."
        if others
        else ""
    )
    return f"""\
- **Collection**: each ratio is the median of alternated rounds' own ratios (a round times
  `collect()` and its baselines back to back; this machine's speed drifts by tens of percent
  within seconds, more than within a round). The default labeller is onnxruntime (`--labeller
  auto`; labels within 1e-5 of PyTorch's, checked when its graph is built). On MinAtar the envs
  step in Python and the teacher's forward pass per vector step of {envs} costs about as much as
  the envs' stepping under PyTorch ({m_torch["ratio"]:.2f} of random stepping; oneDNN's
  convolution as slow at batch 8 as at batch 64) and less under onnxruntime
  ({m_auto["ratio"]:.2f}, target {m_target:g}, {m_met}); the bare teacher-acting loop (the
  table's `teacher-acting steps/s`) is itself at {acting:.2f} of random stepping in this run, and
  `collect()` at {m_auto["ratio_vs_bare_teacher"]:.2f} of that loop; the ratio moves by a few
  hundredths from run to run with the random baseline. Under onnxruntime's profiler
  (`scripts/profile_hot_paths.py ort`) the forward pass at batch 8 is mostly the 1024x128 layer's
  matrix product, a cost per observation that more envs per call do not shrink: they spread the
  per-call costs (the labeller's call, the memory's add, the loop) over more transitions
  (collect/random at {envs} envs {m_auto["ratio"]:.2f}{others_text or ")."}
  Pipelined groups lose on MinAtar: its envs step in Python, so a group stepping in the worker
  thread holds the GIL, and handing groups between threads costs more than a MinAtar step saves.
  On Atari the Nature network costs 9.3M multiply-adds per observation
  (`fast_teacher.forward_macs`; the input's 1/255 is folded into the first convolution's
  weights), about half the CPU time of ALE's step (ceilings below): the default labels on
  two onnxruntime threads, which sleep between calls rather than spin (a spinning thread takes a
  core from the envs that step next), from {a_torch["ratio"]:.2f} (torch) to {a_text}. After its
  last vector step `collect()` leaves the envs stepping in ALE's threads, received by the next
  `collect()`, so in a distillation they also step during the student's update; this table's loop
  calls `collect()` back to back and does not show that (a whole distillation: below). A GPU would
  remove the labelling. Ray actors on the same 2 cores as the learner cannot beat local play; they
  pay off with cores the learner does not use."""


def ttq_limits(res: dict[str, Any]) -> str:
    """Why section 4's ratio is a bound, with this run's times."""
    d, q = res["distillation"], res["dqn"]
    dqn = (
        f"reached it after {q['train_seconds']:.0f} s"
        if q["reached"]
        else f"has not reached it in {q['train_seconds']:.0f} s, "
        f"{q['train_seconds'] / d['train_seconds']:.0f}x that time"
    )
    return f"""\
- **Time to quality**: distillation (the minatar recipe, evaluated every 1,000 updates on 50
  episodes) first reads 95% of the teacher's reference score after {d["train_seconds"]:.0f} s of
  training; Double DQN on the same small network from scratch {dqn} (its curve is in the JSON). A
  first crossing on 50 episodes is itself noisy: the ratio is a bound."""


def dqn_atari_limits(res: dict[str, Any]) -> str:
    """Why section 6's Atari DQN ratios are what they are, with this run's (and the run before's)."""
    two, overlap = res["ratio_2_threads_vs_bare_1"], res["ratio_2_threads_overlap_vs_bare_1"]
    peak = res["peak_rss_mb"]
    bare = res["raw"]["bare-1"]
    spread = (max(bare) - min(bare)) / (sum(bare) / len(bare))
    met = "met" if min(two, overlap) >= 1.5 else "met with --overlap-envs" if overlap >= 1.5 else "missed"
    prev = res.get("previous")
    before = (
        f"; the run before ({prev['date'][:10]}): {prev['ratio_2_threads_vs_bare_1']:.2f}x and "
        f"{prev['ratio_2_threads_overlap_vs_bare_1']:.2f}x"
        if prev
        else ""
    )
    four = res.get("ratio_2_threads_overlap_4envs_vs_bare_1")
    four_text = (
        f" Four envs stepping during the update (the Pong teacher's setting; {four:.2f}x) are "
        + ("no faster than one" if four <= overlap else "faster than one")
        + ": ALE's two env threads then compete with torch's two for the two cores."
        if four is not None
        else ""
    )
    return f"""\
- **Atari Double DQN against a CleanRL-style loop**: on one thread each, `train-teacher` (Double
  DQN: three forward passes an update) runs at {res["ratio_1_thread"]:.2f}x the bare vanilla-DQN
  loop's speed (two), its fused Adam and C++ env winning back the extra pass. With a second torch
  thread it runs at {two:.2f}x the bare loop on one thread, and {overlap:.2f}x when the env steps
  during the update (`--overlap-envs`): the 1.5x target is {met} in this run{before}; the bare
  loop's own runs differ by {100 * spread:.0f}%, so a ratio near 1.5 is at the target within
  run-to-run noise.{four_text} Two profile-led changes raised the two-thread ratio from 1.24x (the
  bench at commit 600b29f): the uint8 input is converted once and scaled in place (the two-buffer
  conversion was a sixth of the forward passes' time) and gradient clipping no longer multiplies
  every gradient by 1 on the CPU. What remains unparallelised: the uint8-to-float conversion and
  ALE's step. Its peak memory is {peak["poldist"] / peak["bare"]:.2f} of the bare loop's
  ({peak["poldist"]:,.0f} MB against {peak["bare"]:,.0f} MB): the bare loop stores every observation
  as a stack of four frames (as CleanRL's buffer does), the trainer each frame once."""


def _refill(bullet: str) -> str:
    """A Markdown bullet re-wrapped at 100 columns (numbers filled in leave ragged lines)."""
    return textwrap.fill(" ".join(bullet.split()), width=100, subsequent_indent="  ", break_on_hyphens=False)


def bench_limits(result: dict[str, Any]) -> str:
    """What limits each of the bench's ratios, for the sections ``result`` (a bench JSON) holds."""
    parts = [
        (UPDATE_LIMITS, "update_efficiency"),
        (collection_limits, "collection_efficiency"),
        (INFERENCE_LIMITS, "inference"),
        (ttq_limits, "time_to_quality"),
        (MEMORY_LIMITS, "memory"),
        (dqn_atari_limits, "dqn_atari"),
    ]
    bullets = []
    for text, key in parts:
        if key not in result:
            continue
        try:
            bullets.append(_refill(text if isinstance(text, str) else text(result[key])))
        except (KeyError, StopIteration):  # a JSON from an older bench, or without the default rows
            bullets.append(f"- **{key}**: this run lacks the rows the explanation reads; see its table.")
    return "\n".join([LIMITS_HEAD, "", *bullets])


def _online_rows(csv_path: Path) -> list[dict[str, float]]:
    with open(csv_path) as f:
        return [{k: float(v) for k, v in r.items()} for r in csv.DictReader(f)]


def _online_seed(csv_path: Path) -> int:
    return int(json.loads((csv_path.parent / "config.json").read_text())["seed"])


def online_section(csv_paths: list[Path]) -> str:
    """Teacher and student score at the start, middle and end of each seed's run."""
    rows = []
    for path in csv_paths:
        r = _online_rows(path)
        for point in (r[0], r[len(r) // 2], r[-1]):
            rows.append(
                [
                    str(_online_seed(path)),
                    f"{int(point['teacher_env_steps']):,}",
                    f"{point['teacher_score']:.2f}",
                    f"{point['student_score']:.2f}",
                ]
            )
    return md_table(["seed", "teacher env steps", "teacher score", "student score"], rows)


def online_tracking(csv_paths: list[Path]) -> str:
    """How closely the student follows: its score over the teacher's at the same points.

    Points in the first 10% of training (both near zero, a ratio of noise) are left out; the
    ratio is of the summed scores, so a point where the teacher scores 0 does not divide by 0.
    """
    parts = []
    for path in csv_paths:
        r = _online_rows(path)
        late = [p for p in r if p["teacher_env_steps"] > 0.1 * r[-1]["teacher_env_steps"]]
        teacher = sum(p["teacher_score"] for p in late)
        student = sum(p["student_score"] for p in late)
        ahead = sum(p["student_score"] >= p["teacher_score"] for p in late)
        ratio = f"{100 * student / teacher:.0f}%" if teacher > 0 else "n/a"
        parts.append(
            f"seed {_online_seed(path)}: {ratio} of the teacher's score summed over the {len(late)} points "
            f"after the first 10% of training, at or above it at {ahead} of them"
        )
    return (
        "Paper: the student follows the learning teacher closely throughout training (a figure, no "
        "numbers). Here: " + "; ".join(parts) + "."
    )


def online_lines(ctx: ReportContext) -> list[str]:
    """Section 4: the student's and the learning teacher's scores over each seed's run."""
    online = sorted(ctx.results.glob("online/*/online.csv"))
    if not online:
        return ["No results yet: `poldist reproduce online --seeds 0,1,2`.", ""]
    plot = online_plot([_online_rows(p) for p in online], ctx.plots / "online.png")
    cfg = json.loads((online[0].parent / "config.json").read_text())
    return [
        f"{cfg['env_id']}: a {cfg['student']} student distilled from a Double-DQN teacher while it "
        f"trains ({cfg['total_steps']:,} env steps; {cfg['updates_per_interval']:,} student updates "
        f"after each {cfg['interval']:,} teacher steps, on a {cfg['memory_size']:,}-transition memory "
        f"of the latest teacher-labelled play); both scored over {cfg['eval_episodes']} episodes at "
        "each point.",
        "",
        online_section(online),
        "",
        f"![online]({ctx.link(plot)})",
        "",
        online_tracking(online),
        "",
        f"Command: `poldist reproduce online --seeds {','.join(str(_online_seed(c)) for c in online)}`",
        "",
    ]


def bench_lines(ctx: ReportContext) -> list[str]:
    """Section 6: the tables of ``<results>/bench.json`` and what limits each ratio."""
    bench_json = ctx.results / "bench.json"
    if not bench_json.exists():
        return ["No results yet: `poldist bench --json results/bench.json`.", ""]
    from poldist.experiments.bench import report_text

    result = json.loads(bench_json.read_text())
    return [
        "Latest committed output of `poldist bench --json results/bench.json` (each ratio measured "
        "in one run on the machine named; other jobs running at the same time depress both sides "
        "of a ratio alike, not the ratio).",
        "",
        "```",
        report_text(result),
        "```",
        "",
        bench_limits(result),
        "",
        *collection_check_lines(ctx.results / "atari" / "collection_check.json"),
        *collection_bounds_lines(ctx.results / "collection_bounds.json"),
    ]


def collection_check_lines(path: Path) -> list[str]:
    """How Atari collection fits between a distillation's updates (``scripts/atari_collection_check.py``'s
    JSON at ``path``), or nothing when it has not run."""
    if not path.exists():
        return []
    check = json.loads(path.read_text())
    med = check["median_updates_per_s"]
    rounds = len({r["round"] for r in check["runs"]})
    same = "bit-identical in all its runs" if check["students_identical"] else "NOT identical across its runs"
    return [
        f"A whole Atari distillation collected three ways (`{check['command']}`; {check['machine']}, "
        f"{check['date'][:10]}; training updates per second, median of {rounds} alternated rounds): "
        f"{med['in-flight']:.1f} in one group whose last step of each `collect()` stays in flight "
        f"during the update, {med['received']:.1f} with that step received at once "
        f"({check['in_flight_vs_received']:.2f}x for in flight), {med['2-groups']:.1f} in the atari "
        f"recipe's two pipelined groups, also left in flight ({check['two_groups_vs_received']:.2f}x); "
        f"the students were {same}.",
        "",
    ]


def collection_bounds_lines(path: Path) -> list[str]:
    """What collection could reach on this machine (``scripts/collection_bounds.py``'s JSON at
    ``path``): each domain's cost of a vector step, its labelling, and the two ceilings on
    collect/random they set; nothing when it has not run."""
    if not path.exists():
        return []
    b = json.loads(path.read_text())
    parts = []
    for row in b["rows"]:
        m = row["median"]
        env = "MinAtar" if row["env_id"].startswith("MinAtar") else "Atari"
        parts.append(
            f"{env} ({row['env_id']}, {row['num_envs']} envs in {row['groups']} group(s), "
            f"{row['labeller']} on {row['labeller_threads']} thread(s)): a random vector step takes "
            f"{m['random_wall_ms']:.3f} ms ({m['random_cpu_ms']:.3f} ms of CPU), labelling it "
            f"{m['label_wall_ms']:.3f} ms ({m['label_cpu_ms']:.3f} ms of CPU); taking turns caps "
            f"collect/random at {m['ceiling_turns']:.2f}, the {row['cores']} cores' work at "
            f"{m['ceiling_cores']:.2f}; `collect()` measured {m['collect_vs_random']:.2f}"
        )
    return [
        f"What collection could reach here (`{b['command']}`; {b['machine']}, {b['date'][:10]}; "
        "per vector step, medians of alternated rounds; CPU time of every thread of the process): "
        + "; ".join(parts)
        + ". Taking turns is the labelling and the stepping one after the other with nothing else "
        "(the bare teacher-acting loop); the cores' ceiling is the envs' and the labeller's CPU "
        "time shared perfectly over the cores, which no schedule beats. MinAtar's envs step in "
        "Python under the GIL, so its labelling cannot overlap them (pipelined groups lose, above) "
        "and taking turns is its ceiling. This script's `collect()` and the bench's default rows "
        "time the same loop at the same settings: where they differ, it is the machine's drift "
        "between the two runs.",
        "",
    ]
