"""Sweeps: search spaces over config keys, ASHA, and the sweep summary (Ray Tune lives in raysweep.launch)."""
