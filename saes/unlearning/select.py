"""SSPU stages 1 and 2 (docs/methods.md §3): choose the layer and the features from data, and build the subspaces.

Stage 1. For latent j at a candidate layer, a_j(x) is its activation at the position of prompt x that
predicts the answer. With mu_F, mu_R the means of a_j over forget and retain prompts and s_F, s_R their standard deviations, the score is
the standardised difference (Cohen's d)

    score_j = (mu_F - mu_R) / sqrt((s_F^2 + s_R^2) / 2 + 1e-6)

so a latent scores high when it fires more on forget text than retain text, relative to its spread. The layer
is the candidate whose top-N scores are largest on average. The top-N latents are the forget features; the N
irrelevant ones are the live latents with the smallest |score| (tied to neither domain more than the other) or,
with `irrelevant_by="quiet"`, the smallest mean activation over forget and retain prompts (used by neither).

Stage 2. QR of the stacked decoder directions gives orthonormal bases (columns) of the relevant subspace
(span of the forget features' directions) and of the irrelevant one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from interp.errors import InterpError


@dataclass
class Selection:
    hook: str
    layer: int
    forget: list[int]  # forget features, highest score first
    irrelevant: list[int]
    scores: torch.Tensor  # [d_sae]
    layer_scores: dict[int, float]  # candidate layer -> mean top-N score


@torch.no_grad()
def answer_activations(bridge, hook: str, sae, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """[n_prompts, d_sae]: the latents at the position that predicts the answer's first token (the last prompt
    token); `batches` holds (inputs, targets) pairs as interp/answers.py encodes them. The task prompts share
    their instruction, so a mean over all tokens would mostly measure the instruction and the operator token."""
    from interp.answers import first_answer_position

    out = []
    for ids, targets in batches:
        _, cache = bridge.run_with_cache(ids, names_filter=[hook])
        acts = cache[hook][torch.arange(len(ids)), first_answer_position(targets)]
        out.append(sae.encode(acts))
    return torch.cat(out)


def feature_scores(forget: torch.Tensor, retain: torch.Tensor) -> torch.Tensor:
    mu_f, mu_r = forget.mean(0), retain.mean(0)
    var = (forget.var(0, unbiased=False) + retain.var(0, unbiased=False)) / 2
    return (mu_f - mu_r) / torch.sqrt(var + 1e-6)


def irrelevant_latents(scores: torch.Tensor, activity: torch.Tensor, n: int, by: str = "score") -> list[int]:
    """The n irrelevant latents (module docstring). A latent with a small |score| may still fire on both domains
    alike, so "quiet" ranks by mean activation instead."""
    alive = torch.nonzero(scores != 0).flatten()  # never-firing latents score exactly 0: not "irrelevant", dead
    key = scores[alive].abs() if by == "score" else activity[alive]
    return alive[key.argsort()[:n]].tolist()


def select(bridge, saes: dict[int, tuple[str, object]], forget_batches, retain_batches, n_features: int,
           layer: int | None = None, irrelevant_by: str = "score") -> Selection:
    """`saes`: layer -> (hook, SAE). With `layer` None the layer is chosen from the data."""
    for l, (_, sae) in saes.items():
        if n_features > sae.cfg.d_sae // 2:
            raise InterpError(f"--features {n_features} is too many for an SAE of {sae.cfg.d_sae} latents "
                              f"(at most {sae.cfg.d_sae // 2}: N forget and N irrelevant features)")
    if layer is not None and layer not in saes:
        raise InterpError(f"no SAE at layer {layer}; the SAE run has layers {sorted(saes)}")
    per_layer = {}
    for l, (hook, sae) in saes.items():
        if layer is not None and l != layer:
            continue
        f = answer_activations(bridge, hook, sae, forget_batches)
        r = answer_activations(bridge, hook, sae, retain_batches)
        scores = feature_scores(f, r)
        per_layer[l] = (hook, scores, scores.topk(n_features).values.mean().item(), torch.cat([f, r]).mean(0))
    best = max(per_layer, key=lambda l: per_layer[l][2])
    hook, scores, _, activity = per_layer[best]
    forget = scores.topk(n_features).indices.tolist()
    irrelevant = irrelevant_latents(scores, activity, n_features, irrelevant_by)
    return Selection(hook, best, forget, irrelevant, scores, {l: v[2] for l, v in per_layer.items()})


def basis(sae, latents: list[int]) -> torch.Tensor:
    """[d_in, r] orthonormal basis of the span of the latents' decoder directions (reduced QR)."""
    q, r = torch.linalg.qr(sae.W_dec[latents].detach().float().T)
    keep = r.diagonal().abs() > 1e-6 * r.diagonal().abs().max()  # drop directions the others already span
    return q[:, keep]


def selection_json(sel: Selection, sae_dir: Path) -> dict:
    """What selection.json holds: the layer, every candidate's score, and the forget and irrelevant features with
    their scores and top contexts (the app shows it)."""
    from saes.feature_store import FeatureStore

    store = FeatureStore(sae_dir)
    feat = lambda j: {"latent": j, "score": sel.scores[j].item(), "top": (store.latent(j) or {}).get("top", [])[:4]}
    return {"hook": sel.hook, "layer": sel.layer, "layer_scores": sel.layer_scores,
            "forget_features": [feat(j) for j in sel.forget], "irrelevant_features": [feat(j) for j in sel.irrelevant]}
