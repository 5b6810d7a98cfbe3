"""Sub-commands of the ``raysweep`` console script, one module each.

A command module defines ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args)``. Modules
import only argparse-level things at the top so that ``raysweep --help`` stays fast; heavy imports
(torch, transformers, ray) happen inside ``run``.
"""

COMMANDS = ["generate", "audit", "show", "config", "coco", "models", "tasks", "eval", "probe", "train", "sweep", "stage", "report", "compare", "plan", "inspect"]
