"""Per-token feature activations on a text, and steering with an SAE feature.

Autoregressive: add `strength x` the feature's (unit) decoder direction at the hook, every position, and
decode greedily. Diffusion (DLM-Scope's diffusion-time steering, METHODS.md §2): at every denoising step of the
remasking sampler, encode the hook's activation, add `amp x` that position's largest SAE activation to the
feature, decode, and add back the SAE's reconstruction error; on all positions or only where the feature is
most active.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import torch

from interp.errors import InterpError


def _flat(act: torch.Tensor) -> torch.Tensor:
    return act.flatten(2)  # attention hooks are [batch, pos, head, d_head]; SAEs read them flattened


@torch.no_grad()
def text_activations(loaded, hook: str, sae, text: str) -> tuple[list[str], torch.Tensor]:
    """The text's tokens and the SAE's latent activations at each, [n_tokens, d_sae]."""
    ids = loaded.tokenizer(text, return_tensors="pt")["input_ids"]
    if ids.shape[1] == 0:
        raise InterpError("the text has no tokens")
    _, cache = loaded.bridge.run_with_cache(ids, names_filter=[hook])
    acts = sae.encode(_flat(cache[hook])[0])
    return loaded.tokenizer.convert_ids_to_tokens(ids[0].tolist()), acts


@dataclass
class SteerConfig:
    latent: int
    strength: float = 8.0  # AR: multiple of the unit decoder direction
    amp: float = 2.0  # diffusion: multiple of the position's largest SAE activation
    positions: str = "all"  # diffusion: "all" or "active" (where the feature is most active)
    n_tokens: int = 12
    steps: int | None = None  # diffusion denoising steps (default n_tokens)


def _ar_hook(sae, latent: int, strength: float):
    direction = sae.W_dec[latent].detach()

    def add(act, hook):
        return act + strength * direction.view(act.shape[2:])
    return add


def _diffusion_hook(sae, latent: int, amp: float, positions: str):
    def steer(act, hook):
        x = _flat(act)
        f = sae.encode(x)
        error = x - sae.decode(f)
        boost = amp * f.max(-1).values  # each position's largest SAE activation
        if positions == "active":  # only where this feature is most active: its top quarter of positions
            mine = f[..., latent]
            cut = mine.quantile(0.75, dim=-1, keepdim=True)
            boost = boost * ((mine >= cut) & (mine > 0))
        f = f.clone()
        f[..., latent] += boost
        return (sae.decode(f) + error).view(act.shape)
    return steer


@torch.no_grad()
def _greedy(bridge, ids: torch.Tensor, n_tokens: int, hooks: list) -> torch.Tensor:
    for _ in range(n_tokens):
        logits = bridge.run_with_hooks(ids, fwd_hooks=hooks)
        ids = torch.cat([ids, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    return ids


@torch.no_grad()
def steer(loaded, hook: str, sae, prompt: str, cfg: SteerConfig) -> dict:
    """Default and steered continuations of `prompt` (greedy; the diffusion model fills `n_tokens` masks)."""
    from interp.diffusion import sample

    if not 0 <= cfg.latent < sae.cfg.d_sae:
        raise InterpError(f"latent {cfg.latent} is out of range; this SAE has latents 0..{sae.cfg.d_sae - 1}")
    if cfg.positions not in ("all", "active"):
        raise InterpError(f"positions must be 'all' or 'active', got {cfg.positions!r}")
    if cfg.n_tokens < 1:
        raise InterpError("n_tokens must be >= 1")
    tok, bridge = loaded.tokenizer, loaded.bridge
    ids = tok(prompt, return_tensors="pt")["input_ids"]
    if loaded.is_diffusion:
        hooks = [(hook, _diffusion_hook(sae, cfg.latent, cfg.amp, cfg.positions))]

        def run(fwd_hooks):
            model = lambda input_ids: SimpleNamespace(logits=bridge.run_with_hooks(input_ids, fwd_hooks=fwd_hooks))
            return sample(model, ids, tok.mask_token_id, gen_length=cfg.n_tokens, steps=cfg.steps or cfg.n_tokens)
    else:
        hooks = [(hook, _ar_hook(sae, cfg.latent, cfg.strength))]
        run = lambda fwd_hooks: _greedy(bridge, ids, cfg.n_tokens, fwd_hooks)
    text = lambda out: tok.decode(out[0, ids.shape[1]:].tolist())
    return {"prompt": prompt, "default": text(run([])), "steered": text(run(hooks)),
            "mode": "diffusion" if loaded.is_diffusion else "autoregressive"}
