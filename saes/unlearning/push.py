"""The RMU-style update SSPU and RMU share: forget activations at layer l pushed toward c*u (or another per-position
distance), retain and corpus activations held to the frozen model's; and how u is drawn and chosen.

Push weights (`--push-weight`): "uniform" averages the push over every pushed position; "known" weights each
forget prompt's positions by the model's current probability of its answer plus KNOWN_FLOOR, so the push goes
where the model still answers, not to prompts it already gets wrong.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import torch
import torch.nn.functional as F

from interp.seeds import torch_generator

from .hooks import answer_prob, edit_output, resid

if TYPE_CHECKING:
    from .data import Batch
    from .method import Context

KNOWN_FLOOR = 0.1  # "known" push weights: forgotten prompts keep this much, so they stay pushed


@torch.no_grad()
def known_weights(model, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """[n] the model's probability of each prompt's answer, plus KNOWN_FLOOR."""
    return answer_prob(model, inputs, targets) + KNOWN_FLOOR


def toward(target: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """Per-position distance to `target` (c * u), averaged over dimensions."""
    return lambda h: ((h - target) ** 2).mean(-1)


def push_loss(model, h: torch.Tensor, group: tuple, distance, push_weight: str) -> torch.Tensor:
    """The push on one forget group's activations `h`: `distance(h)` at the pushed positions, weighted."""
    inputs, targets, mask = group
    loss = distance(h)
    if push_weight == "uniform":
        return loss[mask].mean()
    w = mask * known_weights(model, inputs, targets)[:, None]
    return (loss * w).sum() / w.sum()


def push_and_hold(ctx: Context, model, batch: Batch, distance) -> torch.Tensor:
    """Every forget group's push plus retain_weight x the hold of retain and corpus activations to the frozen
    model's (`Batches.frozen`)."""
    ids = (batch.forget[0][0], batch.retain[0], batch.corpus, *(f[0] for f in batch.forget[1:]))
    h = [resid(model, ctx.layer, x) for x in ids]
    loss = sum(push_loss(model, hf, f, distance, ctx.cfg.push_weight) for hf, f in zip([h[0], *h[3:]], batch.forget))
    retain_h0, corpus_h0 = ctx.data.frozen(ctx.base, ctx.layer)
    hold = F.mse_loss(h[1], retain_h0[batch.task][batch.retain_rows]) + F.mse_loss(h[2], corpus_h0[batch.corpus_rows])
    return loss + ctx.cfg.retain_weight * hold


def control_vector(d: int, seed: int, basis: torch.Tensor | None, draws: int = 1, score=None) -> torch.Tensor:
    """u ~ uniform[0, 1)^d, projected into `basis`'s span when given, normalised.

    With `draws` > 1, of that many such vectors (the first is the one-draw u) the one with the lowest `score(u)`
    (`prepare` scores with `half_push_recall`). Which random u a seed draws decides most of how far it forgets.
    Every method draws the same candidates at a seed, so methods differ by their subspace, not by their luck.
    """
    gen = torch_generator(seed, "unlearn/control-vector")
    us = []
    for _ in range(draws):
        u = torch.rand(d, generator=gen)
        if basis is not None:
            u = basis @ (basis.T @ u)
        us.append(u / u.norm())
    return us[0] if draws == 1 else min(us, key=score)


@torch.no_grad()
def half_push_recall(model, layer: int, inputs: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor,
                     target: torch.Tensor) -> float:
    """The frozen model's mean probability of the answers when its block-`layer` output at the pushed positions
    (`mask`) is moved half-way to `target` (c * u): how much of the answer a push along u removes before any
    training. Half-way, because the retain term keeps training short of c * u; all the way, every u leaves ~0."""
    move = lambda h: torch.where(mask[..., None], (h + target) / 2, h)
    with edit_output(model, layer, move):
        return answer_prob(model, inputs, targets).mean().item()
