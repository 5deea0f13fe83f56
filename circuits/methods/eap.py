"""EAP (Syed et al.): one gradient. With a logit or probability difference it is read on the clean run. KL to
the clean run is at its minimum there, with zero gradient, so with KL it is read on the corrupted run
(`eap_at="auto"`; "clean" or "corrupted" forces one)."""

from __future__ import annotations


def alphas(cfg) -> list[float]:
    at = cfg.eap_at if cfg.eap_at != "auto" else ("corrupted" if cfg.metric == "kl" else "clean")
    return [1.0 if at == "clean" else 0.0]
