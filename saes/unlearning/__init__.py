"""Unlearning by SAE subspace projection (SSPU, docs/methods.md §3) against RMU, gradient ascent and SAE
clamping, with attacks.

    from saes.unlearning import UnlearnConfig, unlearn
    report = unlearn(UnlearnConfig(out="runs/unlearn/notebook"))     # report["rows"]["sspu"]["forget"]

Layout: config.py (UnlearnConfig), method.py (the UnlearnMethod protocol and the Context a method reads),
registry.py (UNLEARN_METHODS), one module per method (sspu.py, rmu.py, gradient_ascent.py, clamp.py), the
shared parts (data.py, hooks.py, push.py, loop.py: the one training loop), stages 1 and 2 (select.py, setup.py),
evaluate.py (metrics and attacks), run.py (`unlearn`, `experiment`, the table), frontier.py, commands.py.

Exports are imported lazily, so registering the CLI command stays light.
"""

from interp.lazy import lazy_getattr

__getattr__ = lazy_getattr(__name__, {
    "UnlearnConfig": "config", "SSPUOptions": "sspu", "ClampOptions": "clamp", "same_options": "config",
    "with_options": "config", "from_options": "config",
    "UnlearnMethod": "method", "Method": "method", "Context": "method",
    "UNLEARN_METHODS": "registry", "register": "registry", "get_method": "registry",
    "Batches": "data", "training_data": "data",
    "Setup": "setup", "prepare": "setup", "load_saes": "setup", "tuned_model": "setup",
    "selection_json": "select",
    "unlearn": "run", "experiment": "run", "table": "run"})
