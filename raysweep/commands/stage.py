"""raysweep stage: download base checkpoints once into a shared Hugging Face cache for offline GPU nodes."""

HELP = "Stage base checkpoints (Hub ids, or PATH=ORG/NAME for a local save_pretrained folder) into a shared HF_HOME for offline workers."


def add_arguments(parser) -> None:
    parser.add_argument("checkpoints", metavar="CHECKPOINT", nargs="+",
                        help="a Hub id (ORG/NAME, downloaded) or PATH=ORG/NAME (a local save_pretrained folder staged as that id)")  # fmt: skip
    parser.add_argument("--to", required=True, metavar="DIR", help="the shared folder that becomes the workers' HF_HOME, e.g. /mnt/shared/hf")
    parser.add_argument("--revision", default=None, help="Hub revision (branch, tag or commit) of the downloaded ids; default main")


def run(args) -> int:
    from raysweep.preflight import check_writable
    from raysweep.staging import stage_checkpoints

    check_writable(args.to, f"--to {args.to}")
    staged = stage_checkpoints(args.checkpoints, args.to, args.revision)
    for s in staged:
        how = {"hub": "downloaded", "cache": "already staged"}.get(s.source, f"copied from {s.source}")
        print(f"{s.repo_id}: {how}, {s.files} files, {s.bytes / 1e6:.1f} MB -> {s.snapshot}")
    hf_home = staged[0].snapshot.parents[3]
    print(f"\nworkers: HF_HOME={hf_home} HF_HUB_OFFLINE=1 (env_vars of the runtime env), model.checkpoint=<the Hub id>")
    return 0
