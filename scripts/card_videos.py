"""GIFs of every shipped MinAtar teacher beside a student of the minatar recipe, into the model cards.

For each game, the student is the run directory of the study cell given (by default the recipe
candidate chosen on the tuning seed, ``tau1-cosine-student`` at net2 with 8 filters: what
``poldist distill --teacher minatar/<game>`` runs), made by ``scripts/study_minatar.py``; the GIF
goes to ``src/poldist/zoo/minatar/<game>/play.gif`` and the card shows it::

    python scripts/card_videos.py --cell tau1-cosine-student__net2-c8__{game}__seed0

``--atari``: the shipped Atari teacher of a student cell of ``scripts/atari_students.py`` instead
(its raw file under ``results/atari/<game>/raw/``, its run directory under ``--runs``), e.g.::

    python scripts/card_videos.py --atari pong__net2__tau0.01__seed1 --runs runs/atari-students \
        --max-steps 200
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from poldist.experiments.reproduce import GAMES
from poldist.zoo import add_card_video


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--cell", default="tau1-cosine-student__net2-c8__{game}__seed0", help="study cell, {game} filled in"
    )
    p.add_argument(
        "--runs", type=Path, default=Path("runs/study"), help="where the study's run directories are"
    )
    p.add_argument("--games", default=",".join(GAMES), help="comma-separated MinAtar games")
    p.add_argument("--max-steps", type=int, default=300, help="at most this many env steps of each agent")
    p.add_argument("--atari", default="", help="an atari_students.py cell (e.g. pong__net2__tau0.01__seed1)")
    args = p.parse_args()
    if args.atari:
        return atari_video(args.atari, args.runs, args.max_steps)
    for game in args.games.split(","):
        cell = args.cell.format(game=game)
        raw = json.loads((Path("results/study/raw") / f"{cell}.json").read_text())
        share = 100 * raw["student_params"] / raw["teacher_params"]
        label = f"student {raw['size'].removesuffix('-c8')} ({share:.0f}%)"  # net2-c8 is poldist's net2
        provenance = (
            f"`{raw['command']}` (run seed {raw['seed']}; {raw['percent_of_reference']:.1f}% of the "
            f"teacher's reference score over {len(raw['student_returns'])} episodes)"
        )
        video = add_card_video(
            f"minatar/{game}",
            args.runs / cell / "student",
            label,
            max_steps=args.max_steps,
            provenance=provenance,
        )
        print(f"{game}: {video['bytes']:,} bytes, returns {video['returns']}")
    return 0


def atari_video(cell: str, runs: Path, max_steps: int) -> int:
    """The GIF of shipped ``atari/<game>`` beside the student of ``atari_students.py`` cell ``cell``."""
    game = cell.split("__", 1)[0]
    raw = json.loads((Path("results/atari") / game / "raw" / f"{cell}.json").read_text())
    share = 100 * raw["student_params"] / raw["teacher_params"]
    provenance = (
        f"`{raw['command']}` (run seed {raw['seed']}; {raw['student_score']:.2f} over "
        f"{len(raw['student_returns'])} episodes, {raw['percent_of_reference']:.1f}% of the teacher's "
        "reference score)"
    )
    video = add_card_video(
        f"atari/{game}",
        runs / cell / "student",
        f"student {raw['size']} ({share:.0f}%)",
        max_steps=max_steps,
        provenance=provenance,
    )
    print(f"{game}: {video['bytes']:,} bytes, returns {video['returns']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
