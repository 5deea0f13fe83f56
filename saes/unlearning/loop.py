"""The one training loop of every trained method: the same data, parameters, optimiser and step budget; the
method supplies the step's loss and, optionally, a step after the optimiser's."""

from __future__ import annotations

import copy

import torch

from .data import draw
from .method import Context, UnlearnMethod


def train(method: UnlearnMethod, ctx: Context, progress=None):
    """A copy of `ctx.base` after `ctx.cfg.steps` steps of `method`; only `ctx.names` change."""
    cfg = ctx.cfg
    model = copy.deepcopy(ctx.base)
    ctx.base.eval()
    params = dict(model.named_parameters())
    for p in model.parameters():
        p.requires_grad_(False)
    trained = [params[n].requires_grad_(True) for n in ctx.names]
    start = {n: params[n].detach().clone() for n in ctx.names}
    opt = torch.optim.AdamW(trained, lr=cfg.lr, weight_decay=0.0)
    model.train()
    for step in range(cfg.steps):
        loss = method.loss(ctx, model, draw(ctx.data, step, cfg.batch_size, cfg.seed))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        method.after_step(ctx, model, start)
        if progress is not None:
            progress.update(1)
            progress.set_postfix(method=method.name, loss=f"{loss.item():.4f}")
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model
