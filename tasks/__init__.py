"""Task registry: importing this package registers every task family."""

from tasks import bible, g2p, mlm, seq2seq, vision  # noqa: F401
from tasks.base import TASKS, Task, TaskData, TaskSpec, get_task, list_tasks, register_task  # noqa: F401
