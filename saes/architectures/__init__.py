"""The SAE architectures `train_sae` can train, by `SAETrainConfig.architecture` (protocol: base.py).

Adding one is a module here (an object with `name`, `make` and `step`) and a line in ARCHITECTURES.
"""

from __future__ import annotations

from interp.errors import InterpError

from .base import Architecture, fired, sae_lens_step, trained_k
from .batchtopk import BatchTopK
from .topk import TopK

ARCHITECTURES: dict[str, Architecture] = {a.name: a for a in (
    TopK(),
    BatchTopK(),
)}


def check_architecture(name: str) -> None:
    if name not in ARCHITECTURES:
        raise InterpError(f"unknown SAE architecture {name!r}; known: {', '.join(ARCHITECTURES)}")


def get_architecture(name: str) -> Architecture:
    check_architecture(name)
    return ARCHITECTURES[name]


__all__ = ["ARCHITECTURES", "Architecture", "check_architecture", "fired", "get_architecture", "sae_lens_step",
           "trained_k"]
