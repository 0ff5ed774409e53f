"""Task registry: importing this package registers every task, each module of it registering its own.
Only the entry points (bench.run, bench.sweep, ...) import it; models, the loop and measurement
take a task object or a bench.core.spec.TaskSpec."""

from bench.core.registry import import_modules
from tasks.base import TASKS, Task, TaskData, create_task, list_tasks, register_task  # noqa: F401

import_modules(__name__, __path__)
