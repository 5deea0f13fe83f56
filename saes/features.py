"""Feature statistics the app shows, per latent: firing density, activation histogram, top-activating
contexts grouped by activation quantile, and the decoder direction's top positive and negative logit
effects through the unembedding (W_dec @ W_U, ignoring the final layer norm, as Neuronpedia does).
"""

from __future__ import annotations

import math

import torch

from interp.seeds import torch_generator

WINDOW_BEFORE, WINDOW_AFTER = 10, 3
CHUNK_BYTES = 64 * 2**20  # logit effects are computed for this many bytes of [latents, vocab] at a time


def _context(tokens: list[str], ids: torch.Tensor, seq: int, pos: int, latent_acts: dict[int, float],
             context_size: int, value: float) -> dict:
    lo, hi = max(0, pos - WINDOW_BEFORE), min(context_size, pos + WINDOW_AFTER + 1)
    flat = seq * context_size
    return {"tokens": [tokens[i] for i in ids[seq, lo:hi].tolist()], "pos": pos - lo, "act": round(value, 4),
            "acts": [round(latent_acts.get(flat + p, 0.0), 3) for p in range(lo, hi)]}


@torch.no_grad()
def feature_stats(loaded, hook: str, sae, dataset: str = "corpus", context_size: int = 64, n_tokens: int = 65_536,
                  seed: int = 0, model_batch: int = 64, n_top: int = 8, n_quantiles: int = 4, per_quantile: int = 3,
                  n_logits: int = 8, n_bins: int = 16, keep_special_positions: bool = False) -> dict:
    """Statistics for every latent of `sae` on `n_tokens` corpus tokens (clean inputs; the positions training
    keeps: without special positions unless `keep_special_positions`, interp/activations.py)."""
    vocab = loaded.tokenizer.convert_ids_to_tokens(list(range(len(loaded.tokenizer))))
    ids, rows, cols, vals, n_kept = _activations(loaded, hook, sae, dataset, context_size, n_tokens, seed,
                                                 model_batch, keep_special_positions)
    d_sae = sae.cfg.d_sae
    count = torch.zeros(d_sae).index_add_(0, cols, torch.ones_like(vals))
    total = torch.zeros(d_sae).index_add_(0, cols, vals)
    max_act = torch.zeros(d_sae).scatter_reduce_(0, cols, vals, "amax")
    logit_w = _logit_effects(loaded, sae, n_logits)
    gen = torch_generator(seed, "sae-features/examples")
    order = torch.argsort(cols, stable=True)
    rows, cols, vals = rows[order], cols[order], vals[order]
    bounds = torch.searchsorted(cols, torch.arange(d_sae + 1))
    latents = {}
    for l in range(d_sae):
        a, b = bounds[l].item(), bounds[l + 1].item()
        if a == b:
            continue
        r, v = rows[a:b], vals[a:b]
        contexts = _Contexts(vocab, ids, r, v, context_size)
        entry = {"density": count[l].item() / n_kept, "mean_act": total[l].item() / count[l].item(),
                 "max_act": max_act[l].item(),
                 "histogram": {"max": max_act[l].item(), "counts": torch.histc(
                     v, bins=n_bins, min=0, max=max(v.max().item(), 1e-6)).long().tolist()},
                 "top": [contexts(i) for i in range(min(n_top, len(v)))],
                 "quantiles": contexts.quantiles(n_quantiles, per_quantile, gen)}
        if logit_w is not None:
            pv, pi, nv, ni = (t[l] for t in logit_w)
            entry["logits"] = {"positive": [[vocab[i], round(x, 4)] for i, x in zip(pi.tolist(), pv.tolist())],
                               "negative": [[vocab[i], round(-x, 4)] for i, x in zip(ni.tolist(), nv.tolist())]}
        latents[str(l)] = entry
    return {"hook": hook, "d_sae": d_sae, "tokens": ids.numel(), "positions": n_kept, "density": (count / n_kept).tolist(),
            "window": [WINDOW_BEFORE, WINDOW_AFTER], "latents": latents}


def _activations(loaded, hook, sae, dataset, context_size, n_tokens, seed, model_batch, keep_special_positions):
    """(token ids [n_seq, context], the non-zero latent activations at kept positions as flat row, latent,
    value, and the number of kept positions)."""
    from interp.activations import ordinary_positions, special_token_ids, stop_layer
    from interp.datasets import token_batches
    from interp.loading import check_context

    check_context(loaded, context_size)
    stop = stop_layer([hook])  # only the hook's activations are read: no need to run the blocks above it
    n_batches = max(1, math.ceil(n_tokens / (context_size * model_batch)))
    batches = token_batches(dataset, loaded.tokenizer, model_batch, context_size, seed, purpose="sae-features")
    all_ids, rows, cols, vals = [], [], [], []
    offset = n_kept = 0
    special = special_token_ids(loaded.tokenizer)
    for _ in range(n_batches):
        ids = next(batches).to(next(loaded.bridge.parameters()).device)
        _, cache = loaded.bridge.run_with_cache(ids, names_filter=[hook], stop_at_layer=stop)
        feats = sae.encode(cache[hook].flatten(2).flatten(0, 1))
        if not keep_special_positions:
            keep = ordinary_positions(ids, special, [cache[hook]]).flatten()
            feats = feats * keep[:, None]
            n_kept += int(keep.sum())
        else:
            n_kept += len(feats)
        r, c = feats.nonzero(as_tuple=True)
        rows.append(r.cpu() + offset); cols.append(c.cpu()); vals.append(feats[r, c].cpu())
        all_ids.append(ids.cpu())
        offset += len(feats)
    return torch.cat(all_ids), torch.cat(rows), torch.cat(cols), torch.cat(vals), max(1, n_kept)


class _Contexts:
    """One latent's activating contexts, strongest first."""

    def __init__(self, vocab, ids, rows, values, context_size):
        self.vocab, self.ids, self.context_size = vocab, ids, context_size
        self.acts = dict(zip(rows.tolist(), values.tolist()))
        self.values, order = values.sort(descending=True)
        self.rows = rows[order]

    def __call__(self, i: int) -> dict:
        flat = self.rows[i].item()
        return _context(self.vocab, self.ids, flat // self.context_size, flat % self.context_size, self.acts,
                        self.context_size, self.values[i].item())

    def quantiles(self, n_quantiles: int, per_quantile: int, gen: torch.Generator) -> list[dict]:
        """Equal-count bands from the strongest activations down, a few random examples from each."""
        out = []
        edges = torch.linspace(0, len(self.values), n_quantiles + 1).long().tolist()
        for lo, hi in zip(edges, edges[1:]):
            if hi <= lo:
                continue
            pick = (lo + torch.randperm(hi - lo, generator=gen)[:per_quantile]).sort().values.tolist()
            out.append({"range": [round(self.values[hi - 1].item(), 4), round(self.values[lo].item(), 4)],
                        "examples": [self(i) for i in pick]})
        return out


def _logit_effects(loaded, sae, n: int):
    """The top `n` positive and negative direct logit effects of each decoder direction, as (positive values,
    their token ids, negated negative values, their ids), [d_sae, n] each, when the hook lives in d_model and
    the model's head came from its checkpoint (through a freshly initialised one the effects would be noise). Computed for a block of latents
    at a time: the whole [d_sae, vocab] matrix is gigabytes for a large vocabulary."""
    if not loaded.head_loaded:
        return None
    # [vocab, d_model]; rows past the tokenizer (a vocabulary padded to a round size) name no token
    W_U = loaded.model.get_output_embeddings().weight[: len(loaded.tokenizer)]
    if W_U.shape[1] != sae.cfg.d_in:
        return None
    W_U = W_U.detach().to(sae.W_dec.device, sae.W_dec.dtype)  # a bfloat16 model's head, an SAE in float32
    n = min(n, len(W_U))
    block = max(1, CHUNK_BYTES // (4 * len(W_U)))
    pos, neg = [], []
    for a in range(0, sae.cfg.d_sae, block):
        w = sae.W_dec.detach()[a:a + block] @ W_U.T
        pos.append(w.topk(n))
        neg.append((-w).topk(n))
    cat = lambda parts: (torch.cat([p.values for p in parts]).cpu(), torch.cat([p.indices for p in parts]).cpu())  # noqa: E731
    return (*cat(pos), *cat(neg))
