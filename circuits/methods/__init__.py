"""Edge-attribution methods, by name. A method says where along the path from the corrupted to the clean
input embeddings (alpha 0 to 1) the metric's gradient is read; `circuits.attribution.attribute` averages
the edge scores over those points. A new method is one module here with an `alphas(cfg)` function and one
line below."""

from __future__ import annotations

from typing import Callable

from . import eap, eap_ig

ATTRIBUTION_METHODS: dict[str, Callable] = {
    "eap": eap.alphas,
    "eap-ig": eap_ig.alphas,
}
