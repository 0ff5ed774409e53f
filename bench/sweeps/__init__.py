"""The sweep's library (python -m bench.sweep is its command): grid (the sweep file and its checks), plan (the
runs, tuning and its extensions, the choice on validation), execute (the runs' processes or jobs, progress,
cost passes). It imports no task: the command passes the task registry's create_task in."""
