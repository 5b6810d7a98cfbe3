"""raysweep: Ray-distributed LoRA sweeps that teach vision-language models where things are.

The core (scenes, datasets, models, metrics, the per-worker training step) imports without Ray;
Ray Data, Train and Tune are used only by :mod:`raysweep.launch`.
"""

__version__ = "0.1.0"
