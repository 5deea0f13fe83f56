"""Activation harvesting through the TransformerBridge: several hooks in one forward pass that stops
after the last hooked block, a shuffle buffer, and DLM-Scope's masking for diffusion models.

Diffusion path (DLM-Scope): per model batch a mask ratio p ~ U[min, max]; every token but the first
becomes `<mask>` with probability p; the policy names the positions kept: `mask` (masked positions, the
DLM-Scope default), `unmask` (visible positions, the first included), `all`, or `clean` (no masking,
every position). Autoregressive models keep every position.

Special positions (position 0, special tokens such as BOS, EOS and pad, and massive-norm positions) are
dropped from either path by default: they are attention sinks whose norm can be a hundred times the others'
and would hold nearly all the variance an SAE is trained and judged on. sae-lens drops special tokens
(`exclude_special_tokens`), sparsify a list of tokens (`exclude_tokens`); `keep_special_positions` keeps all.
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


def special_token_ids(tokenizer) -> torch.Tensor:
    """The ids of the tokenizer's special tokens (BOS, EOS, pad, unk, mask, ...)."""
    return torch.tensor(sorted(set(tokenizer.all_special_ids)), dtype=torch.long)


SINK_NORM_RATIO = 10  # a position whose activation norm is this many times the batch median's is a sink


def ordinary_positions(ids: torch.Tensor, special_ids: torch.Tensor,
                       acts: list[torch.Tensor] = ()) -> torch.Tensor:
    """[B, T] True where the position is not special: not the first, not a special token, and (given the
    activations [B, T, ...] of some hooks) at no hook more than SINK_NORM_RATIO times the batch's median norm
    (on SmolLM2-135M some content tokens right after BOS are such sinks, docs/choices.md)."""
    keep = ~torch.isin(ids, special_ids.to(ids.device))
    keep[:, 0] = False
    for a in acts:
        norms = a.flatten(2).float().norm(dim=-1)
        keep &= (norms <= SINK_NORM_RATIO * norms.median()).to(keep.device)
    return keep


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
    keep_special_positions: bool = False


class ActivationStream:
    """Yields shuffled [batch_size, n_hooks, d_in] activation batches; resumable by model-batch index.

    Batch i's tokens and masks are functions of (seed, i) alone, so under torchrun (`comm`) rank r runs the
    model on batches r, r + world, ... and the ranks exchange what they harvested: every rank rebuilds the
    single-process buffer, batch for batch (only the hooks it trains, with `owners`: hook h's SAEs live on
    rank owners[h]). The model's work is divided; the SAE step sees what one process would have seen."""

    def __init__(self, bridge, tokenizer, cfg: StreamConfig, start_batch: int = 0, comm=None,
                 owners: list[int] | None = None):
        from .datasets import token_batches
        from .distributed import Comm
        from .loading import check_context

        check_masking(cfg.mask_policy, cfg.mask_ratio)
        check_context(bridge, cfg.context_size)
        self.bridge, self.tokenizer, self.cfg = bridge, tokenizer, cfg
        self.comm, self.owners = comm or Comm(), owners
        self.hooks = check_hooks(bridge, cfg.hooks)
        self.stop = stop_layer(self.hooks)
        self.batches_read = start_batch
        self.tokens = token_batches(cfg.dataset, tokenizer, cfg.model_batch, cfg.context_size, cfg.seed,
                                    start_batch + self.comm.rank, step=self.comm.world)
        self.next_batch = start_batch + self.comm.rank  # the index of this rank's next model batch
        self.shuffle = torch_generator(cfg.seed, "activations/shuffle", start_batch)
        self.pending: list[torch.Tensor] = []
        self.special_ids = special_token_ids(tokenizer)

    def model_batch(self, ids: torch.Tensor | None = None, index: int = 0) -> tuple[torch.Tensor, torch.Tensor,
                                                                                     torch.Tensor]:
        """One forward pass of model batch `index` (its masks): (activations [n_kept, n_hooks, d_in], input ids,
        kept-position mask)."""
        inputs, keep = ids, torch.ones_like(ids, dtype=torch.bool)
        if self.cfg.diffusion:
            gen = torch_generator(self.cfg.seed, "activations/masks", index)
            inputs, keep = mask_batch(ids, self.tokenizer.mask_token_id, self.cfg.mask_ratio, self.cfg.mask_policy, gen)
        device = next(self.bridge.parameters()).device
        with torch.no_grad():
            _, cache = self.bridge.run_with_cache(inputs.to(device), names_filter=self.hooks, stop_at_layer=self.stop)
        acts = torch.stack([cache[h].flatten(2) for h in self.hooks], dim=2)  # [B, T, n_hooks, d]
        if not self.cfg.keep_special_positions:
            keep = keep & ordinary_positions(ids, self.special_ids, [cache[h] for h in self.hooks]).cpu()
        return acts[keep.to(device)], inputs, keep

    def next_acts(self) -> torch.Tensor:
        """The next model batch's activations (of this rank's hooks), in single-process order."""
        if not self.pending:  # one round: every rank runs one batch, all receive all
            acts = self.model_batch(next(self.tokens), self.next_batch)[0]
            self.next_batch += self.comm.world
            self.pending = self.comm.exchange(acts, self.owners)
        self.batches_read += 1
        return self.pending.pop(0)

    def __iter__(self) -> Iterator[torch.Tensor]:
        return shuffled_batches(iter(self.next_acts, None), self.cfg.batch_size,
                                self.cfg.batch_size * self.cfg.buffer_batches, self.shuffle)


def shuffled_batches(chunks: Iterator[torch.Tensor], batch_size: int, capacity: int,
                     generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Batches of `batch_size` rows drawn through a shuffle buffer of `capacity` rows from `chunks` (model
    batches, cache shards); when the chunks run out, the rest of the buffer in whole batches."""
    buffer, exhausted = None, False
    while not exhausted:
        parts = [] if buffer is None else [buffer]
        n = sum(len(p) for p in parts)
        while n < capacity:
            chunk = next(chunks, None)
            if chunk is None:
                exhausted = True
                break
            parts.append(chunk)
            n += len(chunk)
        buffer = torch.cat(parts)
        buffer = buffer[torch.randperm(len(buffer), generator=generator, device="cpu").to(buffer.device)]
        # hand out half the buffer, keep the other half to mix with fresh activations
        keep = 0 if exhausted else capacity // 2
        while len(buffer) > keep and len(buffer) >= batch_size:
            yield buffer[:batch_size]
            buffer = buffer[batch_size:]
