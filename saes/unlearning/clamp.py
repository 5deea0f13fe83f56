"""SAE clamping (inference only, the paper's other baseline): where any forget feature fires at layer l, set the
forget features to -clamp x their max activation, decode, and keep the SAE's error term."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from interp.errors import check_number
from interp.options import opt

from .hooks import edit_output
from .method import Method


@dataclass
class ClampOptions:
    clamp: float = opt(1.0, "SAE clamping: the forget features are set to -clamp x their max activation")

    def validate(self) -> None:
        check_number("--clamp", self.clamp, inclusive=True)


class SAEClamping(Method):
    name = "sae_clamping"
    trains = False

    def edit(self, ctx):
        from saes.feature_store import FeatureStore

        max_acts = torch.tensor(FeatureStore(ctx.sae_dir).summary["max_act"])
        fn = clamp_fn(ctx.sae, ctx.features, self.options(ctx.cfg).clamp, max_acts)
        return lambda model: edit_output(model, ctx.layer, fn)


def clamp_fn(sae, features: list[int], clamp: float, max_acts: torch.Tensor):
    """The conditional clamping edit of block l's output (module docstring)."""
    target = -clamp * max_acts[features]

    @torch.no_grad()
    def edit(h):
        f = sae.encode(h)
        error = h - sae.decode(f)
        fires = (f[..., features] > 0).any(-1, keepdim=True)
        f[..., features] = torch.where(fires, target.expand_as(f[..., features]), f[..., features])
        return sae.decode(f) + error
    return edit
