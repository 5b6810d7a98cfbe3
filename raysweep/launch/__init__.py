"""The layer that launches work on Ray: Ray Data streaming, Ray Train jobs, Ray Tune sweeps.

Only this package imports Ray; the core (scenes, datasets, models, metrics, the training step)
never does.
"""
