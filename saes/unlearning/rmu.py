"""RMU (Li et al. 2024, arXiv 2403.03218): forget activations at layer l pushed toward c*u with u ~ uniform[0, 1)
normalised, retain activations held to the frozen model's; no subspace term. The same push, data and budget as
SSPU, so the two differ only in where u lies and in SSPU's subspace penalty."""

from __future__ import annotations

from .method import Method
from .push import push_and_hold, toward


class RMU(Method):
    name = "rmu"
    control = "free"

    def loss(self, ctx, model, batch):
        return push_and_hold(ctx, model, batch, toward(ctx.coef * ctx.u))
