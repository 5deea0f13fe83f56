"""EAP-IG (Hanna et al.): integrated gradients over the input embeddings, read at alpha = k / ig_steps for
k = 1..ig_steps and averaged."""

from __future__ import annotations


def alphas(cfg) -> list[float]:
    return [k / cfg.ig_steps for k in range(1, cfg.ig_steps + 1)]
