"""The feature browser's work, apart from the UI: feature table, feature page, test text, search, steering.

Pages come from the stored statistics (saes/feature_store.py) and the decoder weights; the model and the SAE
module are loaded only when a view runs text through them (test text, search, steering), then kept.
"""

from __future__ import annotations

from functools import lru_cache

import torch

from interp.errors import InterpError
from saes.feature_store import FeatureStore

from . import html
from .runs import RunsDir

# A caller can send any text and any count: these bound the work one request asks for (the attention of a
# long text grows with its square; each generated token is a forward pass).
MAX_CHARS = 2000  # text inputs; their tokens are capped too, by the model's context length
MAX_NEW_TOKENS = 64  # steering's generated tokens


def _text(text, what: str = "text") -> str:
    if not isinstance(text, str):
        raise InterpError(f"the {what} must be a string")
    if len(text) > MAX_CHARS:
        raise InterpError(f"the {what} is {len(text)} characters; the app takes at most {MAX_CHARS}")
    return text


def _new_tokens(n) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, float)) or not 1 <= n <= MAX_NEW_TOKENS:
        raise InterpError(f"tokens must be 1 to {MAX_NEW_TOKENS} in the app, got {n}")
    return int(n)


class FeatureBrowser:
    def __init__(self, runs: RunsDir):
        self.runs = runs
        self.store = lru_cache(maxsize=8)(lambda rel: FeatureStore(self.runs.path(rel)))
        self._decoders = lru_cache(maxsize=4)(self._decoder)
        self._saes = lru_cache(maxsize=4)(self._sae)
        self._models = lru_cache(maxsize=2)(self._model)

    def _decoder(self, rel: str) -> torch.Tensor:
        from safetensors import safe_open

        with safe_open(str(self.runs.path(rel) / "sae_weights.safetensors"), "pt") as f:
            w = f.get_tensor("W_dec").float()
        return w / w.norm(dim=1, keepdim=True).clamp_min(1e-8)

    def _sae(self, rel: str):
        from saes.train import load_sae

        return load_sae(self.runs.path(rel))

    def _model(self, name: str):
        from interp.loading import load_model

        return load_model(name)

    def _loaded(self, rel: str):
        sae = self._saes(rel)
        return self._models(self.runs.model_name(rel)), sae, sae.cfg.metadata.hook_name

    def _check(self, rel: str, latent) -> int:
        d_sae = self.store(rel).d_sae
        if latent is None or not 0 <= int(latent) < d_sae:
            raise InterpError(f"latent {latent} is out of range; this SAE has latents 0..{d_sae - 1}")
        return int(latent)

    def table(self, rel: str, sort_by: str = "density", include_dead: bool = False, limit: int = 1000) -> list[list]:
        """[latent, density %, max activation, mean activation, dead] rows, largest `sort_by` first."""
        if sort_by not in ("density", "max_act"):
            raise InterpError(f"sort by 'density' or 'max_act', not {sort_by!r}")
        rows = [r for r in self.store(rel).table() if include_dead or not r["dead"]]
        rows.sort(key=lambda r: -r[sort_by])
        return [[r["latent"], round(100 * r["density"], 4), round(r["max_act"], 4), round(r["mean_act"], 4),
                 "dead" if r["dead"] else ""] for r in rows[:limit]]

    def neighbours(self, rel: str, latent: int, n: int = 8) -> list[tuple[int, float]]:
        w = self._decoders(rel)
        cos = w @ w[latent]
        cos[latent] = -2.0
        top = cos.topk(min(n, len(cos) - 1))
        return list(zip(top.indices.tolist(), top.values.tolist()))

    def page(self, rel: str, latent) -> tuple[str, object, str, str]:
        """Feature page: contexts HTML, activation histogram, logit effects HTML, nearest features HTML."""
        import plotly.graph_objects as go

        latent = self._check(rel, latent)
        store = self.store(rel)
        entry, density = store.latent(latent), store.summary["density"][latent]
        fig = go.Figure()
        if entry:
            counts, top = entry["histogram"]["counts"], entry["histogram"]["max"]
            width = top / len(counts)
            fig.add_bar(x=[(i + 0.5) * width for i in range(len(counts))], y=counts, width=width,
                        marker_color="#ed8936")
        fig.update_layout(title=f"latent {latent} · density {100 * density:.3f}%", template="plotly_white",
                          xaxis_title="activation", yaxis_title="count", height=300, margin=dict(t=50, b=40))
        return (html.feature_html(latent, entry, density), fig, html.logits_html(entry),
                html.neighbours_html(self.neighbours(rel, latent)))

    def test_text(self, rel: str, latent, text: str) -> str:
        from saes.steering import text_activations

        latent, text = self._check(rel, latent), _text(text)
        model, sae, hook = self._loaded(rel)
        tokens, acts = text_activations(model, hook, sae, text)
        a = acts[:, latent].tolist()
        scale = self.store(rel).summary["max_act"][latent] or max(a) or 1.0
        return (f"<p>latent {latent}: max {max(a):.3f} on this text</p>"
                + html.tokens_html(tokens, a, scale, max(range(len(a)), key=a.__getitem__)))

    def search(self, rel: str, text: str, n: int = 5) -> str:
        from saes.steering import text_activations

        text = _text(text)
        model, sae, hook = self._loaded(rel)
        tokens, acts = text_activations(model, hook, sae, text)
        per_token = [list(zip(*(v.tolist() for v in reversed(row.topk(n))))) for row in acts]
        best = acts.max(0).values.topk(n)
        return html.search_html(tokens, per_token, list(zip(best.indices.tolist(), best.values.tolist())))

    def steer(self, rel: str, latent, prompt: str, strength: float, amp: float, positions: str,
              n_tokens: int = 12):
        """Yields the page after every model call, generations growing: gradio stops asking, and closes this
        generator, when the client cancels or goes away, so the work stops with it."""
        from contextlib import closing

        from saes.steering import SteerConfig, steer_steps

        latent, prompt, n_tokens = self._check(rel, latent), _text(prompt, "prompt"), _new_tokens(n_tokens)
        model, sae, hook = self._loaded(rel)
        cfg = SteerConfig(latent, strength=strength, amp=amp, positions=positions, n_tokens=n_tokens)
        how = (f"amp {amp} x the position's max activation, {positions} positions, every denoising step"
               if model.is_diffusion else f"+{strength} x decoder direction at {hook}")
        with closing(steer_steps(model, hook, sae, prompt, cfg)) as steps:
            for result in steps:
                yield html.steer_html(result, latent, how)

    def selection(self, rel: str) -> str:
        """An unlearning run's forget and irrelevant features, with their scores and top contexts."""
        import json

        path = self.runs.path(rel)
        if path.name != "selection.json" or not path.exists():
            raise InterpError(f"{rel} is not an unlearning selection.json in the runs directory")
        return html.selection_html(json.loads(path.read_text()))
