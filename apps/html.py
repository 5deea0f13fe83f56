"""HTML for feature pages. Every token and user string passes through `esc` before it reaches the page."""

from __future__ import annotations

import html


def esc(x) -> str:
    return html.escape(str(x), quote=True)


def tokens_html(tokens: list[str], acts: list[float], scale: float, bold: int | None = None) -> str:
    """Tokens with an orange background proportional to activation / scale; hover shows the value."""
    scale = scale or 1.0
    spans = []
    for i, (t, a) in enumerate(zip(tokens, acts)):
        alpha = max(0.0, min(1.0, a / scale))
        weight = "font-weight:700;" if i == bold else ""
        spans.append(f'<span class="tok" title="{esc(f"{a:.3f}")}" data-act="{a:.4f}" '
                     f'style="background:rgba(255,140,0,{alpha:.2f});{weight}">{esc(t)}</span>')
    return '<div class="ctx">' + " ".join(spans) + "</div>"


def context_html(ctx: dict, scale: float) -> str:
    return tokens_html(ctx["tokens"], ctx["acts"], scale, ctx["pos"])


def feature_html(latent: int, entry: dict | None, density: float) -> str:
    """Header, top contexts, and contexts by activation quantile."""
    if entry is None:
        return f"<h3>latent {latent}</h3><p><b>dead</b>: never fired on the statistics tokens.</p>"
    scale = entry["max_act"]
    parts = [f"<h3>latent {latent}</h3>",
             f"<p>density {100 * density:.3f}% · max activation {entry['max_act']:.3f} · "
             f"mean activation {entry['mean_act']:.3f}</p>", "<h4>top activations</h4>"]
    parts += [context_html(c, scale) for c in entry["top"]]
    for q in entry["quantiles"]:
        lo, hi = q["range"]
        parts.append(f"<h4>activation {lo:.3f} – {hi:.3f}</h4>")
        parts += [context_html(c, scale) for c in q["examples"]]
    return "\n".join(parts)


def logits_html(entry: dict | None) -> str:
    if not entry or "logits" not in entry:
        return "<p>no logit effects (the hook is not in the residual stream's width)</p>"
    rows = lambda pairs, colour: "".join(
        f'<tr><td style="color:{colour}">{esc(t)}</td><td>{v:+.3f}</td></tr>' for t, v in pairs)
    return ("<table class='logits'><tr><th>positive logits</th><th></th><th>negative logits</th><th></th></tr>"
            "<tr><td colspan=2><table>" + rows(entry["logits"]["positive"], "#2b6cb0") + "</table></td>"
            "<td colspan=2><table>" + rows(entry["logits"]["negative"], "#c53030") + "</table></td></tr></table>")


def neighbours_html(pairs: list[tuple[int, float]]) -> str:
    return ("<table class='neighbours'><tr><th>latent</th><th>decoder cosine</th></tr>"
            + "".join(f"<tr><td>{i}</td><td>{c:+.3f}</td></tr>" for i, c in pairs) + "</table>")


def search_html(tokens: list[str], top: list[list[tuple[int, float]]], overall: list[tuple[int, float]]) -> str:
    """Per token, its most active features; then the features most active anywhere in the text."""
    rows = "".join(f"<tr><td>{esc(t)}</td><td>" + ", ".join(f"{i} ({a:.2f})" for i, a in feats) + "</td></tr>"
                   for t, feats in zip(tokens, top))
    best = ", ".join(f"{i} ({a:.2f})" for i, a in overall)
    return (f"<p><b>most active features:</b> {best}</p>"
            f"<table class='search'><tr><th>token</th><th>top features (activation)</th></tr>{rows}</table>")


def steer_html(result: dict, latent: int, how: str) -> str:
    return (f"<p>{esc(result['mode'])} · latent {latent} · {esc(how)}</p><table class='steer'>"
            f"<tr><th>default</th><th>steered</th></tr><tr><td>{esc(result['prompt'])} <i>{esc(result['default'])}</i></td>"
            f"<td>{esc(result['prompt'])} <i>{esc(result['steered'])}</i></td></tr></table>")


def selection_html(sel: dict) -> str:
    """SSPU's chosen layer, then each forget and irrelevant feature: its score and top contexts."""
    parts = [f"<p>layer {esc(sel['layer'])} ({esc(sel['hook'])}); mean top-N score per candidate layer: "
             + ", ".join(f"{esc(l)}: {v:.2f}" for l, v in sel["layer_scores"].items()) + "</p>"]
    for title, key in (("forget features", "forget_features"), ("irrelevant features", "irrelevant_features")):
        parts.append(f"<h3>{title}</h3>")
        for f in sel[key]:
            scale = max((c["act"] for c in f["top"]), default=1.0)
            parts.append(f"<h4>latent {esc(f['latent'])} · score {f['score']:+.2f}</h4>")
            parts += [context_html(c, scale) for c in f["top"]]
    return "\n".join(parts)


CSS = """
.ctx { font-family: ui-monospace, monospace; margin: 2px 0; line-height: 1.7; }
.tok { padding: 1px 2px; border-radius: 3px; }
table.logits td, table.neighbours td, table.search td, table.steer td { padding: 2px 8px; }
"""
