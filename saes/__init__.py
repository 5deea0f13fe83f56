"""Top-K SAE training on autoregressive and diffusion LMs (sae-lens SAEs trained with a fast sparse step),
evaluation and feature statistics.

    from saes import SAETrainConfig, train_sae
    result = train_sae(SAETrainConfig(model="pythia-mini", k=[16, 32]))
    result.metrics["blocks.2.hook_resid_post-k32"]["explained_variance"]

Exports are imported lazily, so registering the CLI commands stays light.
"""

_EXPORTS = {"SAETrainConfig": "config", "train_sae": "train", "SAETrainResult": "train", "load_sae": "train",
            "evaluate_run": "run_eval", "spliced": "evaluate", "feature_stats": "features"}


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
