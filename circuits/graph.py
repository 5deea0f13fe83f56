"""The computational graph edge attribution works on, as plain data.

Nodes: `input` (the embeddings), `a{l}.h{h}` (every attention head), `m{l}` (every MLP), `logits`.
Edges: from every upstream node to every downstream node's input; an edge into a head is one of three,
into its q, k or v input (`a0.h1->a2.h3<q>`). Upstream means: the node writes to the residual stream
before the downstream node reads it. In a parallel-residual block (GPT-NeoX / Pythia, GPT-J) attention and
MLP of a layer both read the block's input, so `m{l}` has no edges from `a{l}.h*`; in a sequential block
(GPT-2, LLaMA) it does.

Under grouped-query attention (Llama, Qwen, Gemma: fewer key/value heads than query heads) the query heads of
a group share one key and one value input, so an edge cannot feed one query head's k or v alone: k and v edges
go into the key/value head, `a{l}.kv{g}` (`m0->a1.kv0<k>`), which feeds query heads g*r .. g*r + r - 1
(r = query heads per key/value head, as `repeat_kv` lays them out). `kv` destinations are not nodes: they
write nothing to the residual stream.
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
    """Layer of a node: `input` 0 (as in the code of the docs/methods.md §1 paper), `logits` n_layers."""
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
    n_kv_heads: int | None = None  # key/value heads; None: as many as query heads
    nodes: list[str] = field(init=False)
    edges: list[Edge] = field(init=False)

    def __post_init__(self):
        self.n_kv_heads = self.n_kv_heads or self.n_heads
        if self.n_heads % self.n_kv_heads:
            raise ValueError(f"{self.n_heads} query heads do not split into {self.n_kv_heads} key/value groups")
        heads = [[f"a{l}.h{h}" for h in range(self.n_heads)] for l in range(self.n_layers)]
        self.nodes = ["input"] + [n for l in range(self.n_layers) for n in heads[l] + [f"m{l}"]] + ["logits"]
        self.edges = []
        upstream = ["input"]
        for l in range(self.n_layers):
            self.edges += [Edge(u, dst, x) for dst, x in self._attention_inputs(l) for u in upstream]
            mlp_up = upstream if self.parallel_attn_mlp else upstream + heads[l]
            self.edges += [Edge(u, f"m{l}") for u in mlp_up]
            upstream = upstream + heads[l] + [f"m{l}"]
        self.edges += [Edge(u, "logits") for u in upstream]

    @property
    def grouped(self) -> bool:
        return self.n_kv_heads != self.n_heads

    def _attention_inputs(self, layer: int) -> list[tuple[str, str]]:
        """(destination, q/k/v) in edge order: head by head; grouped, every q and then each group's k and v."""
        heads = self.head_inputs(layer, "q")
        if not self.grouped:
            return [(h, x) for h in heads for x in QKV]
        return [(h, "q") for h in heads] + [(kv, x) for kv in self.head_inputs(layer, "k") for x in ("k", "v")]

    def head_inputs(self, layer: int, qkv: str) -> list[str]:
        """The destinations of layer `layer`'s `qkv` inputs, in the order of the hook's head axis."""
        if qkv == "q" or not self.grouped:
            return [f"a{layer}.h{h}" for h in range(self.n_heads)]
        return [f"a{layer}.kv{g}" for g in range(self.n_kv_heads)]

    def fed(self, dst: str) -> list[str]:
        """The nodes whose output an edge into `dst` changes: the group's query heads for a key/value head."""
        if ".kv" not in dst:
            return [dst]
        layer, g = dst[1:].split(".kv")
        r = self.n_heads // self.n_kv_heads
        return [f"a{layer}.h{h}" for h in range(int(g) * r, (int(g) + 1) * r)]

    def shape(self) -> tuple:
        """What two graphs must share for their circuits to be compared."""
        return self.n_layers, self.n_heads, self.parallel_attn_mlp, self.n_kv_heads

    @classmethod
    def from_model(cls, model) -> "Graph":
        """The graph of an HF model (or a loaded one: anything with `.config` or `.model.config`)."""
        from interp.families import heads, n_layers, parallel_residual

        cfg = getattr(model, "config", None) or model.model.config
        n_q, n_kv = heads(cfg)
        return cls(n_layers(cfg), n_q, parallel_residual(cfg), n_kv)

    def edges_by_layer(self, count_by: str = "source") -> dict[int, int]:
        """Number of edges per layer, counted by the source or the target node's layer."""
        if count_by not in ("source", "target"):
            raise ValueError("count_by must be 'source' or 'target'")
        counts = {l: 0 for l in range(self.n_layers + 1)}
        for e in self.edges:
            counts[node_layer(e.src if count_by == "source" else e.dst, self.n_layers)] += 1
        return counts

    def summary(self) -> dict:
        return {"nodes": len(self.nodes), "edges": len(self.edges), "heads": self.n_layers * self.n_heads,
                "edges_by_source_layer": self.edges_by_layer("source"),
                "edges_by_target_layer": self.edges_by_layer("target")}

    def to_dict(self) -> dict:
        return {**self.shape_dict(), "nodes": self.nodes, "edges": [e.name for e in self.edges]}

    def shape_dict(self) -> dict:
        """The graph's shape as JSON; `n_kv_heads` only under grouped-query attention, so files written before
        it existed read the same."""
        d = {"n_layers": self.n_layers, "n_heads": self.n_heads, "parallel_attn_mlp": self.parallel_attn_mlp}
        return d | ({"n_kv_heads": self.n_kv_heads} if self.grouped else {})

    @classmethod
    def from_dict(cls, d: dict) -> "Graph":
        g = cls(d["n_layers"], d["n_heads"], d["parallel_attn_mlp"], d.get("n_kv_heads"))
        if [e.name for e in g.edges] != d.get("edges", [e.name for e in g.edges]):
            raise ValueError("the edge list does not match the graph's shape")
        return g

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict()))

    @classmethod
    def load(cls, path: str | Path) -> "Graph":
        return cls.from_dict(json.loads(Path(path).read_text()))
