"""The training loop and what it keeps: checkpoints, the metric history and the progress file."""
