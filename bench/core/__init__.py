"""Shared by every layer: errors, the task spec, registries, configs and flags, results, recipes, the process
settings and the machine's measurement lock. Imports nothing else of the suite."""
