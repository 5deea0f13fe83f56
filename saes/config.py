"""`SAETrainConfig`: everything `train_sae` needs, with defaults that finish in a few minutes here."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from interp.activations import check_masking
from interp.datasets import check_dataset
from interp.errors import InterpError, check_number
from interp.loading import check_device_map, torch_dtype
from interp.options import check_fields, device_map_field, dtype_field, opt, trust_remote_code_field

from .architectures import check_architecture
from .optimizers import OPTIMIZERS


EVAL_FRACTION = 16  # default evaluation tokens: 1/EVAL_FRACTION of the training tokens ...
EVAL_TOKENS_MIN, EVAL_TOKENS_MAX = 4_096, 65_536  # ... within these bounds (4,096: one batch of 64 x 64)


@dataclass
class HarvestConfig:
    """Where activations come from: what `train-sae` streams and `cache-activations` stores."""

    model: str = opt("pythia-mini", "zoo name, local HF directory, .gguf file or hub id")
    dataset: str = opt("corpus", "'corpus' (generated), a local .txt/.jsonl file, or an HF dataset name")
    context_size: int = opt(64, "tokens per sequence", min=1)
    hooks: list[str] = opt(factory=list, flag="hook",
                           help="TransformerLens hook name(s); default: residual stream after the middle block "
                                "(with --activations: every hook of the cache)")
    seed: int = opt(0, "seed of every random stream of the run", min=0)
    device: str = opt("cpu", "where the work runs (and the model, without --device-map); under torchrun 'cuda' "
                             "is each rank's own GPU")
    dtype: str = dtype_field()  # SAEs train in float32 whatever the model's precision
    device_map: str | None = device_map_field()
    trust_remote_code: bool = trust_remote_code_field()
    model_batch: int = opt(64, "sequences per forward pass of the model", min=1)
    mask_policy: str = opt("mask", "diffusion models: positions kept: mask, unmask, all or clean")
    mask_ratio: tuple[float, float] = opt((0.05, 0.5), "diffusion models: mask ratio range MIN MAX")
    keep_special_positions: bool = opt(False, "train and measure on position 0, special tokens (BOS, EOS, pad) "
                                              "and massive-norm positions too; by default these attention sinks "
                                              "are left out")

    def stream(self, diffusion: bool, **batching):
        """The `StreamConfig` of these options (`batching`: batch_size, buffer_batches)."""
        from interp.activations import StreamConfig

        return StreamConfig(hooks=self.hooks, dataset=self.dataset, context_size=self.context_size,
                            model_batch=self.model_batch, seed=self.seed, diffusion=diffusion,
                            mask_policy=self.mask_policy, mask_ratio=self.mask_ratio,
                            keep_special_positions=self.keep_special_positions, **batching)

    def validate_harvest(self) -> None:
        check_fields(self)
        check_masking(self.mask_policy, self.mask_ratio)
        check_dataset(self.dataset)  # a missing, empty or binary file fails before the model loads
        torch_dtype(self.dtype)
        check_device_map(self.device_map)


@dataclass
class SAETrainConfig(HarvestConfig):
    activations: str | None = opt(None, "train from this activation cache (interp cache-activations) without "
                                        "running the model; model, hooks, dataset and masking come from it")
    epochs: int = opt(1, "with --activations: passes over the cache allowed to reach --tokens", min=1)
    k: list[int] = opt(factory=lambda: [32], min=1,
                       help="active latents; several values (--k 16 --k 32 or --k 16,32) train a sweep")
    architecture: str = opt("topk", "the SAE architecture: topk or batchtopk (saes/architectures/)")
    width: int | None = opt(None, "number of latents (overrides --expansion)", min=1)
    expansion: int = opt(16, "latents per input dimension when --width is not given", min=1)
    tokens: int = opt(2_000_000, "training activations per SAE", min=1)
    batch_size: int = opt(4096, "activations per optimiser step (all ranks together under torchrun)", min=1)
    optimizer: str = opt("signum", "signum (schedule-free sign descent, sparsify's recipe) or adam (sae-lens's: "
                                   "Adam with warm-up and final decay)", choices=OPTIMIZERS)
    lr: float | None = opt(None, "learning rate (default: signum 5e-3 x sqrt(16,384 / latents), adam 1e-3)")
    warmup_fraction: float = opt(0.05, "adam: linear warm-up over this share of the steps")
    decay_start: float = opt(0.8, "adam: linear decay to 0 from this share of the steps on (DLM-Scope)")
    aux_coefficient: float = opt(1 / 32, "AuxK loss weight (DLM-Scope)")
    dead_tokens: int = opt(500_000, "a latent is dead after this many activations without firing", min=1)
    distribute_hooks: bool = opt(False, "under torchrun: train each hook's SAEs on one rank (hook-parallel) "
                                        "instead of splitting every batch over the ranks (data-parallel)")
    out: str | None = opt(None, "run directory (default runs/sae/<model>)")
    checkpoint_every: int = opt(100, "optimiser steps between checkpoints", min=1)
    buffer_batches: int = opt(16, "batches of activations shuffled together", min=1)
    eval_tokens: int | None = opt(None, "held-out tokens for the evaluation and feature statistics (default: 1/16 "
                                        "of --tokens, at least 4,096 and at most 65,536)", min=1)
    feature_tokens: int | None = opt(None, "tokens scanned for feature statistics (default: the evaluation's)",
                                     min=1)

    def run_dir(self) -> Path:
        return Path(self.out) if self.out else Path("runs") / "sae" / Path(self.model).name

    def stream(self, diffusion: bool, **batching):
        return super().stream(diffusion, batch_size=self.batch_size, buffer_batches=self.buffer_batches)

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
        self.validate_harvest()
        if not self.k:
            raise InterpError("--k needs at least one value")
        if self.width is not None and max(self.k) > self.width:
            raise InterpError(f"k = {max(self.k)} is larger than the width {self.width}; k must be at most the width")
        check_architecture(self.architecture)
        if self.lr is not None:
            check_number("lr", self.lr)
        check_number("aux-coefficient", self.aux_coefficient, inclusive=True)
        for name in ("warmup_fraction", "decay_start"):
            if not 0 <= getattr(self, name) <= 1:  # also false for nan
                raise InterpError(f"{name.replace('_', '-')} must be between 0 and 1 (got {getattr(self, name)})")
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
