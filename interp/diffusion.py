"""Masked diffusion LM pieces (LLaDA): the training objective and the remasking sampler.

The sampler commits, at each step, the masked positions its remasking strategy ranks first: `low_confidence`
(LLaDA's default: the highest probability of the predicted token), `margin` (the largest gap between the top two
probabilities), `entropy` (the lowest entropy of the predicted distribution) or `random` (a uniform order drawn
from the sampler's generator).

The zoo's diffusion model is a GPT-NeoX with `is_causal=False` (bidirectional attention) and a `<mask>`
token; these functions work on any HF model whose forward returns per-position logits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def llada_loss(model, input_ids: torch.Tensor, mask_id: int, eps: float = 1e-3, generator=None) -> torch.Tensor:
    """LLaDA objective: t ~ U(eps, 1] per sequence, mask each token but the first with probability t,
    cross-entropy on the masked positions weighted 1/t, averaged over all positions."""
    b, n = input_ids.shape
    t = eps + (1 - eps) * torch.rand(b, 1, generator=generator)
    masked = torch.rand(b, n, generator=generator) < t
    masked[:, 0] = False
    noisy = torch.where(masked, torch.full_like(input_ids, mask_id), input_ids)
    logits = model(input_ids=noisy).logits
    ce = F.cross_entropy(logits.transpose(1, 2), input_ids, reduction="none")
    return (ce * masked / t).sum() / (b * n)


REMASKING = ("low_confidence", "margin", "entropy", "random")


def _priority(logits: torch.Tensor, pred: torch.Tensor, remasking: str, generator) -> torch.Tensor:
    """[batch, pos] how soon each position should be committed (higher first); every value is >= 0, so the
    sampler's -1 for positions outside the block stays last."""
    if remasking == "random":
        return torch.rand(pred.shape, generator=generator, device=pred.device)
    probs = F.softmax(logits.float(), dim=-1)
    if remasking == "low_confidence":
        return probs.gather(-1, pred[..., None])[..., 0]
    if remasking == "margin":
        top2 = probs.topk(2, dim=-1).values
        return top2[..., 0] - top2[..., 1]
    entropy = -(probs * probs.clamp_min(1e-30).log()).sum(-1)
    return 1.0 / (1.0 + entropy)  # entropy: lowest first


@torch.no_grad()
def sample(model, prompt_ids: torch.Tensor, mask_id: int, gen_length: int = 8, denoise_steps: int = 8,
           block_length: int | None = None, temperature: float = 0.0, generator=None,
           remasking: str = "low_confidence") -> torch.Tensor:
    """The remasking sampler (LLaDA): answer positions start as `<mask>`; each step predicts every masked
    position and commits an even share of them, those `remasking` ranks first (module docstring), block by block
    (semi-autoregressive when `block_length < gen_length`). Returns prompt + generated ids, shape
    (batch, prompt_len + gen_length)."""
    block_length = block_length or gen_length
    if gen_length % block_length or denoise_steps % (gen_length // block_length):
        raise ValueError("gen_length must be a multiple of block_length and denoise_steps of the number of blocks")
    if remasking not in REMASKING:
        raise ValueError(f"remasking must be one of {', '.join(REMASKING)}, got {remasking!r}")
    b, p = prompt_ids.shape
    x = torch.cat([prompt_ids, torch.full((b, gen_length), mask_id, dtype=prompt_ids.dtype, device=prompt_ids.device)], dim=1)
    n_blocks = gen_length // block_length
    steps_per_block = denoise_steps // n_blocks
    for blk in range(n_blocks):
        lo, hi = p + blk * block_length, p + (blk + 1) * block_length
        remaining = (x[:, lo:hi] == mask_id).sum(1)
        for s in range(steps_per_block):
            logits = model(input_ids=x).logits
            if temperature > 0:
                probs = F.softmax(logits / temperature, dim=-1)
                pred = torch.multinomial(probs.view(-1, probs.shape[-1]), 1, generator=generator).view(b, -1)
            else:
                pred = logits.argmax(-1)
            conf = _priority(logits, pred, remasking, generator)
            is_mask = x == mask_id
            conf = torch.where(is_mask, conf, torch.full_like(conf, -1.0))
            conf[:, :lo] = -1.0
            conf[:, hi:] = -1.0
            # commit an even share of this block's masks per step; the last step commits the rest
            n_commit = torch.div(remaining, steps_per_block, rounding_mode="floor")
            n_commit += (s < remaining % steps_per_block).long()
            for i in range(b):
                k = int(n_commit[i])
                if k:
                    idx = conf[i].topk(k).indices
                    x[i, idx] = pred[i, idx]
    return x
