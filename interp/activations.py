"""Activation harvesting through the TransformerBridge: several hooks in one forward pass that stops
after the last hooked block, a shuffle buffer, and DLM-Scope's masking for diffusion models.

Diffusion path (DLM-Scope): per model batch a mask ratio p ~ U[min, max]; every token but the first
becomes `<mask>` with probability p; the policy names the positions kept: `mask` (masked positions, the
DLM-Scope default), `unmask` (visible positions, the first included), `all`, or `clean` (no masking,
every position). Autoregressive models keep every position.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterator

import torch

from .errors import InterpError
from .seeds import torch_generator

MASK_POLICIES = ("mask", "unmask", "all", "clean")


def hook_layer(name: str) -> int | None:
    """The block a hook lives in (-1 before the first block, None after the last, e.g. `ln_final`)."""
    m = re.match(r"blocks\.(\d+)\.", name)
    if m:
        return int(m.group(1))
    return -1 if name.startswith(("embed.", "hook_embed", "hook_pos_embed", "rotary_emb")) else None


def valid_hooks_summary(bridge) -> str:
    """The bridge's hook names with the block index folded into `{l}`, e.g. `blocks.{l}.hook_resid_post`."""
    n = len(bridge.blocks)
    names = sorted({re.sub(r"^blocks\.\d+\.", "blocks.{l}.", h) for h in bridge.hook_dict})
    named = [h for h in names if not re.search(r"\.\w+\.hook_(in|out)$", h)]  # skip submodule in/out points
    return f"{', '.join(named)} (l = 0..{n - 1}; every submodule also has .hook_in and .hook_out)"


def check_hooks(bridge, hooks: list[str]) -> list[str]:
    if not hooks:
        raise InterpError("no hook given")
    for h in hooks:
        if h not in bridge.hook_dict:
            raise InterpError(f"unknown hook {h!r}; valid hooks: {valid_hooks_summary(bridge)}")
    return list(dict.fromkeys(hooks))


def stop_layer(hooks: list[str]) -> int | None:
    """`stop_at_layer` for the bridge: run blocks up to and including the last hooked one."""
    layers = [hook_layer(h) for h in hooks]
    return None if any(l is None for l in layers) else max(layers) + 1


def check_masking(policy: str, ratio: tuple[float, float]) -> None:
    if policy not in MASK_POLICIES:
        raise InterpError(f"unknown mask policy {policy!r}; valid: {', '.join(MASK_POLICIES)}")
    lo, hi = ratio
    if not 0 <= lo <= hi <= 1:
        raise InterpError(f"mask ratio must satisfy 0 <= MIN <= MAX <= 1 (got {lo} {hi})")


def mask_batch(ids: torch.Tensor, mask_id: int, ratio: tuple[float, float], policy: str,
               generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(model input, kept positions) for one batch, as DLM-Scope collects diffusion activations."""
    if policy == "clean":
        return ids, torch.ones_like(ids, dtype=torch.bool)
    p = ratio[0] + (ratio[1] - ratio[0]) * torch.rand((), generator=generator).item()
    masked = torch.rand(ids.shape, generator=generator) < p
    masked[:, 0] = False
    inputs = torch.where(masked, torch.full_like(ids, mask_id), ids)
    keep = {"mask": masked, "unmask": ~masked, "all": torch.ones_like(masked)}[policy]
    return inputs, keep


@dataclass
class StreamConfig:
    hooks: list[str]
    dataset: str = "corpus"
    context_size: int = 64
    model_batch: int = 64  # sequences per forward pass
    batch_size: int = 4096  # activations per yielded batch
    buffer_batches: int = 16  # the shuffle buffer holds this many yielded batches
    seed: int = 0
    diffusion: bool = False
    mask_policy: str = "mask"
    mask_ratio: tuple[float, float] = (0.05, 0.5)


class ActivationStream:
    """Yields shuffled [batch_size, n_hooks, d_in] activation batches; resumable by model-batch index."""

    def __init__(self, bridge, tokenizer, cfg: StreamConfig, start_batch: int = 0):
        from .datasets import token_batches
        from .loading import check_context

        check_masking(cfg.mask_policy, cfg.mask_ratio)
        check_context(bridge, cfg.context_size)
        self.bridge, self.tokenizer, self.cfg = bridge, tokenizer, cfg
        self.hooks = check_hooks(bridge, cfg.hooks)
        self.stop = stop_layer(self.hooks)
        self.batches_read = start_batch
        self.tokens = token_batches(cfg.dataset, tokenizer, cfg.model_batch, cfg.context_size, cfg.seed, start_batch)
        self.gen = torch_generator(cfg.seed, "activations/masks", start_batch)

    def model_batch(self, ids: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One forward pass: (activations [n_kept, n_hooks, d_in], input ids, kept-position mask)."""
        if ids is None:
            ids = next(self.tokens)
            self.batches_read += 1
        inputs, keep = ids, torch.ones_like(ids, dtype=torch.bool)
        if self.cfg.diffusion:
            inputs, keep = mask_batch(ids, self.tokenizer.mask_token_id, self.cfg.mask_ratio, self.cfg.mask_policy, self.gen)
        device = next(self.bridge.parameters()).device
        with torch.no_grad():
            _, cache = self.bridge.run_with_cache(inputs.to(device), names_filter=self.hooks, stop_at_layer=self.stop)
        acts = torch.stack([cache[h].flatten(2) for h in self.hooks], dim=2)  # [B, T, n_hooks, d]
        return acts[keep.to(device)], inputs, keep

    def __iter__(self) -> Iterator[torch.Tensor]:
        bs, cap = self.cfg.batch_size, self.cfg.batch_size * self.cfg.buffer_batches
        buffer = None
        while True:
            parts = [] if buffer is None else [buffer]
            n = sum(len(p) for p in parts)
            while n < cap:
                acts = self.model_batch()[0]
                parts.append(acts)
                n += len(acts)
            buffer = torch.cat(parts)
            buffer = buffer[torch.randperm(len(buffer), generator=self.gen)]
            # hand out half the buffer, keep the other half to mix with fresh activations
            while len(buffer) > cap // 2 and len(buffer) >= bs:
                yield buffer[:bs]
                buffer = buffer[bs:]
