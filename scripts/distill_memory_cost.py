"""What a distillation run costs in RAM and disk per stored transition (issue 21, point 6).

Runs a short ``poldist distill`` (300 updates, the memory filled before the first update) at
several replay-memory sizes, each in a fresh process, and records its peak resident memory and the
size of its run directory and of the memory file in its checkpoint; the slope over memory sizes is
the cost of one stored transition, the intercept the fixed cost (Python, torch, the env, the
networks). Where the memory goes was found with memray (``python -m memray run``): the replay
memory's arrays, allocated up front, are most of the peak; the rest is torch and the networks.

    python scripts/distill_memory_cost.py --teacher carry/pong-teacher-seed0-online \
        --sizes 5000,30000,60000 --json results/memory_cost/atari.json
    python scripts/distill_memory_cost.py --teacher minatar/seaquest --sizes 20000,100000,200000 \
        --json results/memory_cost/minatar.json
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

CHILD = """
import json, resource, sys
from poldist.cli import main
rc = main(sys.argv[1:])
print("MAXRSS_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
sys.exit(rc)
"""


def measure(teacher: str, size: int, out: Path) -> dict[str, float]:
    """Peak RSS (bytes), run-directory bytes and memory-file bytes of one short distillation."""
    argv = [
        "distill", "--teacher", teacher, "--student", "net2", "--recipe", "paper",
        "--memory-size", str(size), "--learning-starts", str(size), "--updates", "300",
        "--checkpoint-interval", "300", "--eval-interval", "100000", "--eval-episodes", "1",
        "--final-eval-episodes", "1", "--agreement-states", "500", "--no-evaluate-teacher",
        "--batch-size", "32", "--out", str(out),
    ]  # fmt: skip
    res = subprocess.run([sys.executable, "-c", CHILD, *argv], capture_output=True, text=True, check=True)
    rss_kb = int(next(line for line in res.stdout.splitlines() if line.startswith("MAXRSS_KB")).split()[1])
    files = [p for p in out.rglob("*") if p.is_file()]
    memory_files = [p for p in files if p.name.startswith("memory_")]
    return {
        "memory_size": size,
        "peak_rss_bytes": rss_kb * 1024,
        "run_dir_bytes": sum(p.stat().st_size for p in files),
        "memory_file_bytes": sum(p.stat().st_size for p in memory_files),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teacher", required=True, help="teacher checkpoint dir or shipped name")
    p.add_argument("--sizes", default="5000,30000,60000", help="replay-memory sizes, in transitions")
    p.add_argument("--json", type=Path, required=True, help="where the raw results go")
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in (int(s) for s in args.sizes.split(",")):
            rows.append(measure(args.teacher, size, Path(tmp) / f"run{size}"))
            print(rows[-1], flush=True)
    sizes = np.array([r["memory_size"] for r in rows], dtype=float)
    fit = {}
    for key in ("peak_rss_bytes", "run_dir_bytes", "memory_file_bytes"):
        slope, intercept = np.polyfit(sizes, [r[key] for r in rows], 1)
        fit[key] = {"bytes_per_transition": slope, "fixed_bytes": intercept}
    result = {
        "teacher": args.teacher,
        "rows": rows,
        "fit": fit,
        "machine": platform.processor() or platform.machine(),
        "command": " ".join(["python", "scripts/distill_memory_cost.py", *sys.argv[1:]]),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    for key, f in fit.items():
        per, fixed = f["bytes_per_transition"] / 1e3, f["fixed_bytes"] / 1e6
        print(f"{key}: {per:.2f} KB per transition + {fixed:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
