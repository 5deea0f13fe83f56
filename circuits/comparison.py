"""How two circuits differ, and how stable a circuit is across disjoint data.

Per-edge change (docs/methods.md §1, CircuitLoRA step 2): |score_after - score_before| for an edge in both circuits,
|score| of the circuit it is in for an edge in one, 0 for an edge in neither. Summed per layer by the edge's
source layer (the paper's code, where `input` counts as layer 0) or its target layer (`logits` = n_layers).
"""

from __future__ import annotations

from itertools import combinations

import torch

from interp.errors import InterpError

from .circuit import Circuit, check_same_graph
from .graph import node_layer


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a | b else 1.0


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    """Rank correlation of two score vectors (ties broken by position; scores are continuous)."""
    ra, rb = a.argsort().argsort().float(), b.argsort().argsort().float()
    return torch.corrcoef(torch.stack([ra, rb]))[0, 1].item()


def edge_change(before: Circuit, after: Circuit) -> torch.Tensor:
    check_same_graph(before, after)
    both = before.in_graph & after.in_graph
    only_before, only_after = before.in_graph & ~after.in_graph, after.in_graph & ~before.in_graph
    change = torch.zeros_like(before.scores)
    change[both] = (after.scores - before.scores).abs()[both]
    change[only_before] = before.scores.abs()[only_before]
    change[only_after] = after.scores.abs()[only_after]
    return change


def layer_change(before: Circuit, after: Circuit, count_by: str = "source") -> dict[int, float]:
    if count_by not in ("source", "target"):
        raise InterpError(f"--count-by must be 'source' or 'target', got {count_by!r}")
    g = before.graph
    sums = {l: 0.0 for l in range(g.n_layers + 1)}
    for e, c in zip(g.edges, edge_change(before, after).tolist()):
        sums[node_layer(e.src if count_by == "source" else e.dst, g.n_layers)] += c
    return sums


def compare(before: Circuit, after: Circuit, count_by: str = "source") -> dict:
    nb, na = before.node_names, after.node_names
    eb, ea = before.edge_names, after.edge_names
    change = edge_change(before, after)
    top = change.argsort(descending=True)[:10].tolist()
    return {
        "nodes_before": len(nb), "nodes_after": len(na), "edges_before": len(eb), "edges_after": len(ea),
        "nodes_added": sorted(na - nb), "nodes_removed": sorted(nb - na),
        "edges_added": sorted(ea - eb), "edges_removed": sorted(eb - ea), "edges_flipped": len(ea ^ eb),
        "node_jaccard": jaccard(nb, na), "edge_jaccard": jaccard(eb, ea),
        "total_change": change.sum().item(), "count_by": count_by,
        "layer_change": layer_change(before, after, count_by),
        "top_changed_edges": [{"edge": before.graph.edges[i].name, "change": change[i].item()}
                              for i in top if change[i] > 0],
    }


def robustness(circuits: list[Circuit]) -> dict:
    """Mean pairwise Jaccard of edge and node sets (circuits found on disjoint splits)."""
    if len(circuits) < 2:
        raise InterpError("robustness needs circuits from at least two splits")
    pairs = list(combinations(circuits, 2))
    for a, b in pairs:
        check_same_graph(a, b)
    return {"splits": len(circuits),
            "edge_jaccard": sum(jaccard(a.edge_names, b.edge_names) for a, b in pairs) / len(pairs),
            "node_jaccard": sum(jaccard(a.node_names, b.node_names) for a, b in pairs) / len(pairs)}
