"""Pretraining of the zoo models on the generated corpus (AR next-token loss or the LLaDA objective).

Batch i is a pure function of (seed, i), so a run resumed from a checkpoint sees exactly the data an
uninterrupted run would have seen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .architecture import ArchConfig, build_model
from .checkpoint import load_checkpoint, save_checkpoint
from .seeds import seed_of
from .interrupt import deferred_interrupt
from .corpus import packed_corpus_batch
from .tokenizer import load_tokenizer


@dataclass
class PretrainConfig:
    arch: ArchConfig = field(default_factory=ArchConfig)
    objective: str = "ar"  # "ar" (next token) or "llada" (masked diffusion)
    steps: int = 3000
    batch_size: int = 64
    seq_len: int = 64
    lr: float = 2e-3
    warmup: int = 100
    weight_decay: float = 0.01
    seed: int = 0
    checkpoint_every: int = 250
    in_format_share: float = 0.0  # share of add/sub, mul/div, LCM corpus lines in the tasks' own order


def corpus_batch(tokenizer, cfg: PretrainConfig, step: int) -> torch.Tensor:
    return packed_corpus_batch(tokenizer, cfg.batch_size, cfg.seq_len, f"pretrain/{cfg.seed}/{step}",
                               cfg.in_format_share)


def lr_at(cfg: PretrainConfig, step: int) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    frac = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))


def pretrain(cfg: PretrainConfig, out: Path, resume: bool = True):
    """Train from scratch (or resume from `out/checkpoint`); returns the trained HF model. Ctrl-C writes a
    checkpoint and raises KeyboardInterrupt."""
    tok = load_tokenizer()
    model = build_model(cfg.arch, cfg.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.98), weight_decay=cfg.weight_decay)
    ckpt = Path(out) / "checkpoint"
    start = load_checkpoint(ckpt, model, opt) if resume else 0
    g = torch.Generator().manual_seed(cfg.seed)
    model.train()
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, desc=f"pretrain {cfg.objective}")
    log = []
    with deferred_interrupt() as interrupted:
        for step in bar:
            _step(cfg, model, opt, tok, g, step, bar, log)
            if interrupted() or (step + 1) % cfg.checkpoint_every == 0 and step + 1 < cfg.steps:
                save_checkpoint(ckpt, model, opt, step + 1)
            if interrupted():
                raise KeyboardInterrupt
    model.eval()
    return model, log


def _step(cfg: PretrainConfig, model, opt, tok, g: torch.Generator, step: int, bar, log: list) -> None:
    """One optimiser step on corpus batch `step` (next-token or LLaDA loss); logs every 50 steps."""
    from .diffusion import llada_loss

    x = corpus_batch(tok, cfg, step)
    for grp in opt.param_groups:
        grp["lr"] = lr_at(cfg, step)
    if cfg.objective == "ar":
        loss = model(input_ids=x, labels=x).loss
    else:
        g.manual_seed(seed_of(cfg.seed, "pretrain/masks", step))
        loss = llada_loss(model, x, tok.mask_token_id, generator=g)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
    bar.set_postfix(loss=f"{loss.item():.3f}")
    if step % 50 == 0:
        log.append({"step": step, "loss": loss.item()})
