"""`SAETrainConfig`: everything `train_sae` needs, with defaults that finish in a few minutes here."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from interp.activations import check_masking
from interp.datasets import check_dataset
from interp.errors import InterpError, check_number
from interp.loading import check_device_map, torch_dtype

from .architectures import check_architecture


EVAL_FRACTION = 16  # default evaluation tokens: 1/EVAL_FRACTION of the training tokens ...
EVAL_TOKENS_MIN, EVAL_TOKENS_MAX = 4_096, 65_536  # ... within these bounds (4,096: one batch of 64 x 64)


@dataclass
class SAETrainConfig:
    model: str = "pythia-mini"  # zoo name, local HF directory or hub id
    dataset: str = "corpus"  # 'corpus' (generated), a local .txt/.jsonl file, or an HF dataset name
    context_size: int = 64
    hooks: list[str] = field(default_factory=list)  # empty: residual stream after the middle block
    k: list[int] = field(default_factory=lambda: [32])  # several values: a sweep from one stream
    architecture: str = "topk"  # the SAE architecture: topk or batchtopk (saes/architectures/)
    width: int | None = None  # number of latents; None: expansion * d_in
    expansion: int = 16
    tokens: int = 2_000_000  # training activations per SAE
    batch_size: int = 4096  # activations per optimiser step
    lr: float = 1e-3
    warmup_fraction: float = 0.05  # linear warm-up over the first 5% of steps
    decay_start: float = 0.8  # linear decay to 0 over the last 20% (DLM-Scope)
    aux_coefficient: float = 1 / 32  # AuxK weight (DLM-Scope)
    dead_tokens: int = 500_000  # a latent is dead after this many activations without firing
    seed: int = 0
    device: str = "cpu"  # where the SAEs train (and the model, without device_map)
    dtype: str = "float32"  # the model's weights; SAEs train in float32 whatever the model's precision
    device_map: str | None = None  # "auto": accelerate spreads the model over every device
    trust_remote_code: bool = False  # run the model code a checkpoint ships (LLaDA, Dream)
    out: str | None = None  # run directory; default runs/sae/<model>
    checkpoint_every: int = 100  # optimiser steps
    model_batch: int = 64  # sequences per forward pass
    buffer_batches: int = 16
    mask_policy: str = "mask"  # diffusion models only
    mask_ratio: tuple[float, float] = (0.05, 0.5)
    eval_tokens: int | None = None  # held-out tokens for every metric; None: eval_budget() of the training tokens
    feature_tokens: int | None = None  # tokens scanned for feature statistics; None: the evaluation's budget

    def run_dir(self) -> Path:
        return Path(self.out) if self.out else Path("runs") / "sae" / Path(self.model).name

    def d_sae(self, d_in: int) -> int:
        return self.width if self.width is not None else self.expansion * d_in

    def eval_budget(self) -> int:
        """Evaluation tokens: `eval_tokens`, or 1/16 of the training tokens between 4,096 and 65,536. A token of
        evaluation costs a clean and a spliced forward through the whole model, a token of training one forward
        up to the hook, so a fixed 65,536 cost a large model minutes after a short run (SmolLM2-135M, 2 CPU
        threads: about 6 minutes after 61,440 training tokens; 23 s at 1/16). Runs of 1M tokens or more keep
        65,536."""
        if self.eval_tokens is not None:
            return self.eval_tokens
        return min(EVAL_TOKENS_MAX, max(EVAL_TOKENS_MIN, self.tokens // EVAL_FRACTION))

    def feature_budget(self) -> int:
        return self.feature_tokens if self.feature_tokens is not None else self.eval_budget()

    def validate(self) -> "SAETrainConfig":
        """Checks that need no model; `train_sae` checks hooks and k against the model."""
        if not self.k or any(k < 1 for k in self.k):
            raise InterpError(f"k must be at least 1 (got {self.k})")
        if self.width is not None and self.width < 1:
            raise InterpError(f"width must be at least 1 (got {self.width})")
        if self.width is None and self.expansion < 1:
            raise InterpError(f"expansion must be at least 1 (got {self.expansion})")
        if self.width is not None and max(self.k) > self.width:
            raise InterpError(f"k = {max(self.k)} is larger than the width {self.width}; k must be at most the width")
        check_architecture(self.architecture)
        for name in ("tokens", "batch_size", "context_size", "model_batch", "checkpoint_every", "eval_tokens",
                     "feature_tokens"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise InterpError(f"{name.replace('_', '-')} must be at least 1 (got {getattr(self, name)})")
        check_number("lr", self.lr)
        check_number("aux-coefficient", self.aux_coefficient, inclusive=True)
        for name in ("warmup_fraction", "decay_start"):
            if not 0 <= getattr(self, name) <= 1:  # also false for nan
                raise InterpError(f"{name.replace('_', '-')} must be between 0 and 1 (got {getattr(self, name)})")
        check_masking(self.mask_policy, self.mask_ratio)
        check_dataset(self.dataset)  # a missing, empty or binary file fails before the model loads
        torch_dtype(self.dtype)
        check_device_map(self.device_map)
        return self

    def steps(self) -> int:
        return -(-self.tokens // self.batch_size)

    def schedule(self) -> tuple[int, int]:
        """(warm-up steps, final linear-decay steps)."""
        steps = self.steps()
        decay = int(steps * (1 - self.decay_start))
        return min(int(steps * self.warmup_fraction), max(0, steps - decay - 1)), decay

    def to_dict(self) -> dict:
        d = asdict(self)
        # the run records the token counts it evaluated on, so eval-sae repeats them even if the rule changes
        d["eval_tokens"], d["feature_tokens"] = self.eval_budget(), self.feature_budget()
        d["mask_ratio"] = list(self.mask_ratio)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "SAETrainConfig":
        d = dict(d)
        d["mask_ratio"] = tuple(d.get("mask_ratio", (0.05, 0.5)))
        return cls(**d)


def default_hook(n_layers: int) -> str:
    return f"blocks.{n_layers // 2}.hook_resid_post"


def sae_name(hook: str, k: int) -> str:
    return f"{hook}-k{k}"
