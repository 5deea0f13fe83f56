import pytest


@pytest.fixture(scope="session")
def tuned_edge_model():
    """pythia-mini after 150 steps of full fine-tuning on add_sub (about 75% test accuracy), with edge hooks:
    a model that does the task, as at the paper's fine-tuning checkpoints."""
    from circuits.graph import Graph
    from circuits.layout import Layout
    from interp.finetune import FinetuneConfig, finetune
    from interp.loading import load_model, make_bridge

    loaded = load_model("pythia-mini", bridge=False)
    result = finetune(FinetuneConfig(task="add_sub", steps=150, eval_every=150, n_eval=100), loaded)
    loaded.model = result.model
    loaded.bridge = make_bridge(loaded, hooks_for_edges=True)
    return loaded, Layout(Graph.from_model(loaded.model)), result.accuracy_after
