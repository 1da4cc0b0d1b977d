"""The paper's single-game experiments on MinAtar (and later work's), one command each, per seed.

``poldist reproduce losses`` and ``poldist reproduce compression`` distil every shipped MinAtar
teacher into students; ``control`` compares who acts (teacher, student, mixed) under KL and
entropy-regularised distillation; ``kickstart`` compares kickstarting with plain distillation and
Double DQN from scratch. Each writes one raw JSON per game, variant and seed into
``<results>/raw/`` (with the run's ``evals.csv`` beside it); ``poldist report`` turns them into
RESULTS.md. Every run of an experiment gets the same budget (updates, batch, teacher
transitions), stated in the report: :data:`BUDGET` for losses, control and kickstart, and the
four times longer :data:`BUDGETS` ``"40k"`` for compression, whose small students are still
improving at 10k updates (the question there is capacity, not learning speed). Runs already done
are skipped, and an interrupted run resumes from its checkpoint, so a command can be rerun until
everything is there. A run's identity is its cell (game, student, loss, temperature, control,
budget, seed): the KL(0.01) teacher-size student is shared by the losses and control experiments,
the KL(0.01) net1 student by kickstart and the standard-budget compression runs.

Two protocols: ``fresh`` (the default since issue 18's yardstick) runs each seed on env seeds no
other seed uses and scores every student over 200 final episodes, so the report can give
intervals over seeds and episodes; ``legacy`` is how sections 1-5 were first made (neighbouring
seeds sharing 7 of 8 env seeds, 50 final episodes), kept so their records still have a command.
A cell's protocol is part of its name (``__fresh``), so the two never mix.

Scores are percent of the teacher's reference score (1,000 episodes at epsilon 0.05 on env seeds
no run uses; the model card's 100-episode score where a teacher has none), so every cell has the
same denominator; the student is scored with the same epsilon, and its every final return is kept.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from poldist.distillation import DistillConfig, distill
from poldist.dqn import DQNConfig, train_dqn
from poldist.errors import PoldistError
from poldist.evaluation import evaluate, percent_of_teacher
from poldist.networks import LEGACY_MINATAR_STUDENTS, count_parameters
from poldist.online import OnlineConfig, online_distill
from poldist.runs import resume_or_clear, write_json
from poldist.teachers import ZOO, load_teacher
from poldist.zoo import reference_mean

GAMES = ("asterix", "breakout", "freeway", "seaquest", "space_invaders")

# One budget for every student of the single-game experiments: 10k updates of 256 samples
# (2.56M samples) on 210k fresh teacher transitions (10k before learning + 20 per update).
BUDGET = DistillConfig(
    updates=10_000,
    batch_size=256,
    lr=1e-3,
    optimizer="rmsprop",
    transitions_per_update=20.0,
    learning_starts=10_000,
    memory_size=200_000,
    eval_interval=2_500,
    eval_episodes=10,
    final_eval_episodes=50,
    evaluate_teacher=False,  # the denominator is the model card's score
    agreement_states=5_000,
    checkpoint_interval=2_500,
    env_seeds="offset",  # as these results were made (before 0.3), so their commands still reproduce them
    labeller="torch",  # as these results were made (before onnxruntime became the default)
)

# Named budgets a cell can ask for (``Cell.budget``); "" is :data:`BUDGET`. The compression
# experiment uses "40k": 40k updates of 256 on 810k fresh teacher transitions.
BUDGETS = {
    "": BUDGET,
    "40k": replace(BUDGET, updates=40_000, eval_interval=5_000, checkpoint_interval=5_000),
}


@dataclass(frozen=True)
class Cell:
    """One run on ``minatar/<game>``: a ``student``-size network trained by ``method``.

    ``method``: ``distill`` (the one distillation loop, with ``loss``, ``tau`` and who acts,
    ``control``), ``kickstart`` (Double DQN plus a decaying distillation term towards the
    teacher) or ``dqn`` (Double DQN from scratch, the baseline of kickstarting). ``budget``
    names a distillation budget in :data:`BUDGETS` ("" is :data:`BUDGET`); ``lr``, if not 0,
    replaces the budget's learning rate (and shows in the variant's name); ``protocol`` names
    the env seeds and final episodes of :data:`PROTOCOLS` ("" is legacy).
    """

    game: str
    student: str = "teacher"
    loss: str = "kl"
    tau: float = 0.01
    seed: int = 0
    control: str = "teacher"
    method: str = "distill"
    budget: str = ""
    lr: float = 0.0
    protocol: str = ""

    @property
    def variant(self) -> str:
        """``kl-tau0.01``, ``nll``, ``erd-tau0.01+student``, ``kickstart-mse-lr0.0005``, ``dqn``."""
        lr = f"-lr{self.lr:g}" if self.lr else ""
        if self.method == "dqn":
            return f"dqn{lr}"
        base = f"{self.loss}-tau{self.tau:g}" if self.loss in ("kl", "erd") else self.loss
        if self.method == "kickstart":
            return f"kickstart-{base}{lr}"
        return (base if self.control == "teacher" else f"{base}+{self.control}") + lr

    @property
    def name(self) -> str:
        """File-safe identity, e.g. ``breakout__net2__kl-tau0.01__seed0``, ``..__40k__seed0`` or
        ``..__40k__fresh__seed0``."""
        budget = f"__{self.budget}" if self.budget else ""
        protocol = f"__{self.protocol}" if self.protocol else ""
        return f"{self.game}__{self.student}__{self.variant}{budget}{protocol}__seed{self.seed}"

    def config(self, budget: DistillConfig | None = None) -> DistillConfig:
        """The distillation config of this (``distill``) cell under ``budget`` (default: its own)."""
        if self.budget not in BUDGETS:
            raise PoldistError(f"unknown budget {self.budget!r}: choose from {sorted(BUDGETS)}")
        if self.protocol not in PROTOCOLS:
            raise PoldistError(f"unknown protocol {self.protocol!r}: choose from {sorted(PROTOCOLS)}")
        base = budget or BUDGETS[self.budget]
        return replace(
            base,
            **PROTOCOLS[self.protocol],
            lr=self.lr or base.lr,
            teacher=f"minatar/{self.game}",
            student=LEGACY_MINATAR_STUDENTS.get(self.student, self.student),
            loss=self.loss,
            tau=self.tau if self.loss in ("kl", "erd") else 0.0,
            seed=self.seed,
            control=self.control,
        )

    def dqn_config(self, budget: DQNConfig) -> DQNConfig:
        """The Double-DQN config of a ``kickstart`` or ``dqn`` cell under ``budget``."""
        card = teacher_card(self.game)
        return replace(
            budget,
            env_id=card["env_id"],
            network=LEGACY_MINATAR_STUDENTS.get(self.student, self.student),
            seed=self.seed,
            kickstart_teacher=f"minatar/{self.game}" if self.method == "kickstart" else "",
            kickstart_loss=self.loss,
            lr=self.lr or budget.lr,
        )


# protocol -> the DistillConfig fields it sets over a budget; "" is legacy (no suffix in names)
PROTOCOLS: dict[str, dict[str, Any]] = {
    "": {},
    "fresh": {"env_seeds": "disjoint", "final_eval_episodes": 200},
}
PROTOCOL_NAMES = {"legacy": "", "fresh": "fresh"}  # the CLI's names
FRESH_EXPERIMENTS = ("losses", "compression")  # sections 1-2; the others stay legacy for now

LOSS_VARIANTS = (("nll", 0.0), ("mse", 0.0), ("kl", 0.01), ("kl", 0.1), ("kl", 1.0))
SIZES = ("teacher", "net1", "net2", "net3")
CONTROLS = ("teacher", "student", "mixed")
EXPERIMENTS = ("losses", "compression", "control", "kickstart")

# Kickstarting and its DQN baseline: a net1 student (25% of the teacher) for 1M env steps, the
# distillation term's weight falling from 1 to 0 over the first half; evaluated every 100k steps.
DQN_BUDGET = DQNConfig(
    total_steps=1_000_000,
    eval_interval=100_000,
    eval_episodes=20,
    checkpoint_interval=100_000,
    kickstart_weight=1.0,
    kickstart_decay=0.5,
    eval_seeds="fixed",  # the scheme the committed kickstarting results were made with
)


# Kickstarting's main pair: the kickstart term matches the teacher's Q-values (MSE: values the TD
# loss agrees with), and both it and its DQN baseline run at 5x the teachers' learning rate, at
# which the term is learnt in time; scripts/kickstart_check.py shows why (RESULTS.md, section 5).
KICKSTART_VARIANTS: tuple[dict[str, Any], ...] = (
    dict(method="distill"),
    dict(method="dqn", lr=5e-4),
    dict(method="kickstart", loss="mse", lr=5e-4),
)
# The first design, KL at the teachers' lr, with its DQN baseline: after every seed of the above.
KICKSTART_FIRST_DESIGN: tuple[dict[str, Any], ...] = (dict(method="dqn"), dict(method="kickstart"))


def experiment_cells(
    name: str, seeds: list[int], games: list[str] | None = None, protocol: str = ""
) -> list[Cell]:
    """The cells of experiment ``name`` (one of :data:`EXPERIMENTS`) under ``protocol`` ("" legacy,
    or "fresh": :data:`PROTOCOLS`), seed-major order.

    Seed-major: the first seed of every cell is done before any second seed, so a partial
    run already covers the whole table (kickstart: seed-major within its main pair, then
    within its first design). Cells with the same identity are one run, shared by
    the experiments that list them.
    """
    games = list(games or GAMES)
    if protocol and name not in FRESH_EXPERIMENTS:
        covered = ", ".join(FRESH_EXPERIMENTS)
        raise PoldistError(f"{name} runs under the legacy protocol only (the fresh one covers {covered})")
    unknown = sorted(set(games) - set(GAMES))
    if unknown:
        raise PoldistError(f"unknown games {unknown}: choose from {list(GAMES)}")
    if name == "losses":
        per_seed = [dict(game=g, loss=loss, tau=tau) for g in games for loss, tau in LOSS_VARIANTS]
    elif name == "compression":
        per_seed = [dict(game=g, student=size, budget="40k") for g in games for size in SIZES]
    elif name == "control":
        per_seed = [
            dict(game=g, loss=loss, control=c) for g in games for loss in ("kl", "erd") for c in CONTROLS
        ]
    elif name == "kickstart":
        main = [dict(game=g, student="net1", **kw) for g in games for kw in KICKSTART_VARIANTS]
        first = [dict(game=g, student="net1", **kw) for g in games for kw in KICKSTART_FIRST_DESIGN]
        return [Cell(seed=s, **kw) for part in (main, first) for s in seeds for kw in part]
    else:
        raise PoldistError(f"unknown experiment {name!r}: choose from {list(EXPERIMENTS)}")
    return [Cell(seed=seed, protocol=protocol, **kw) for seed in seeds for kw in per_seed]


def teacher_card(game: str) -> dict[str, Any]:
    """The shipped teacher's model card (``card.json``) of ``minatar/<game>``."""
    return json.loads((ZOO / "minatar" / game / "card.json").read_text())


def run_cell(
    cell: Cell,
    runs: Path,
    results: Path,
    budget: DistillConfig | None = None,
    dqn_budget: DQNConfig = DQN_BUDGET,
    experiment: str = "losses",
) -> dict[str, Any]:
    """Run (or resume, or skip if done) one cell; write ``<results>/raw/<cell.name>.json``.

    ``budget`` overrides the cell's own distillation budget (tests use a tiny one). A finished
    cell whose raw file records another budget is an error, not silently reused.

    Returns:
        The raw record: the cell, the teacher's card score, the student's score (final evaluation,
        ``budget.final_eval_episodes`` episodes at epsilon 0.05), percent of teacher, parameter
        counts, the budget, wall time, and the command that reruns it.
    """
    raw = results / "raw" / f"{cell.name}.json"
    if raw.exists():
        record = json.loads(raw.read_text())
        _check_same_budget(record, cell, budget, dqn_budget, raw)
        return record
    run = runs / cell.name
    resume = resume_or_clear(run)
    card = teacher_card(cell.game)
    # the yardstick: the teacher's reference score where it has one (issue 18), else its card's
    reference = reference_mean(f"minatar/{cell.game}")
    yardstick = card["eval"]["mean"] if reference is None else reference
    if cell.method == "distill":
        cfg = cell.config(budget)
        summary = distill(cfg, run, resume=resume)
        task = summary["tasks"][0]
        score, ci, returns = task["student_score"], task["student_ci"], task.get("student_returns")
        extra = {
            "agreement": task["agreement"],
            **{k: task[k] for k in ("regret", "agreement_by_gap", "gap_shares", "tau") if k in task},
            "transitions": task["transitions"],
            "student_params": summary["student_params"],
            "teacher_params": summary["teacher_params"],
            "updates": summary["updates"],
            "batch_size": cfg.batch_size,
            "train_wall_seconds": summary["train_wall_seconds"],
            "config": asdict(cfg),
        }
    else:  # kickstart / dqn: the student learns by its own RL, over env steps
        cfg = cell.dqn_config(dqn_budget)
        summary = train_dqn(cfg, run, resume=resume)
        net = load_teacher(run / "teacher")
        episodes = (budget or BUDGET).final_eval_episodes
        final = evaluate(net, net.env, episodes, seed=cell.seed + 2 * 10**6)
        score, ci, returns = final.mean, [final.ci_low, final.ci_high], final.returns
        extra = {
            "agreement": None,
            "transitions": summary["env_steps"],
            "student_params": count_parameters(net.net),
            "teacher_params": count_parameters(load_teacher(f"minatar/{cell.game}").net),
            "updates": summary["updates"],
            "batch_size": cfg.batch_size,
            "train_wall_seconds": summary["wall_seconds"],
            "config": asdict(cfg),
        }
    record = {
        **asdict(cell),
        "variant": cell.variant,
        "teacher": f"minatar/{cell.game}",
        "teacher_score": yardstick,
        "card_score": card["eval"]["mean"],
        "student_score": score,
        "student_ci": ci,
        "student_returns": returns,
        "percent_of_teacher": percent_of_teacher(score, yardstick),
        **extra,
        "compression": extra["student_params"] / extra["teacher_params"],
        "machine": summary["machine"],
        "command": f"poldist reproduce {experiment} --games {cell.game} --seeds {cell.seed}"
        + (f" --protocol {cell.protocol or 'legacy'}" if experiment in FRESH_EXPERIMENTS else ""),
    }
    raw.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(run / "evals.csv", raw.with_suffix(".evals.csv"))
    write_json(raw, record)  # last: a raw file exists only for a finished run
    return record


_BUDGET_KEYS = ("updates", "batch_size", "transitions_per_update", "learning_starts", "memory_size", "lr")


def _check_same_budget(
    record: dict[str, Any], cell: Cell, budget: DistillConfig | None, dqn_budget: DQNConfig, raw: Path
) -> None:
    """Raise if the finished ``record`` was made under another budget than the one asked for now."""
    if cell.method == "distill":
        want = asdict(cell.config(budget))
        keys = _BUDGET_KEYS
    else:
        want = asdict(cell.dqn_config(dqn_budget))
        keys = ("total_steps", "batch_size", "lr", "kickstart_weight", "kickstart_decay")
    have = record.get("config", {})
    diff = [f"{k} {have.get(k)} != {want[k]}" for k in keys if have.get(k) != want[k]]
    if diff:
        raise PoldistError(
            f"{raw} was made with another budget ({', '.join(diff)}); move it (and its run in "
            "runs/) away to rerun the cell under the current budget"
        )


def run_experiment(
    name: str,
    seeds: list[int],
    *,
    games: list[str] | None = None,
    runs: str | Path = "runs/reproduce",
    results: str | Path = "results/reproduce",
    shard: tuple[int, int] = (0, 1),
    budget: DistillConfig | None = None,
    dqn_budget: DQNConfig = DQN_BUDGET,
    protocol: str = "",
) -> list[dict[str, Any]]:
    """Run every cell of experiment ``name`` under ``protocol`` (skipping finished ones); return
    their records.

    ``shard=(i, n)`` runs only cells ``i, i+n, i+2n, ...``: start ``n`` processes with
    ``i = 0..n-1`` to use ``n`` cores. ``budget``, if given, replaces every cell's own budget.
    """
    i, n = shard
    if not 0 <= i < n:
        raise PoldistError(f"shard {i}/{n}: need 0 <= i < n")
    cells = experiment_cells(name, seeds, games, protocol)
    records = []
    for k, cell in enumerate(cells):
        if k % n == i:
            print(f"[{k + 1}/{len(cells)}] {cell.name}", flush=True)
            records.append(run_cell(cell, Path(runs), Path(results), budget, dqn_budget, name))
    return records


# Online distillation (section 4 of the report): a net1 student following a Breakout teacher
# that trains for 1M env steps; both scored every 50k teacher steps.
ONLINE_BUDGET = OnlineConfig(env_id="MinAtar/Breakout-v1", total_steps=1_000_000)


def run_online(
    seeds: list[int],
    *,
    runs: str | Path = "runs/reproduce",
    results: str | Path = "results/online",
    cfg: OnlineConfig = ONLINE_BUDGET,
) -> list[Path]:
    """One online-distillation run per seed; its small files go to ``<results>/<game>-seed<k>/``.

    An interrupted run resumes from its teacher's last checkpoint (one killed before that starts
    again).
    """
    game = cfg.env_id.split("/")[-1].split("-")[0].lower()
    done = []
    for seed in seeds:
        dest = Path(results) / f"{game}-seed{seed}"
        if not (dest / "summary.json").exists():
            run = Path(runs) / f"online-{game}-seed{seed}"
            resume = resume_or_clear(run, checkpoint_in="teacher-run")
            print(f"online distillation {cfg.env_id} seed {seed}{' (resumed)' * resume}", flush=True)
            online_distill(replace(cfg, seed=seed), run, resume=resume)
            dest.mkdir(parents=True, exist_ok=True)
            for f in ("online.csv", "online.png", "summary.json", "config.json"):
                shutil.copy2(run / f, dest / f)
        done.append(dest)
    return done
