"""`topk`: sae-lens's `TopKTrainingSAE` (exactly k latents per activation), trained by the sparse step of
saes/topk_step.py, which gives sae-lens's loss and gradients at a fraction of the dense step's cost."""

from __future__ import annotations

from ..topk_step import topk_train_step


class TopK:
    name = "topk"

    def sae_classes(self) -> tuple[type, type]:
        """(training SAE class, its config class); sae-lens is imported here, so that importing the registry
        to check a config's architecture stays cheap."""
        from sae_lens import TopKTrainingSAE, TopKTrainingSAEConfig

        return TopKTrainingSAE, TopKTrainingSAEConfig

    def make(self, cfg, d_in: int, k: int, metadata):
        sae_cls, cfg_cls = self.sae_classes()
        # the trainer scales activations to mean norm sqrt(d_in) itself and folds the scale in at the end;
        # expected_average_only_in is the sae-lens setting that matches
        return sae_cls(cfg_cls(d_in=d_in, d_sae=cfg.d_sae(d_in), k=k, aux_loss_coefficient=cfg.aux_coefficient,
                               normalize_activations="expected_average_only_in", device=cfg.device,
                               metadata=metadata))

    def step(self, sae, x, dead_mask):
        return topk_train_step(sae, x, dead_mask)
