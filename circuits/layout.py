"""Where each graph node lives in the Bridge, and its index in dense edge matrices.

Edge quantities are kept as dense [n_src, n_dst] matrices: a source is a node that writes to the residual
stream (`input`, every head, every MLP), a destination is a node input (each head's q, k and v input, each
MLP's input, the logits' input). `valid` marks the pairs that are edges of the graph; the rest stay zero.
Hooks (from `load_model(..., hooks_for_edges=True)`):
source outputs `hook_embed`, `blocks.{l}.attn.hook_result` [B, T, H, d], `blocks.{l}.hook_mlp_out`;
destination inputs `blocks.{l}.hook_{q,k,v}_input` [B, T, H, d] (before the layer norm, one copy per head;
k and v have one per key/value head under grouped-query attention), `blocks.{l}.hook_mlp_in`, `ln_final.hook_in`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .graph import QKV, Graph


@dataclass(frozen=True)
class Site:
    hook: str
    start: int  # first index in the source or destination axis
    heads: int  # 0 for a [B, T, d] hook, H for a [B, T, H, d] one

    @property
    def stop(self) -> int:
        return self.start + max(self.heads, 1)


class Layout:
    def __init__(self, graph: Graph):
        self.graph = graph
        L, H = graph.n_layers, graph.n_heads
        self.sources = [Site("hook_embed", 0, 0)]
        self.dests: list[Site] = []
        src_of, dst_of = {"input": 0}, {}
        d = 0  # next destination index
        for l in range(L):
            base = 1 + l * (H + 1)
            self.sources += [Site(f"blocks.{l}.attn.hook_result", base, H), Site(f"blocks.{l}.hook_mlp_out", base + H, 0)]
            src_of.update({f"a{l}.h{h}": base + h for h in range(H)} | {f"m{l}": base + H})
            for x in QKV:
                heads = graph.head_inputs(l, x)  # fewer for k and v under grouped-query attention
                self.dests.append(Site(f"blocks.{l}.hook_{x}_input", d, len(heads)))
                dst_of.update({(h, x): d + i for i, h in enumerate(heads)})
                d += len(heads)
            self.dests.append(Site(f"blocks.{l}.hook_mlp_in", d, 0))
            dst_of[(f"m{l}", None)] = d
            d += 1
        self.dests.append(Site("ln_final.hook_in", d, 0))
        dst_of[("logits", None)] = d
        self.n_src, self.n_dst = 1 + L * (H + 1), d + 1
        self.src = torch.tensor([src_of[e.src] for e in graph.edges])
        self.dst = torch.tensor([dst_of[(e.dst, e.qkv)] for e in graph.edges])
        self.valid = self.to_matrix(torch.ones(len(graph.edges), dtype=torch.bool))

    def to_matrix(self, per_edge: torch.Tensor) -> torch.Tensor:
        """Per-edge values (in `graph.edges` order) as a dense [n_src, n_dst] matrix, zero off the graph."""
        m = torch.zeros(self.n_src, self.n_dst, dtype=per_edge.dtype)
        m[self.src, self.dst] = per_edge
        return m

    def from_matrix(self, m: torch.Tensor) -> torch.Tensor:
        return m[self.src, self.dst]
