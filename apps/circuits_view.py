"""The circuit inspector's work: one circuit as a layered graph, two checkpoints compared, and per-layer edge
change with critical layers and LoRA ranks (from a rule, or from a saved CircuitLoRA allocation)."""

from __future__ import annotations

import json
from functools import lru_cache

from circuits.allocation import critical_layers
from circuits.circuit import Circuit, check_same_graph
from circuits.comparison import compare
from circuits.draw import circuit_figure
from interp.errors import InterpError

from .html import esc
from .runs import RunsDir


def layer_change_figure(rows: list[dict], title: str):
    """Bars of edge change per layer; critical layers orange; each bar labelled with its LoRA rank."""
    import plotly.graph_objects as go

    fig = go.Figure(go.Bar(
        x=[str(r["layer"]) for r in rows], y=[r["edge_change"] for r in rows],
        marker_color=["#dd6b20" if r["critical"] else "#90cdf4" for r in rows],
        text=[f"r={r['rank']}" if r.get("rank") is not None else "" for r in rows], textposition="outside",
        hovertext=[f"layer {r['layer']}: change {r['edge_change']:.4g}" + (" (critical)" if r["critical"] else "")
                   for r in rows], hoverinfo="text"))
    top = max((r["edge_change"] for r in rows), default=0) or 1.0
    fig.update_layout(title=title, template="plotly_white", xaxis_title="layer (the last is the logits)",
                      yaxis=dict(title="edge change", range=[0, 1.15 * top]), height=340, margin=dict(t=60, b=40))
    return fig


class CircuitInspector:
    def __init__(self, runs: RunsDir):
        self.runs = runs
        self.load = lru_cache(maxsize=32)(lambda rel: Circuit.load(self.runs.path(rel)))

    def _select(self, rel: str, share: float, top_n: int | None) -> Circuit:
        c = self.load(rel)
        return c.with_rule(top_n=int(top_n)) if top_n else c.with_rule(top_percent=float(share))

    def view(self, rel: str, share: float = 5.0, top_n: int | None = None, qkv=("q", "k", "v")):
        c = self._select(rel, share, top_n)
        info = c.info
        summary = (f"<p>{esc(info.get('model', ''))} · {esc(info.get('task', ''))} · {esc(info.get('method', ''))} "
                   f"({esc(info.get('metric', ''))}) · {int(c.in_graph.sum())} of {len(c.scores)} edges, "
                   f"{len(c.node_names)} nodes · <code>{esc(rel)}</code></p>")
        return circuit_figure(c, qkv=tuple(qkv)), summary

    def compare(self, rel_a: str, rel_b: str, share: float = 5.0, top_n: int | None = None, qkv=("q", "k", "v"),
                count_by: str = "source", rule: str = "topk:1", r_other: int = 4, r_critical: int = 16):
        """Union of both circuits with added/removed edges and nodes coloured; edge change per layer."""
        a, b = self._select(rel_a, share, top_n), self._select(rel_b, share, top_n)
        check_same_graph(a, b)
        diff = compare(a, b, count_by)
        status = {n: "added" for n in diff["nodes_added"] + diff["edges_added"]}
        status |= {n: "removed" for n in diff["nodes_removed"] + diff["edges_removed"]}
        status |= {e.name: "kept" for e in a.graph.edges if e.name not in status}
        both = Circuit(b.graph, b.scores.where(b.in_graph, a.scores), a.in_graph | b.in_graph, b.info)
        title = f"{rel_a} → {rel_b}: green added, red removed, grey kept"
        n_layers = a.graph.n_layers
        change = diff["layer_change"]
        critical = critical_layers(change, n_layers, rule)
        rows = [{"layer": l, "edge_change": v, "critical": l in critical,
                 "rank": (r_critical if l in critical else r_other) if l < n_layers else None}
                for l, v in sorted(change.items())]
        summary = (f"<p>nodes {diff['nodes_before']} → {diff['nodes_after']} (Jaccard {diff['node_jaccard']:.2f}), "
                   f"edges {diff['edges_before']} → {diff['edges_after']} (Jaccard {diff['edge_jaccard']:.2f}); "
                   f"added nodes: {esc(', '.join(diff['nodes_added']) or '-')}; "
                   f"removed nodes: {esc(', '.join(diff['nodes_removed']) or '-')}; "
                   f"{len(diff['edges_added'])} edges added, {len(diff['edges_removed'])} removed</p>")
        bars = layer_change_figure(rows, f"edge change per layer (by {count_by}); critical by {rule}; LoRA ranks")
        return circuit_figure(both, title=title, qkv=tuple(qkv), status=status), bars, summary

    def allocation(self, rel: str):
        """A saved CircuitLoRA allocation (allocation.json): edge change, critical layers, ranks."""
        path = self.runs.path(rel)
        if path.name != "allocation.json" or not path.exists():
            raise InterpError(f"{rel} is not an allocation.json in the runs directory")
        a = json.loads(path.read_text())
        title = (f"{rel}: by {a['count_by']}, rule {a['rule']}, critical {a['critical_layers']}, "
                 f"ranks {a['r_other']}/{a['r_critical']}")
        return layer_change_figure(a["layers"], title)
