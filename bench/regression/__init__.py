"""The regression check's library (python -m bench.regress and python -m bench.regress_calibration are its
commands; bench/regress_worker.py, which each checkout it times keeps at its path, is its worker): cases,
decision (the statistics), sides (worktree, workers, signals), report (baselines and records), check,
calibration. It imports no task: the commands pass the task registry's names in."""
