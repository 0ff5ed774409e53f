"""One run's library (python -m bench.run, bench/run.py, is its command): phases (the Run and run(), the list
of its phases: configure, make_accelerator, apply_recipe, start, build_synthetic or load_and_build and resume,
execute (train_and_evaluate, measure), report_skipped, write_result), output (the result's folder, lock and
the refusal to clobber an earlier result) and listing (what --list prints). It imports no task: the command
passes the task registry's create_task (and for --list its names) in."""
