"""Running many runs: the launcher and its executors (local devices, slurm)."""
