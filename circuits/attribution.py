"""Edge attribution: EAP and EAP-IG (integrated gradients over the input embeddings).

score(u -> v) = sum over examples and positions of (a_u(corrupted) - a_u(clean)) . dM/d(input of v),
averaged over examples (and over IG steps): the first-order change of the metric M when the edge is patched
from the corrupted run. The gradient is read at v's input hook by a tensor hook that folds it into the
[n_src, n_dst] score matrix at once, so memory holds the source outputs of one batch plus one gradient, and
grows with the number of edges, never with edges x positions x batch.

On long contexts the source outputs of one batch ([B, T, n_src, d]) are what fills memory. With
`position_chunk` P they are held for P positions at a time: each chunk reruns the clean and corrupted passes
keeping only its positions, and the gradient runs fold only its positions into the scores. The scores are the
same sums, in another order; the cost is the passes, once per chunk.

The method (circuits/methods/) says where along the path from the corrupted to the clean input embeddings
the gradient is read: EAP at one end, EAP-IG at `ig_steps` points, averaged.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from interp.errors import InterpError

from .data import TaskBatch, alternative, check_metric, kl
from .layout import Layout
from .methods import ATTRIBUTION_METHODS
from .runs import as_heads, node_outputs



@dataclass
class AttributionConfig:
    method: str = "eap-ig"
    metric: str = "kl"
    ig_steps: int = 5  # interpolation points of EAP-IG
    eap_at: str = "auto"  # "auto", "clean" or "corrupted"
    position_chunk: int = 0  # positions whose source outputs are held at once; 0: the whole context

    def validate(self) -> None:
        if self.method not in ATTRIBUTION_METHODS:
            raise InterpError(f"unknown attribution method {self.method!r}; valid: {', '.join(ATTRIBUTION_METHODS)}")
        check_metric(self.metric)
        if self.ig_steps < 1:
            raise InterpError("--ig-steps must be >= 1")
        if self.eap_at not in ("auto", "clean", "corrupted"):
            raise InterpError("eap_at must be auto, clean or corrupted")
        if self.position_chunk < 0:
            raise InterpError("--position-chunk must be >= 0 (0: the whole context)")

    def alphas(self) -> list[float]:
        """Where gradients are read, as the share of the way from corrupted (0) to clean (1) embeddings."""
        return ATTRIBUTION_METHODS[self.method](self)


@contextmanager
def frozen(model):
    """No parameter gradients during attribution (they would cost time and memory for nothing)."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def metric_value(metric: str, logits: torch.Tensor, clean_logits: torch.Tensor, batch: TaskBatch, alt) -> torch.Tensor:
    """Summed over the batch and the answer's positions (circuits/data.py)."""
    if metric == "kl":
        return kl(batch.answer(logits), batch.answer(clean_logits)).sum()
    return batch.score(metric, batch.answer(logits), alt).sum()


def attribute(bridge, layout: Layout, batches: list[TaskBatch], cfg: AttributionConfig = AttributionConfig(),
              show_progress: bool = False) -> torch.Tensor:
    """Edge scores in `layout.graph.edges` order, averaged over examples."""
    cfg.validate()
    scores = torch.zeros(layout.n_src, layout.n_dst)
    n = 0
    alphas = cfg.alphas()
    spans = [_spans(b.clean.shape[1], cfg.position_chunk) for b in batches]
    bar = tqdm(total=sum(map(len, spans)) * len(alphas), desc=f"{cfg.method} ({cfg.metric})",
               disable=not show_progress)
    with frozen(bridge):
        for batch, batch_spans in zip(batches, spans):
            clean_embed = corrupted_embed = None
            for span in batch_spans:
                clean_logits, clean_out = node_outputs(bridge, layout, batch.clean, span)
                corrupted_logits, delta = node_outputs(bridge, layout, batch.corrupted, span)
                if clean_embed is None:  # the interpolation needs every position's embedding
                    if len(batch_spans) == 1:
                        clean_embed, corrupted_embed = clean_out[:, :, 0].clone(), delta[:, :, 0].clone()
                    else:
                        clean_embed, corrupted_embed = _embedding(bridge, batch.clean), _embedding(bridge, batch.corrupted)
                delta -= clean_out  # in place: only the difference is kept
                del clean_out
                alt = alternative(batch.answer(corrupted_logits), batch.labels)
                for alpha in alphas:
                    embeds = corrupted_embed + alpha * (clean_embed - corrupted_embed)
                    _accumulate(bridge, layout, batch, embeds, delta, span, scores,
                                lambda logits: metric_value(cfg.metric, logits, clean_logits, batch, alt))
                    bar.update()
            n += len(batch)
    bar.close()
    return layout.from_matrix(scores / (n * len(alphas)))


def _spans(width: int, chunk: int) -> list[slice]:
    step = chunk or width
    return [slice(i, i + step) for i in range(0, width, step)]


@torch.no_grad()
def _embedding(bridge, tokens: torch.Tensor) -> torch.Tensor:
    kept = []

    def keep(x, hook):
        kept.append(x.detach())
        raise _Embedded

    try:
        with bridge.hooks(fwd_hooks=[("hook_embed", keep)]):
            bridge(tokens)
    except _Embedded:  # nothing past the embedding is needed
        pass
    return kept[0]


class _Embedded(Exception):
    pass


def _accumulate(bridge, layout, batch, embeds, delta, span, scores, metric_fn) -> None:
    def set_embeds(x, hook):
        return embeds.detach().requires_grad_(True)

    def fold(site):
        def on_grad(g):
            scores[:, site.start:site.stop] += torch.einsum("btsd,btkd->sk", delta, as_heads(g, site)[:, span]).detach()

        def fn(x, hook):
            # a fresh tensor: the one the hook receives may also carry the residual stream past the node
            # (the Bridge hands `hook_mlp_in` the block input itself), and its gradient would include that path
            x = x.clone()
            x.register_hook(on_grad)
            return x
        return fn

    hooks = [("hook_embed", set_embeds)] + [(s.hook, fold(s)) for s in layout.dests]
    with torch.enable_grad(), bridge.hooks(fwd_hooks=hooks):
        metric_fn(bridge(batch.clean)).backward()
