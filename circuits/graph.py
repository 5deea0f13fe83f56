"""The computational graph edge attribution works on, as plain data.

Nodes: `input` (the embeddings), `a{l}.h{h}` (every attention head), `m{l}` (every MLP), `logits`.
Edges: from every upstream node to every downstream node's input; an edge into a head is one of three,
into its q, k or v input (`a0.h1->a2.h3<q>`). Upstream means: the node writes to the residual stream
before the downstream node reads it. In a parallel-residual block (GPT-NeoX / Pythia, GPT-J) attention and
MLP of a layer both read the block's input, so `m{l}` has no edges from `a{l}.h*`; in a sequential block
(GPT-2, LLaMA) it does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

QKV = ("q", "k", "v")


@dataclass(frozen=True)
class Edge:
    src: str
    dst: str
    qkv: str | None = None  # the head input the edge feeds, for edges into heads

    @property
    def name(self) -> str:
        return f"{self.src}->{self.dst}" + (f"<{self.qkv}>" if self.qkv else "")


def node_layer(node: str, n_layers: int) -> int:
    """Layer of a node: `input` 0 (as in the METHODS.md source code), `logits` n_layers."""
    if node == "input":
        return 0
    if node == "logits":
        return n_layers
    return int(node[1:].split(".")[0])


@dataclass
class Graph:
    n_layers: int
    n_heads: int
    parallel_attn_mlp: bool
    nodes: list[str] = field(init=False)
    edges: list[Edge] = field(init=False)

    def __post_init__(self):
        heads = [[f"a{l}.h{h}" for h in range(self.n_heads)] for l in range(self.n_layers)]
        self.nodes = ["input"] + [n for l in range(self.n_layers) for n in heads[l] + [f"m{l}"]] + ["logits"]
        self.edges = []
        upstream = ["input"]
        for l in range(self.n_layers):
            self.edges += [Edge(u, head, x) for head in heads[l] for x in QKV for u in upstream]
            mlp_up = upstream if self.parallel_attn_mlp else upstream + heads[l]
            self.edges += [Edge(u, f"m{l}") for u in mlp_up]
            upstream = upstream + heads[l] + [f"m{l}"]
        self.edges += [Edge(u, "logits") for u in upstream]

    @classmethod
    def from_model(cls, model) -> "Graph":
        """The graph of an HF model (or a loaded one: anything with `.config` or `.model.config`)."""
        from interp.families import heads, n_layers, parallel_residual

        cfg = getattr(model, "config", None) or model.model.config
        return cls(n_layers(cfg), heads(cfg)[0], parallel_residual(cfg))

    def edges_by_layer(self, by: str = "source") -> dict[int, int]:
        """Number of edges per layer, counted by the source or the target node's layer."""
        if by not in ("source", "target"):
            raise ValueError("by must be 'source' or 'target'")
        counts = {l: 0 for l in range(self.n_layers + 1)}
        for e in self.edges:
            counts[node_layer(e.src if by == "source" else e.dst, self.n_layers)] += 1
        return counts

    def summary(self) -> dict:
        return {"nodes": len(self.nodes), "edges": len(self.edges), "heads": self.n_layers * self.n_heads,
                "edges_by_source_layer": self.edges_by_layer("source"),
                "edges_by_target_layer": self.edges_by_layer("target")}

    def to_dict(self) -> dict:
        return {"n_layers": self.n_layers, "n_heads": self.n_heads, "parallel_attn_mlp": self.parallel_attn_mlp,
                "nodes": self.nodes, "edges": [e.name for e in self.edges]}

    @classmethod
    def from_dict(cls, d: dict) -> "Graph":
        g = cls(d["n_layers"], d["n_heads"], d["parallel_attn_mlp"])
        if [e.name for e in g.edges] != d.get("edges", [e.name for e in g.edges]):
            raise ValueError("the edge list does not match the graph's shape")
        return g

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict()))

    @classmethod
    def load(cls, path: str | Path) -> "Graph":
        return cls.from_dict(json.loads(Path(path).read_text()))
