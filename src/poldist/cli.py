"""Command line: ``poldist <command> --help``.

Each long-running command takes its hyper-parameters from one config dataclass;
every field is a ``--flag`` (``--total-steps 3000000``), and ``--config FILE.json``
sets many at once (flags still override it).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from poldist.errors import PoldistError


def _add_dataclass_args(parser: argparse.ArgumentParser, cls: type) -> None:
    group = parser.add_argument_group(f"{cls.__name__} (hyper-parameters)")
    for f in dataclasses.fields(cls):
        flag = "--" + f.name.replace("_", "-")
        default = f.default
        kind = type(default)
        help_text = f.metadata.get("help", "") + f" (default: {default!r})"
        if kind is bool:
            group.add_argument(
                flag,
                dest=f.name,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=help_text,
            )
        else:
            group.add_argument(flag, dest=f.name, type=kind, default=None, help=help_text)
    parser.add_argument("--config", type=Path, help="JSON file of config fields; flags override it")


def _build_config(cls: type, args: argparse.Namespace) -> Any:
    values: dict[str, Any] = {}
    names = {f.name for f in dataclasses.fields(cls)}
    if args.config is not None:
        try:
            loaded = json.loads(args.config.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise PoldistError(f"cannot read config {args.config}: {e}") from e
        unknown = set(loaded) - names
        if unknown:
            raise PoldistError(f"config {args.config} has unknown keys {sorted(unknown)}")
        values.update(loaded)
    for name in names:
        v = getattr(args, name)
        if v is not None:
            values[name] = v
    return cls(**values)


def _cmd_train_teacher(args: argparse.Namespace) -> None:
    from poldist.dqn import DQNConfig, train_dqn

    cfg = _build_config(DQNConfig, args)
    summary = train_dqn(cfg, args.out, resume=args.resume)
    print(json.dumps(summary["final_eval"], indent=2))
    print(f"teacher checkpoint: {Path(args.out) / 'teacher'}")


def build_parser() -> argparse.ArgumentParser:
    """The ``poldist`` argument parser with all subcommands."""
    from poldist.dqn import DQNConfig

    parser = argparse.ArgumentParser(
        prog="poldist",
        description="Policy distillation (Rusu et al., 2015): train teachers, distil students, evaluate.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "train-teacher",
        help="train a Double-DQN teacher",
        description="Train a Double-DQN teacher on one env; writes <out>/teacher.",
    )
    _add_dataclass_args(p, DQNConfig)
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.set_defaults(func=_cmd_train_teacher)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``poldist`` command; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except PoldistError as e:
        print(f"poldist: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("poldist: interrupted; resume with --resume from the last checkpoint", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
