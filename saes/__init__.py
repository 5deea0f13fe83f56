"""Top-K SAE training on autoregressive and diffusion LMs (sae-lens SAEs trained with a fast sparse step),
evaluation and feature statistics.

    from saes import SAETrainConfig, train_sae
    result = train_sae(SAETrainConfig(model="pythia-mini", k=[16, 32]))
    result.metrics["blocks.2.hook_resid_post-k32"]["explained_variance"]

Exports are imported lazily, so registering the CLI commands stays light.
"""

from interp.lazy import lazy_getattr

__getattr__ = lazy_getattr(__name__, {
    "SAETrainConfig": "config", "CacheConfig": "activation_cache",
    "cache_activations": "activation_cache", "train_sae": "train", "SAETrainResult": "train", "load_sae": "train",
    "evaluate_run": "run_eval", "spliced": "evaluate", "feature_stats": "features", "FeatureStore": "feature_store",
    "unlearn": "unlearning", "UnlearnConfig": "unlearning"})
