"""raysweep models: the VLM families, their default checkpoints and tiny variants."""

HELP = "List the VLM families, their default checkpoints and tiny variants."


def add_arguments(parser) -> None:
    parser.add_argument("--build-tiny", action="store_true", help="also build each tiny variant and print its parameter count")


def run(args) -> int:
    from raysweep.models import FAMILIES, get_family, list_families

    print(f"{'family':<11} {'default checkpoint':<36} {'tiny config':<36} other checkpoints")
    for name in list_families():
        _module, default, others = FAMILIES.get(name, ("", "", ()))
        from pathlib import Path

        tiny = f"configs/models/tiny-{name}.yaml"
        print(f"{name:<11} {default:<36} {tiny if Path(tiny).is_file() or name != 'molmo' else '-':<36} {', '.join(others) or '-'}")
    print()
    for name in list_families():
        family = get_family(name)
        line = f"tiny {name}: {family.tiny}"
        if args.build_tiny:
            from raysweep.models.config import ModelConfig

            built = family.build(ModelConfig(family=name, checkpoint="tiny", device="cpu"))
            line += f" (built: {built.total_params / 1e6:.2f}M parameters)"
        print(line)
    return 0
