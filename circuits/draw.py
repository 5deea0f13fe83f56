"""A picture of a circuit (plotly): layers bottom to top, heads then the MLP left to right; kept edges drawn
with width by |score|, blue for positive and red for negative scores, dotted into q, dashed into k, solid into
v and MLP/logits inputs; nodes outside the circuit in grey."""

from __future__ import annotations

from pathlib import Path

from .circuit import Circuit

DASH = {"q": "dot", "k": "dash", "v": "solid", None: "solid"}


def node_positions(circuit: Circuit) -> dict[str, tuple[float, float]]:
    g = circuit.graph
    pos = {"input": (g.n_heads / 2, 0.0), "logits": (g.n_heads / 2, g.n_layers + 1.0)}
    for l in range(g.n_layers):
        for h in range(g.n_heads):
            pos[f"a{l}.h{h}"] = (float(h), l + 1.0 - (0 if g.parallel_attn_mlp else 0.25))
        pos[f"m{l}"] = (g.n_heads + 0.5, l + 1.0 + (0 if g.parallel_attn_mlp else 0.25))
        if g.grouped:  # k/v edges end just below the middle of their group's query heads
            for kv in g.head_inputs(l, "k"):
                heads = [pos[h] for h in g.fed(kv)]
                pos[kv] = (sum(x for x, _ in heads) / len(heads), heads[0][1] - 0.15)
    return pos


STATUS = {"added": "#2f855a", "removed": "#c53030", "kept": "#a0aec0"}


def circuit_figure(circuit: Circuit, title: str | None = None, qkv: tuple = ("q", "k", "v"),
                   status: dict[str, str] | None = None):
    """`qkv`: which attention inputs' edges to draw (edges into MLPs and logits always are). `status`: edge or
    node name -> added / removed / kept, to colour a comparison (green added, red removed, grey kept)."""
    import plotly.graph_objects as go

    pos = node_positions(circuit)
    kept = [(e, s) for e, s, k in zip(circuit.graph.edges, circuit.scores.tolist(), circuit.in_graph.tolist())
            if k and (e.qkv is None or e.qkv in qkv)]
    top = max((abs(s) for _, s in kept), default=1.0) or 1.0
    fig = go.Figure()
    for e, s in sorted(kept, key=lambda x: abs(x[1])):
        (x0, y0), (x1, y1) = pos[e.src], pos[e.dst]
        fig.add_trace(go.Scatter(
            x=[x0, x1], y=[y0, y1], mode="lines", hoverinfo="text", text=f"{e.name}: {s:+.4g}", showlegend=False,
            line=dict(width=0.5 + 5 * abs(s) / top, dash=DASH[e.qkv],
                      color=STATUS[status[e.name]] if status else "#2b6cb0" if s >= 0 else "#c53030")))
    inside = circuit.node_names
    names = circuit.graph.nodes
    node_scores = circuit.node_scores()
    fig.add_trace(go.Scatter(
        x=[pos[n][0] for n in names], y=[pos[n][1] for n in names], mode="markers+text", text=names,
        textposition="top center", showlegend=False, hovertext=[f"{n}: {node_scores[n]:.4g}" for n in names],
        hoverinfo="text", marker=dict(size=16, line=dict(width=1, color="#333"),
                                      color=[node_colour(n, inside, status) for n in names])))
    info = circuit.info
    title = title or (f"{info.get('model', '')} · {info.get('task', '')} · {info.get('method', '')} ({info.get('metric', '')})"
                      f" · {len(kept)} edges ({100 * circuit.share_kept:.1f}%)")
    fig.update_layout(title=title, template="plotly_white", height=150 + 110 * (circuit.graph.n_layers + 2),
                      xaxis=dict(visible=False), yaxis=dict(visible=False), margin=dict(l=20, r=20, t=60, b=20))
    return fig


def node_colour(node: str, inside: set[str], status: dict[str, str] | None) -> str:
    if status and node in status and status[node] != "kept":
        return STATUS[status[node]]
    return "#f6ad55" if node in inside else "#e2e8f0"


def save_picture(circuit: Circuit, path: str | Path) -> Path:
    """A standalone HTML file (plotly.js written once beside it, so a track of circuits shares one copy)."""
    path = Path(path)
    circuit_figure(circuit).write_html(path, include_plotlyjs="directory")
    return path
