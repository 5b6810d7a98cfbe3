"""Arguments shared by several sub-commands."""

from __future__ import annotations


def add_config_arguments(parser, required: bool = True) -> None:
    """CONFIG positional plus trailing ``key=value`` overrides."""
    parser.add_argument("config", metavar="CONFIG", nargs=None if required else "?", help="YAML config file (see configs/)")
    parser.add_argument("overrides", metavar="KEY=VALUE", nargs="*", help="override config keys, e.g. data.distractors=3")


def load_from_args(args):
    from raysweep.config import load_config

    return load_config(args.config, args.overrides)
