"""Gradient ascent: minus the answer cross-entropy on the forget rows, plus it on the retain rows."""

from __future__ import annotations

from .method import Method

# The retain term's weight: --retain-weight scales the activation hold of SSPU and RMU, a different quantity.
RETAIN_WEIGHT = 1.0


class GradientAscent(Method):
    name = "gradient_ascent"

    def loss(self, ctx, model, batch):
        from interp.finetune import answer_loss

        loss = -sum(answer_loss(model, inputs, targets) for inputs, targets, _ in batch.forget)
        return loss + RETAIN_WEIGHT * answer_loss(model, *batch.retain)
