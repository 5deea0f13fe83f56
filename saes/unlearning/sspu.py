"""SSPU stage 3 (docs/methods.md §3): forget activations at layer l (at the pushed positions) pushed toward c*u,
u a random direction projected into the irrelevant subspace; retain activations held to the frozen model's; and
the penalty (reg_weight / 2) ||(I - Q Q^T) dW||^2 on the part of each updated matrix's change that writes outside
the relevant subspace (Q: its orthonormal basis), applied as a proximal step (`shrink_outside`).

Variants (`--target`): "erase" pushes the forget activations' relevant component ||Q^T h||^2 to zero instead of
pushing toward c*u; "control+erase" adds that term to the push toward c*u.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from interp.errors import check_number
from interp.options import opt

from .hooks import residual_axes
from .method import Method
from .push import push_and_hold, toward

TARGETS = ("control", "erase", "control+erase")


@dataclass
class SSPUOptions:
    irrelevant: str = opt("score", "irrelevant latents: score (smallest |score|) or quiet (least active on forget "
                                   "and retain)", choices=("score", "quiet"))
    # the proximal step shrinks the update's outside part by 1 + lr x this
    reg_weight: float = opt(10.0, "weight of the update's component outside the relevant subspace")
    target: str = opt("control", "SSPU's forget push: control (toward c x u), erase (the relevant-subspace "
                                 "component toward 0) or control+erase", choices=TARGETS)

    def validate(self) -> None:
        check_number("--reg-weight", self.reg_weight, inclusive=True)  # 0: the unconstrained ablation


def relevant_energy(relevant: torch.Tensor):
    """Per-position energy of the relevant component, per dimension."""
    return lambda h: ((h @ relevant) ** 2).sum(-1) / h.shape[-1]


class SSPU(Method):
    name = "sspu"
    control = "irrelevant"

    def loss(self, ctx, model, batch):
        target = self.options(ctx.cfg).target
        terms = ([toward(ctx.coef * ctx.u)] if target != "erase" else []) + \
                ([relevant_energy(ctx.relevant)] if target != "control" else [])
        return push_and_hold(ctx, model, batch, lambda h: sum(term(h) for term in terms))

    def after_step(self, ctx, model, start):
        reg_weight = self.options(ctx.cfg).reg_weight
        if not reg_weight or ctx.relevant is None:
            return
        outside = ctx.memo("outside", lambda: torch.eye(ctx.relevant.shape[0]) - ctx.relevant @ ctx.relevant.T)
        axes = ctx.memo("axes", lambda: residual_axes(ctx.base, ctx.names))
        shrink_outside(dict(model.named_parameters()), start, ctx.names, outside, ctx.cfg.lr * reg_weight, axes)


@torch.no_grad()
def shrink_outside(params: dict, start: dict, names: list[str], outside: torch.Tensor, strength: float,
                   axes: dict[str, int]) -> None:
    """The subspace penalty (reg_weight / 2) * ||(I - Q Q^T) dW||^2 as a proximal step after each Adam step of
    size lr: the update's component outside the relevant subspace is divided by (1 + lr * reg_weight). A penalty
    added to the loss does not hold under Adam, whose per-coordinate scaling undoes it; this decoupled form does,
    as AdamW decouples weight decay (also scaled by lr)."""
    d = outside.shape[0]
    for n in names:
        if params[n].shape[axes[n]] != d:  # only matrices and biases that write into the residual stream
            continue
        delta = (params[n] - start[n]).movedim(axes[n], 0)
        shrink = (outside @ delta.reshape(d, -1)).reshape(delta.shape).movedim(0, axes[n])
        params[n].sub_(shrink * (strength / (1 + strength)))
