"""Our SAE optimisers side by side on one activation cache: held-out explained variance after equal tokens.

Each recipe trains the same Top-K SAE (our trainer's `make_states` / `train_step`, 16 x d_in latents, k 32,
4,096 activations a step) on the same shuffled rows of a cache made by `interp cache-activations` (which drops
position 0, special tokens and massive-norm positions by default); the last `--heldout` rows (whole model
batches of other text) are held out. Explained variance is reported on those rows, and on the held-out rows
whose norm is below `--sink-norm` (a cross-check that no outlier dominates the number).

    interp cache-activations --model ~/.cache/interp/smollm2-135m-instruct \
        --dataset ~/.cache/interp/text/shakespeare.jsonl --context-size 128 --hook blocks.15.hook_resid_post \
        --tokens 600000 --out runs/activations/smollm2-b15
    python tests/benchmarks/sae_recipe.py runs/activations/smollm2-b15 --tokens 204800
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

RECIPES = {"signum": dict(optimizer="signum"),  # the default
           "adam (sae-lens recipe)": dict(optimizer="adam"),
           "adam lr 5e-3, no warm-up": dict(optimizer="adam", lr=5e-3, warmup_fraction=0.0)}


def load_rows(cache: Path) -> torch.Tensor:
    from safetensors.torch import load_file

    from saes.activation_cache import read_cache

    manifest = read_cache(cache)
    return torch.cat([load_file(cache / s["file"])["activations"][:, 0] for s in manifest["shards"]]).float()


@torch.no_grad()
def explained_variance(sae, x: torch.Tensor) -> float:
    r = sae.decode(sae.encode(x))
    return 1 - (r - x).pow(2).sum().item() / (x - x.mean(0)).pow(2).sum().item()


def train(rows: torch.Tensor, heldout: torch.Tensor, tokens: int, seed: int, sink_norm: float, **recipe) -> dict:
    from saes.config import SAETrainConfig
    from saes.optimizers import for_evaluation
    from saes.trainer import make_states, train_step

    d_in = rows.shape[1]
    cfg = SAETrainConfig(tokens=tokens, k=[32], expansion=16, seed=seed, **recipe)
    state = make_states(cfg, ["hook"], d_in, "bench")[0]
    order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(seed))
    first = rows[order[:cfg.batch_size]]
    scale = d_in ** 0.5 / first.norm(dim=-1).mean().item()  # as train_sae scales, from the first batch
    state.sae.b_dec.data.copy_(first.mean(0) * scale)
    start = time.perf_counter()
    for i in range(cfg.steps()):
        idx = order[(i * cfg.batch_size) % len(rows):][:cfg.batch_size]
        train_step(state, rows[idx] * scale, cfg.dead_tokens)
    seconds = time.perf_counter() - start
    for_evaluation(state.optimizer)
    small = heldout.norm(dim=-1) < sink_norm
    with torch.no_grad():
        live = (state.sae.encode(heldout * scale) > 0).any(0).float().mean().item()
    return {"tokens": cfg.steps() * cfg.batch_size, "ev": explained_variance(state.sae, heldout * scale),
            "ev_below_sink_norm": explained_variance(state.sae, heldout[small] * scale),
            "dead_fraction": 1 - live, "seconds": seconds}


def main(argv=None) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("cache", type=Path)
    p.add_argument("--tokens", type=int, nargs="+", default=[204_800])
    p.add_argument("--heldout", type=int, default=32_768)
    p.add_argument("--sink-norm", type=float, default=1000.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = load_rows(args.cache)
    rows, heldout = rows[:-args.heldout], rows[-args.heldout:]
    n = heldout.norm(dim=-1)
    print(f"{len(rows):,} training rows, {len(heldout):,} held out; held-out norm median {n.median():.0f}, "
          f"max {n.max():.0f}, {(n >= args.sink_norm).sum().item()} rows at or above {args.sink_norm:g}")
    for tokens in args.tokens:
        for name, recipe in RECIPES.items():
            r = train(rows, heldout, tokens, args.seed, args.sink_norm, **recipe)
            print(json.dumps({"recipe": name, **{k: round(v, 4) for k, v in r.items()}}), flush=True)


if __name__ == "__main__":
    main()
