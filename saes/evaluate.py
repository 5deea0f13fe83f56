"""SAE evaluation on held-out tokens: reconstruction (explained variance, MSE, L0, dead latents) and the
model's loss with the SAE spliced in at every position of the hook.

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


def sae_hook_fn(sae):
    """A TransformerLens hook function that replaces the activation by the SAE's reconstruction."""

    def hook(act, hook=None):
        return sae(act.flatten(2)).view_as(act).to(act.dtype)

    return hook


@contextmanager
def spliced(bridge, hook: str, sae):
    """Run the bridge with `sae` spliced into `hook`: `with spliced(bridge, hook, sae): bridge(ids)`."""
    with bridge.hooks(fwd_hooks=[(hook, sae_hook_fn(sae))]):
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


def _loss_terms(logits, spliced_logits, ids, diffusion, masked=None, t=None):
    """Summed ce, ce_spliced and kl with their position counts; for DLMs also the unmasked pair."""
    if not diffusion:
        lp, lq = logits[:, :-1].log_softmax(-1), spliced_logits[:, :-1].log_softmax(-1)
        target = ids[:, 1:]
        ce = -lp.gather(-1, target[..., None]).squeeze(-1)
        ce_s = -lq.gather(-1, target[..., None]).squeeze(-1)
        kl = (lp.exp() * (lp - lq)).sum(-1)
        return {"ce_clean": ce.sum(), "ce_spliced": ce_s.sum(), "kl": kl.sum(), "n_pos": ce.numel(), "n_kl": ce.numel()}
    lp, lq = logits.log_softmax(-1), spliced_logits.log_softmax(-1)
    ce = -lp.gather(-1, ids[..., None]).squeeze(-1)
    ce_s = -lq.gather(-1, ids[..., None]).squeeze(-1)
    kl = (lp.exp() * (lp - lq)).sum(-1)
    m, u = masked.float(), (~masked).float()
    u[:, 0] = 0  # the first token is never masked: not a maskable position
    return {"ce_clean": (ce * m / t).sum(), "ce_spliced": (ce_s * m / t).sum(), "kl": (kl * m).sum(),
            "ce_clean_unmasked": (ce * u / (1 - t)).sum(), "ce_spliced_unmasked": (ce_s * u / (1 - t)).sum(),
            "n_pos": len(ids) * (ids.shape[1] - 1), "n_kl": m.sum()}


def ce_skip_reason(loaded) -> str:
    return (f"{loaded.name} has no trained LM head (its checkpoint lacks the head's weights), so CE, ΔCE and KL "
            "would be measured through random weights")


@torch.no_grad()
def evaluate_saes(loaded, saes: dict, dataset: str = "corpus", context_size: int = 64, n_tokens: int = 65_536,
                  seed: int = 0, model_batch: int = 64, mask_ratio: tuple[float, float] = (0.05, 0.5),
                  mask_policy: str = "mask") -> dict[str, dict]:
    """Metrics for each SAE in `saes` ({name: (hook, sae)}) on `n_tokens` held-out tokens."""
    from interp.activations import stop_layer
    from interp.datasets import token_batches
    from interp.loading import check_context

    check_context(loaded, context_size)
    bridge = loaded.bridge
    diffusion = loaded.is_diffusion
    with_ce = loaded.head_loaded
    # without a head only activations are read: the forward can stop after the last hooked block
    run_kw = {} if with_ce else {"stop_at_layer": stop_layer(sorted({h for h, _ in saes.values()}))}
    n_batches = max(1, math.ceil(n_tokens / (context_size * model_batch)))
    batches = token_batches(dataset, loaded.tokenizer, model_batch, context_size, seed, purpose="sae-eval",
                           split="heldout")
    gen = torch_generator(seed, "sae-eval/masks")
    hooks = sorted({h for h, _ in saes.values()})
    acc = {name: {} for name in saes}
    fired = {name: torch.zeros(sae.cfg.d_sae, dtype=torch.bool, device=sae.W_dec.device)
             for name, (_, sae) in saes.items()}
    count = 0
    for _ in range(n_batches):
        ids = next(batches).to(next(bridge.parameters()).device)
        masked = t = None
        inputs = ids
        if diffusion:
            inputs, masked, t = _diffusion_inputs(ids, loaded.tokenizer.mask_token_id, mask_ratio, gen)
        logits, cache = bridge.run_with_cache(inputs, names_filter=hooks, **run_kw)
        # reconstruction is measured on the activations the training stream keeps
        keep = torch.ones_like(ids, dtype=torch.bool)
        recon_cache = cache
        if diffusion and mask_policy == "clean":
            recon_cache = bridge.run_with_cache(ids, names_filter=hooks, **run_kw)[1]
        elif diffusion and mask_policy in ("mask", "unmask"):
            keep = masked if mask_policy == "mask" else ~masked
        for name, (hook, sae) in saes.items():
            check_d_in(sae, hook, cache[hook])
            x = recon_cache[hook].flatten(2)[keep]
            feats = sae.encode(x)
            recon = sae.decode(feats)
            fired[name] |= (feats > 0).any(0)
            terms = {}
            if with_ce:
                with spliced(bridge, hook, sae):
                    spliced_logits = bridge(inputs)
                terms = _loss_terms(logits, spliced_logits, ids, diffusion, masked, t)
            terms.update(sq_err=(recon - x).pow(2).sum(), sq_dev=(x - x.mean(0)).pow(2).sum(),
                         l0=(feats > 0).sum(), n_acts=len(x), n_elems=x.numel())
            for key, v in terms.items():
                acc[name][key] = acc[name].get(key, 0.0) + float(v)
            count += ids.numel()
    return {name: _metrics(loaded, hook, sae, acc[name], fired[name], count) for name, (hook, sae) in saes.items()}


def _metrics(loaded, hook: str, sae, a: dict, fired: torch.Tensor, count: int) -> dict:
    """One SAE's metrics from the sums `evaluate_saes` accumulated."""
    diffusion = loaded.is_diffusion
    m = {"explained_variance": 1 - a["sq_err"] / a["sq_dev"], "mse": a["sq_err"] / a["n_elems"],
         "l0": a["l0"] / a["n_acts"], "dead_fraction": 1 - fired.float().mean().item()}
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
