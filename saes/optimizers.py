"""The SAE optimisers: `signum` (the default) and `adam`.

`signum` is sparsify's recipe: sign descent (each parameter moves by exactly lr per step, whatever its
gradient's scale) with momentum supplied by Schedule-Free averaging (Defazio et al., 2024, the `schedulefree`
package), no warm-up and no decay, at lr 5e-3 x sqrt(16,384 / latents). Schedule-Free trains at one point of
the weights (y) and evaluates at their average (x): `for_evaluation` moves the SAE to x before it is saved
or measured. `adam` is sae-lens's recipe: Adam with its constant scheduler, a linear warm-up and a final
linear decay. docs/results/sae.md measures the two against sparsify and sae-lens.
"""

from __future__ import annotations

import torch

OPTIMIZERS = ("signum", "adam")
SIGNUM_LR, SIGNUM_LR_LATENTS = 5e-3, 2**14  # lr at 16,384 latents; it scales as 1 / sqrt(latents)
ADAM_LR = 1e-3
SCHEDULE_FREE_MOMENTUM = 0.95


class SignSGD(torch.optim.Optimizer):
    """Steepest descent in the max-norm: p -= lr * sign(grad)."""

    def __init__(self, params, lr: float):
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.add_(p.grad.sign(), alpha=-group["lr"])


def default_lr(optimizer: str, d_sae: int) -> float:
    return SIGNUM_LR * (SIGNUM_LR_LATENTS / d_sae) ** 0.5 if optimizer == "signum" else ADAM_LR


def make_optimizer(cfg, sae) -> tuple[object, torch.optim.lr_scheduler.LRScheduler]:
    """(optimiser, LR scheduler) of `cfg.optimizer` for `sae`, in training mode."""
    from sae_lens.training.optim import get_lr_scheduler

    lr = cfg.lr if cfg.lr is not None else default_lr(cfg.optimizer, sae.cfg.d_sae)
    if cfg.optimizer == "signum":
        from schedulefree import ScheduleFreeWrapper

        base = SignSGD(sae.parameters(), lr=lr)
        opt = ScheduleFreeWrapper(base, momentum=SCHEDULE_FREE_MOMENTUM)
        opt.train()
        # a constant schedule on the inner optimiser: checkpoints hold a scheduler state for either recipe
        return opt, torch.optim.lr_scheduler.LambdaLR(base, lambda step: 1.0)
    # fused: one kernel for all of Adam's tensor updates (the unfused CPU Adam took 9% of a step)
    opt = torch.optim.Adam(sae.parameters(), lr=lr, fused=True)
    warm, decay = cfg.schedule()
    return opt, get_lr_scheduler("constant", opt, training_steps=cfg.steps(), lr=lr, warm_up_steps=warm,
                                 decay_steps=decay, lr_end=lr, num_cycles=1)


def for_evaluation(optimizer) -> None:
    """Move the SAE's parameters to the point an optimiser evaluates at (Schedule-Free's average)."""
    if hasattr(optimizer, "eval"):
        optimizer.eval()
