"""`batchtopk`: sae-lens's `BatchTopKTrainingSAE`, k latents per activation on average over the batch, trained
by sae-lens's own (dense) step.

While training, sae-lens keeps a moving average (rate `topk_threshold_lr`, 0.01) of the smallest activation
each batch kept, and saves the SAE as a JumpReLU SAE with that average as every latent's threshold. So a
saved batchtopk SAE has no `cfg.k` (`trained_k` reads it from the metadata), fires k latents only on average,
and needs a few hundred steps for the average to catch up: after 40 steps on pythia-mini it fires ~5x k
latents and explains little variance, after 160 about 1.2x k.
"""

from __future__ import annotations

from .base import sae_lens_step
from .topk import TopK


class BatchTopK(TopK):
    name = "batchtopk"

    def sae_classes(self) -> tuple[type, type]:
        from sae_lens import BatchTopKTrainingSAE, BatchTopKTrainingSAEConfig

        return BatchTopKTrainingSAE, BatchTopKTrainingSAEConfig

    def step(self, sae, x, dead_mask):
        return sae_lens_step(sae, x, dead_mask)
