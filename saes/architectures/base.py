"""What every SAE architecture provides, and the pieces the trainer and evaluation share across them.

An architecture is an object with
    name                                   the value of `SAETrainConfig.architecture` that selects it
    make(cfg, d_in, k, metadata)           a fresh sae-lens training SAE, built from its sae-lens config class
    step(sae, x, dead_mask) -> dict        the loss terms of one training step on (scaled) activations `x`

The step's dict holds `loss` (what the trainer back-propagates), `mse_loss` and
`auxiliary_reconstruction_loss`, and the codes in one of two forms: sparse, `indices` and `acts` ([batch, n]
each: the latents chosen per row and their values), or dense, `feature_acts` ([batch, d_sae]). `fired`
turns either into what the trainer's dead-latent bookkeeping needs.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch


class Architecture(Protocol):
    name: str

    def make(self, cfg, d_in: int, k: int, metadata) -> Any: ...

    def step(self, sae, x: torch.Tensor, dead_mask: torch.Tensor) -> dict[str, torch.Tensor]: ...


def sae_lens_step(sae, x: torch.Tensor, dead_mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """sae-lens's own `training_forward_pass` (dense): the step of any architecture without a faster one."""
    from sae_lens.saes.sae import TrainStepInput

    out = sae.training_forward_pass(TrainStepInput(x, {}, dead_mask, 0, False))
    return {"loss": out.loss, "mse_loss": out.losses["mse_loss"],
            "auxiliary_reconstruction_loss": out.losses.get("auxiliary_reconstruction_loss", out.loss.new_tensor(0.0)),
            "feature_acts": out.feature_acts.detach()}


def fired(out: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(the latent of every firing in the batch, repeats included; each row's count of firing latents)."""
    if "indices" in out:
        active = out["acts"] > 0
        return out["indices"][active], active.sum(-1)
    active = out["feature_acts"] > 0
    return active.nonzero()[:, 1], active.sum(-1)


def trained_k(sae) -> float | None:
    """The k an SAE was trained with, or None if unknown. An inference form without k (BatchTopK saves as
    JumpReLU) still has it in the training details sae-lens writes into the metadata."""
    k = getattr(sae.cfg, "k", None)
    if k is None:
        k = (getattr(sae.cfg.metadata, "training_architecture_details", None) or {}).get("k")
    return k
