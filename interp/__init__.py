"""interp: the workbench core — tokenizer, task suite, model zoo and loading, fine-tuning, the CLI.

Notebook entry points (imported lazily, so `import interp` stays light):
`interp.load_model`, `interp.make_examples`, `interp.TASKS`, `interp.finetune.finetune`,
`interp.finetune.FinetuneConfig`, `interp.evaluate.task_accuracy`.
"""

_EXPORTS = {"load_model": "loading", "LoadedModel": "loading", "make_examples": "tasks", "TASKS": "tasks",
            "Example": "tasks", "task_accuracy": "evaluate", "InterpError": "errors"}


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
