"""Named tasks to train and analyse networks on: ``get_task(name, seed=..., data=..., **params)``.

Each task is a [`Task`][modscope.tasks.base.Task] (tensors, loss, metric, output groups, named functions, its
generation ``params`` and training ``defaults``). Nothing is downloaded: the data is
generated, bundled with scikit-learn, or read from files the user points to.
"""

from ..data.functions import Function
from .base import Task
from .registry import TASKS, TaskSpec, class_functions, get_task, list_tasks

__all__ = ["TASKS", "Function", "Task", "TaskSpec", "class_functions", "get_task", "list_tasks"]
