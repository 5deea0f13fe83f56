"""interp: the workbench core — tokenizer, task suite, model zoo and loading, fine-tuning, the CLI.

Notebook entry points (imported lazily, so `import interp` stays light):
`interp.load_model`, `interp.make_examples`, `interp.TASKS`, `interp.finetune.finetune`,
`interp.finetune.FinetuneConfig`, `interp.evaluate.task_accuracy`.
"""

from .lazy import lazy_getattr

__getattr__ = lazy_getattr(__name__, {
    "load_model": "loading", "LoadedModel": "loading", "make_examples": "tasks", "TASKS": "tasks",
    "Example": "tasks", "task_accuracy": "evaluate", "InterpError": "errors"})
