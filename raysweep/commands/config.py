"""raysweep config: print a resolved config, or every key with its documentation."""

from raysweep.commands._common import add_config_arguments, load_from_args

HELP = "Print the resolved config (includes and overrides applied) or, without CONFIG, every key's documentation."


def add_arguments(parser) -> None:
    add_config_arguments(parser, required=False)


def run(args) -> int:
    import yaml

    from raysweep._configlib import to_dict
    from raysweep.config import config_help

    if args.config is None and not args.overrides:
        for key, default, text in config_help():
            print(f"{key:32s} {default:28s} {text}" if default else f"\n[{key}] {text}")
        return 0
    print(yaml.safe_dump(to_dict(load_from_args(args)), sort_keys=False), end="")
    return 0
