"""A circuit: every edge's score, which edges are in it, and the run's facts; selection, pruning, JSON.

Selection keeps edges by |score| (top-n, top-percent or a threshold); pruning then drops every edge that
is not on a path from `input` to `logits` through kept edges, and the nodes left without such a path.
Pruning never changes the circuit's output: an edge whose source has no kept path from the input carries
the corrupted activation anyway, and a node with no kept path to the logits cannot reach them.
A node's score is the summed |score| of its outgoing edges (incoming, for `logits`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch

from interp.errors import InterpError
from interp.rundir import write_atomic

from .graph import Graph

FORMAT = "interp.circuit/1"


def select(scores: torch.Tensor, top_n: int | None = None, top_percent: float | None = None,
           threshold: float | None = None) -> torch.Tensor:
    """Boolean mask of the edges kept by |score|; exactly one rule must be given."""
    given = [x is not None for x in (top_n, top_percent, threshold)]
    if sum(given) != 1:
        raise InterpError("give exactly one of --top-n, --top-percent, --threshold")
    mag = scores.abs()
    if threshold is not None:
        return mag >= threshold
    if top_percent is not None:
        if not 0 < top_percent <= 100:
            raise InterpError(f"--top-percent must be in (0, 100], got {top_percent}")
        top_n = max(1, math.ceil(len(scores) * top_percent / 100))
    if top_n < 1:
        raise InterpError(f"--top-n must be >= 1, got {top_n}")
    keep = torch.zeros(len(scores), dtype=torch.bool)
    keep[mag.argsort(descending=True, stable=True)[: min(top_n, len(scores))]] = True
    return keep


def prune(graph: Graph, keep: torch.Tensor) -> torch.Tensor:
    """Keep only edges on an input -> logits path of kept edges (an edge into a grouped key/value head leads
    to every query head of its group)."""
    kept = [e for e, k in zip(graph.edges, keep.tolist()) if k]
    reach_from_input, reach_logits = {"input"}, {"logits"}
    for e in kept:  # edges are in topological order of their targets
        if e.src in reach_from_input:
            reach_from_input.update(graph.fed(e.dst))
    leads = lambda e: any(n in reach_logits for n in graph.fed(e.dst))
    for e in reversed(kept):
        if leads(e):
            reach_logits.add(e.src)
    return torch.tensor([bool(k) and e.src in reach_from_input and leads(e)
                         for e, k in zip(graph.edges, keep.tolist())], dtype=torch.bool)


@dataclass
class Circuit:
    graph: Graph
    scores: torch.Tensor  # [n_edges], in graph.edges order
    in_graph: torch.Tensor  # [n_edges] bool
    info: dict = field(default_factory=dict)  # model, task, metric, method, faithfulness, ...

    @classmethod
    def from_scores(cls, graph: Graph, scores: torch.Tensor, info: dict | None = None, **rule) -> "Circuit":
        return cls(graph, scores.detach().float(), prune(graph, select(scores, **rule)), dict(info or {}))

    def with_rule(self, **rule) -> "Circuit":
        """The same scores, another selection."""
        return Circuit.from_scores(self.graph, self.scores, self.info, **rule)

    @property
    def share_kept(self) -> float:
        return self.in_graph.float().mean().item()

    @property
    def edge_names(self) -> set[str]:
        return {e.name for e, k in zip(self.graph.edges, self.in_graph.tolist()) if k}

    @property
    def node_names(self) -> set[str]:
        # a grouped key/value head is no node; its query heads in the circuit are sources of kept edges
        nodes = set(self.graph.nodes)
        return {n for e, k in zip(self.graph.edges, self.in_graph.tolist()) if k for n in (e.src, e.dst) if n in nodes}

    def node_scores(self) -> dict[str, float]:
        out = {n: 0.0 for n in self.graph.nodes}
        for e, s in zip(self.graph.edges, self.scores.abs().tolist()):
            out["logits" if e.dst == "logits" else e.src] += s
        return out

    def edge_scores(self) -> dict[str, float]:
        return {e.name: s for e, s in zip(self.graph.edges, self.scores.tolist())}

    def to_dict(self) -> dict:
        nodes, node_scores = self.node_names, self.node_scores()
        return {
            "format": FORMAT, **self.info,
            "share_kept": self.share_kept, "n_edges_kept": int(self.in_graph.sum()), "n_nodes_kept": len(nodes),
            "graph": self.graph.shape_dict(),
            "nodes": {n: {"in_graph": n in nodes, "score": node_scores[n]} for n in self.graph.nodes},
            "edges": {e.name: {"score": s, "in_graph": k}
                      for e, s, k in zip(self.graph.edges, self.scores.tolist(), self.in_graph.tolist())},
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Circuit":
        if d.get("format") != FORMAT:
            raise InterpError(f"not a circuit file (format {d.get('format')!r}, expected {FORMAT!r})")
        g = d["graph"]
        graph = Graph(g["n_layers"], g["n_heads"], g["parallel_attn_mlp"], g.get("n_kv_heads"))
        try:
            edges = [d["edges"][e.name] for e in graph.edges]
        except KeyError as e:
            raise InterpError(f"circuit file lacks edge {e.args[0]} of its own graph") from None
        info = {k: v for k, v in d.items() if k not in ("graph", "nodes", "edges", "share_kept", "n_edges_kept",
                                                       "n_nodes_kept", "format")}
        return cls(graph, torch.tensor([x["score"] for x in edges]),
                   torch.tensor([bool(x["in_graph"]) for x in edges]), info)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(self.to_dict(), indent=1))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Circuit":
        path = Path(path)
        if path.is_dir():
            path = path / "circuit.json"
        if not path.exists():
            raise InterpError(f"no circuit file at {path}")
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except json.JSONDecodeError as e:
            raise InterpError(f"{path} is not valid JSON: {e}") from None


def check_same_graph(a: Circuit, b: Circuit) -> None:
    if a.graph.shape() != b.graph.shape():
        raise InterpError("the circuits come from models with different graphs; they cannot be combined")


def union(a: Circuit, b: Circuit, n_edges: int | None = None, info: dict | None = None) -> Circuit:
    """Two circuits merged (docs/methods.md §1, compositional tasks): edges in either, the score averaged where both
    have the edge; cut to the `n_edges` strongest (e.g. the size of a directly discovered circuit), then pruned."""
    check_same_graph(a, b)
    both = a.in_graph & b.in_graph
    scores = torch.where(a.in_graph, a.scores, 0.0) + torch.where(b.in_graph, b.scores, 0.0)
    scores = torch.where(both, scores / 2, scores)
    keep = a.in_graph | b.in_graph
    if n_edges is not None and n_edges < int(keep.sum()):
        keep = select(torch.where(keep, scores.abs(), 0.0), top_n=n_edges) & keep
    return Circuit(a.graph, scores, prune(a.graph, keep), dict(info or {}))
