"""Circuits: the computational graph, EAP / EAP-IG edge attribution, circuit evaluation (faithfulness),
circuits at fine-tuning checkpoints and their comparison.

    from circuits import DiscoverConfig, discover
    result = discover(DiscoverConfig(model="pythia-mini", task="add_sub"))
    result.evaluation["faithfulness"], result.circuit.edge_names

Exports are imported lazily, so registering the CLI commands stays light.
"""

from interp.lazy import lazy_getattr

__getattr__ = lazy_getattr(__name__, {
    "Graph": "graph", "Layout": "layout", "AttributionConfig": "attribution", "attribute": "attribution",
    "Circuit": "circuit", "evaluate_circuit": "evaluate", "evaluate_masks": "evaluate",
    "DiscoverConfig": "discovery", "discover": "discovery", "write_circuit": "discovery", "split_circuits": "discovery",
    "compare": "comparison", "robustness": "comparison", "TrackConfig": "tracking", "track": "tracking",
    "task_batches": "data"})
