"""SAE evaluation on held-out tokens: reconstruction (explained variance, MSE, L0, dead latents) and the
model's loss with the SAE spliced in at the hook.

Reconstruction is measured where training looks: without special positions (sinks) unless the
run kept them (interp/activations.py); `explained_variance_all` counts every position, so the share a sink
takes is visible. The SAE is spliced in at the measured positions only, the others keep their activations.
Peak memory does not grow with the vocabulary: each forward pass holds at most LOGITS_BYTES of logits and the
log-softmax runs on row chunks.

Autoregressive models: next-token cross-entropy. Diffusion models (DLM-Scope): per sequence t ~ U[MIN, MAX],
every token but the first masked with probability t; `ce` is the masked-token CE weighted 1/t and
`ce_unmasked` the visible-token CE weighted 1/(1 - t), both per maskable position. `kl` is KL(clean ||
spliced) over the whole vocabulary, averaged over the positions the CE counts.

A model loaded without a trained LM head (`LoadedModel.head_loaded` False, e.g. a bare `BertModel`) gets the
reconstruction metrics only: CE, ΔCE and KL are None and `ce_skipped` says why, since through a freshly
initialised head they would measure random weights.
"""

from __future__ import annotations

import math
from contextlib import contextmanager

import torch

from interp.errors import InterpError
from interp.seeds import torch_generator

from .architectures import trained_k


def sae_hook_fn(sae, keep: torch.Tensor | None = None):
    """A TransformerLens hook function that replaces the activation by the SAE's reconstruction; with `keep`
    ([B, T] bool) only at those positions, the others pass through unchanged."""

    def hook(act, hook=None):
        recon = sae(act.flatten(2)).view_as(act).to(act.dtype)
        if keep is None:
            return recon
        return torch.where(keep.view(*keep.shape, *[1] * (act.dim() - 2)).to(act.device), recon, act)

    return hook


@contextmanager
def spliced(bridge, hook: str, sae, keep: torch.Tensor | None = None):
    """Run the bridge with `sae` spliced into `hook` (at the `keep` positions): `with spliced(bridge, hook,
    sae): bridge(ids)`."""
    with bridge.hooks(fwd_hooks=[(hook, sae_hook_fn(sae, keep))]):
        yield bridge


def check_d_in(sae, hook: str, act: torch.Tensor) -> None:
    d = act.flatten(2).shape[-1]
    if sae.cfg.d_in != d:
        raise InterpError(f"the SAE's d_in is {sae.cfg.d_in} but hook {hook!r} has width {d}")


def _diffusion_inputs(ids, mask_id, ratio, gen):
    t = (ratio[0] + (ratio[1] - ratio[0]) * torch.rand(len(ids), 1, generator=gen)).to(ids.device)
    masked = (torch.rand(ids.shape, generator=gen) < t.cpu()).to(ids.device)
    masked[:, 0] = False
    return torch.where(masked, torch.full_like(ids, mask_id), ids), masked, t


LOGITS_BYTES = 512 * 2**20  # at most this much per [batch, positions, vocab] logits tensor of the evaluation ...
RAM_SHARE = 8  # ... and at most 1/8 of the memory free when it starts (a clean and a spliced tensor are held)
CHUNK_BYTES = 32 * 2**20  # the log-softmax works on row chunks of this size


def forward_batch(loaded, context_size: int, model_batch: int) -> int:
    """Sequences per evaluation forward pass: `model_batch`, fewer when its logits would not fit the budget
    (a 262,144-token vocabulary makes 64 MiB of float32 logits per 64-token sequence)."""
    from interp.memory import available_bytes

    vocab = loaded.bridge.cfg.d_vocab
    budget = min(LOGITS_BYTES, available_bytes(next(loaded.bridge.parameters()).device) // RAM_SHARE)
    return max(1, min(model_batch, budget // (context_size * vocab * 4)))


def _per_position(logits, spliced_logits, targets):
    """(ce, ce_spliced, kl) per position [B, T'] for the first T' positions of logits [B, T, V], a chunk of
    rows at a time, so the float32 log-softmax copies never exceed CHUNK_BYTES whatever the vocabulary (and
    slicing a sequence's rows is a view: no copy of the whole tensor)."""
    n = targets.shape[1]
    rows = max(1, CHUNK_BYTES // (4 * logits.shape[-1]))
    out = torch.empty(3, *targets.shape, device=logits.device)
    for b in range(len(targets)):
        for a in range(0, n, rows):
            z = min(n, a + rows)
            lp, lq = logits[b, a:z].float().log_softmax(-1), spliced_logits[b, a:z].float().log_softmax(-1)
            tgt = targets[b, a:z, None]
            out[0, b, a:z] = -lp.gather(-1, tgt).squeeze(-1)
            out[1, b, a:z] = -lq.gather(-1, tgt).squeeze(-1)
            out[2, b, a:z] = (lp.exp() * (lp - lq)).sum(-1)
    return out.unbind(0)


def _loss_terms(logits, spliced_logits, ids, diffusion, masked=None, t=None):
    """Summed ce, ce_spliced and kl with their position counts; for DLMs also the unmasked pair."""
    if not diffusion:
        ce, ce_s, kl = _per_position(logits, spliced_logits, ids[:, 1:])
        return {"ce_clean": ce.sum(), "ce_spliced": ce_s.sum(), "kl": kl.sum(), "n_pos": ce.numel(), "n_kl": ce.numel()}
    ce, ce_s, kl = _per_position(logits, spliced_logits, ids)
    m, u = masked.float(), (~masked).float()
    u[:, 0] = 0  # the first token is never masked: not a maskable position
    return {"ce_clean": (ce * m / t).sum(), "ce_spliced": (ce_s * m / t).sum(), "kl": (kl * m).sum(),
            "ce_clean_unmasked": (ce * u / (1 - t)).sum(), "ce_spliced_unmasked": (ce_s * u / (1 - t)).sum(),
            "n_pos": len(ids) * (ids.shape[1] - 1), "n_kl": m.sum()}


def _reconstruction_terms(x, recon, feats, suffix: str = "") -> dict:
    """Sums for explained variance (against the mean of all evaluated activations), MSE and L0."""
    return {f"sq_err{suffix}": (recon - x).double().pow(2).sum(), f"sum_sq{suffix}": x.double().pow(2).sum(),
            f"sum_x{suffix}": x.double().sum(0), f"l0{suffix}": (feats > 0).sum(), f"n_acts{suffix}": len(x),
            f"n_elems{suffix}": x.numel()}


def ce_skip_reason(loaded) -> str:
    return (f"{loaded.name} has no trained LM head (its checkpoint lacks the head's weights), so CE, ΔCE and KL "
            "would be measured through random weights")


@torch.no_grad()
def evaluate_saes(loaded, saes: dict, dataset: str = "corpus", context_size: int = 64, n_tokens: int = 65_536,
                  seed: int = 0, model_batch: int = 64, mask_ratio: tuple[float, float] = (0.05, 0.5),
                  mask_policy: str = "mask", keep_special_positions: bool = False) -> dict[str, dict]:
    """Metrics for each SAE in `saes` ({name: (hook, sae)}) on `n_tokens` held-out tokens. Reconstruction is
    measured on the positions training keeps (without special positions unless `keep_special_positions`),
    `explained_variance_all` on every position; the SAE is spliced in at the kept positions only."""
    from interp.activations import ordinary_positions, special_token_ids, stop_layer
    from interp.datasets import token_batches
    from interp.loading import check_context

    check_context(loaded, context_size)
    bridge = loaded.bridge
    diffusion = loaded.is_diffusion
    with_ce = loaded.head_loaded
    hooks = sorted({h for h, _ in saes.values()})
    # without a head only activations are read: the forward can stop after the last hooked block
    run_kw = {} if with_ce else {"stop_at_layer": stop_layer(hooks)}
    n_batches = max(1, math.ceil(n_tokens / (context_size * model_batch)))
    # the tokens are drawn in batches of `model_batch` whatever the memory allows, so the numbers do not
    # depend on the machine; each batch runs in forward passes of `step` sequences
    step = forward_batch(loaded, context_size, model_batch) if with_ce else model_batch
    batches = token_batches(dataset, loaded.tokenizer, model_batch, context_size, seed, purpose="sae-eval",
                           split="heldout")
    special = special_token_ids(loaded.tokenizer)
    gen = torch_generator(seed, "sae-eval/masks")
    acc = {name: {} for name in saes}
    fired = {name: torch.zeros(sae.cfg.d_sae, dtype=torch.bool, device=sae.W_dec.device)
             for name, (_, sae) in saes.items()}
    count = 0
    device = next(bridge.parameters()).device
    for _ in range(n_batches):
        all_ids = next(batches).to(device)
        masked_all = t_all = None
        all_inputs = all_ids
        if diffusion:
            all_inputs, masked_all, t_all = _diffusion_inputs(all_ids, loaded.tokenizer.mask_token_id, mask_ratio, gen)
        for a in range(0, len(all_ids), step):
            ids, inputs = all_ids[a:a + step], all_inputs[a:a + step]
            masked = None if masked_all is None else masked_all[a:a + step]
            t = None if t_all is None else t_all[a:a + step]
            logits, cache = bridge.run_with_cache(inputs, names_filter=hooks, **run_kw)
            # reconstruction is measured on the activations the training stream keeps
            keep = torch.ones_like(ids, dtype=torch.bool)
            recon_cache = cache
            if diffusion and mask_policy == "clean":
                recon_cache = bridge.run_with_cache(ids, names_filter=hooks, **run_kw)[1]
            elif diffusion and mask_policy in ("mask", "unmask"):
                keep = masked if mask_policy == "mask" else ~masked
            splice_at = None if keep_special_positions else ordinary_positions(
                ids, special, [recon_cache[h] for h in hooks])
            ordinary = keep if splice_at is None else keep & splice_at
            for name, (hook, sae) in saes.items():
                check_d_in(sae, hook, cache[hook])
                x_all = recon_cache[hook].flatten(2)[keep].float()
                feats_all = sae.encode(x_all)
                recon_all = sae.decode(feats_all)
                sel = ordinary[keep]
                x, feats, recon = x_all[sel], feats_all[sel], recon_all[sel]
                fired[name] |= (feats > 0).any(0)
                terms = {}
                if with_ce:
                    with spliced(bridge, hook, sae, splice_at):
                        spliced_logits = bridge(inputs)
                    terms = _loss_terms(logits, spliced_logits, ids, diffusion, masked, t)
                    del spliced_logits
                terms.update(_reconstruction_terms(x, recon, feats))
                terms.update(_reconstruction_terms(x_all, recon_all, feats_all, "_all"))
                for key, v in terms.items():
                    v = v.double().cpu() if torch.is_tensor(v) and v.dim() else float(v)
                    acc[name][key] = acc[name].get(key, 0.0) + v
            del logits, cache, recon_cache
        count += all_ids.numel()
    return {name: _metrics(loaded, hook, sae, acc[name], fired[name], count) for name, (hook, sae) in saes.items()}


def _explained_variance(a: dict, suffix: str = "") -> float:
    n = a[f"n_acts{suffix}"]
    if not n:
        return float("nan")
    total = a[f"sum_sq{suffix}"] - float(a[f"sum_x{suffix}"].pow(2).sum()) / n
    return 1 - a[f"sq_err{suffix}"] / total


def _metrics(loaded, hook: str, sae, a: dict, fired: torch.Tensor, count: int) -> dict:
    """One SAE's metrics from the sums `evaluate_saes` accumulated."""
    diffusion = loaded.is_diffusion
    m = {"explained_variance": _explained_variance(a), "explained_variance_all": _explained_variance(a, "_all"),
         "mse": a["sq_err"] / max(1, a["n_elems"]), "l0": a["l0"] / max(1, a["n_acts"]),
         "dead_fraction": 1 - fired.float().mean().item(), "eval_positions": int(a["n_acts"]),
         "eval_positions_all": int(a["n_acts_all"])}
    ce_keys = ["ce_clean", "ce_spliced", "delta_ce", "kl"]
    ce_keys += ["ce_clean_unmasked", "ce_spliced_unmasked", "delta_ce_unmasked"] if diffusion else []
    if loaded.head_loaded:
        m.update(ce_clean=a["ce_clean"] / a["n_pos"], ce_spliced=a["ce_spliced"] / a["n_pos"], kl=a["kl"] / a["n_kl"])
        m["delta_ce"] = m["ce_spliced"] - m["ce_clean"]
        if diffusion:
            m["ce_clean_unmasked"] = a["ce_clean_unmasked"] / a["n_pos"]
            m["ce_spliced_unmasked"] = a["ce_spliced_unmasked"] / a["n_pos"]
            m["delta_ce_unmasked"] = m["ce_spliced_unmasked"] - m["ce_clean_unmasked"]
    else:  # null rather than absent: readers of metrics.json see the metric exists and was not measured
        m.update(dict.fromkeys(ce_keys), ce_skipped=ce_skip_reason(loaded))
    m.update(model=loaded.name, hook=hook, k=trained_k(sae), d_sae=sae.cfg.d_sae, eval_tokens=count,
             ce_kind="masked-token CE weighted 1/t" if diffusion else "next-token CE")
    return m
