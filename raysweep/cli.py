"""The ``raysweep`` console script: sub-commands that map to plain functions."""

from __future__ import annotations

import argparse
import importlib
import sys

from raysweep import __version__
from raysweep.commands import COMMANDS
from raysweep.errors import find_user_error


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="raysweep",
        description="Ray-distributed LoRA sweeps that teach VLMs where things are (synthetic scenes -> COCO).",
    )
    parser.add_argument("--version", action="version", version=f"raysweep {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"raysweep.commands.{name}")
        cmd = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(cmd)
        cmd.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # `raysweep train CONFIG --register lora.rank=8`: overrides after options are overrides too.
    late = [a for a in extra if "=" in a and not a.startswith("-")]
    unknown = [a for a in extra if a not in late]
    if unknown or (late and not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(unknown or late)}")
    if late:
        args.overrides = list(args.overrides) + late
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        result = args._run(args)
    except KeyboardInterrupt:
        print(f"raysweep {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a user error raised in a Ray worker arrives wrapped: report its one line
        err = find_user_error(exc)
        if err is None:
            raise
        print(f"raysweep {args.command}: error: {err}", file=sys.stderr)
        return 2
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
