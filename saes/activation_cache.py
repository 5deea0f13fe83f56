"""An activation cache: a model's activations at some hooks, harvested once, read by any number of SAE runs.

Layout of a cache directory (written under `<out>.partial`, moved to `<out>` when complete; interp/rundir.py):
    interp-run.json               the manifest that marks the directory as ours (kind "activations")
    cache.json                    what was harvested (model, hooks, d_in, dtype, dataset, context, masking, seed)
                                  and the shards written so far, each with its rows and model batches
    shard-00000.safetensors ...   one tensor `activations` [rows, n_hooks, d_in], model batches in order

Shard i holds whole model batches of the same stream `train-sae` reads (interp/activations.py), unshuffled,
so a killed run continues at the next shard from the batch index the manifest records. Readers shuffle:
`CachedActivations` visits the shards in a new seeded order every epoch through a shuffle buffer.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

import torch
from tqdm.auto import tqdm

from interp.errors import InterpError
from interp.options import opt

from .config import HarvestConfig

FORMAT = 1
CACHE_JSON = "cache.json"
STORAGE_DTYPES = ("float32", "bfloat16", "float16")
# what a cache must agree on with a train-sae run that reads it
IDENTITY = ("model", "dataset", "context_size", "mask_policy", "mask_ratio", "keep_special_positions")


@dataclass
class CacheConfig(HarvestConfig):
    tokens: int = opt(2_000_000, "activations to store (whole model batches: a few more)", min=1)
    storage_dtype: str = opt("float32", "precision of the stored activations (bfloat16 or float16 halve the disk)",
                             choices=STORAGE_DTYPES)
    shard_mb: int = opt(256, "megabytes per shard file (whole model batches each)", min=1)
    out: str | None = opt(None, "cache directory (default runs/activations/<model>)")

    def run_dir(self) -> Path:
        return Path(self.out) if self.out else Path("runs") / "activations" / Path(self.model).name

    def validate(self) -> "CacheConfig":
        self.validate_harvest()
        return self


def cache_activations(cfg: CacheConfig, resume: bool = False, overwrite: bool = False,
                      show_progress: bool = True) -> Path:
    """Harvest `cfg.tokens` activations at `cfg.hooks` into a cache directory; returns its path."""
    from interp.activations import ActivationStream
    from interp.interrupt import deferred_interrupt
    from interp.loading import load_model
    from interp.rundir import RunDir, write_atomic

    from .config import default_hook

    cfg.validate()
    run_dir = RunDir(cfg.run_dir(), "activations")
    resume = run_dir.check(resume, overwrite) == "resume"
    loaded = load_model(cfg.model, device=cfg.device, dtype=cfg.dtype, device_map=cfg.device_map,
                        trust_remote_code=cfg.trust_remote_code)
    cfg.hooks = cfg.hooks or [default_hook(len(loaded.bridge.blocks))]
    stream = ActivationStream(loaded.bridge, loaded.tokenizer, cfg.stream(loaded.is_diffusion))  # checks hooks, dataset
    cfg.hooks = stream.hooks
    _check_disk(cfg, run_dir.work, _describe(cfg, stream, loaded.is_diffusion)["d_in"])
    with run_dir.writing(resume, overwrite) as work:
        manifest = _start_manifest(work, cfg, stream, loaded.is_diffusion, resume)
        rows = sum(s["rows"] for s in manifest["shards"])
        batch = sum(s["batches"] for s in manifest["shards"])
        bar = tqdm(total=cfg.tokens, initial=min(rows, cfg.tokens), desc=f"cache-activations {loaded.name}",
                   unit="tok", disable=not show_progress)
        dtype = getattr(torch, cfg.storage_dtype)
        tokens = _tokens(stream, batch)
        with deferred_interrupt() as interrupted:
            while rows < cfg.tokens:
                parts, size, first = [], 0, batch
                while rows + sum(len(p) for p in parts) < cfg.tokens and size < cfg.shard_mb << 20:
                    acts = stream.model_batch(next(tokens), batch)[0].to("cpu", dtype)
                    parts.append(acts)
                    size += acts.numel() * acts.element_size()
                    batch += 1
                    bar.update(len(acts))
                shard = torch.cat(parts)
                _write_shard(work, manifest, shard, first, batch - first)
                write_atomic(work / CACHE_JSON, json.dumps(manifest, indent=1))
                rows += len(shard)
                if interrupted():
                    raise KeyboardInterrupt  # the shards written so far stay; --resume continues
        bar.close()
    return run_dir.out


def _check_disk(cfg: CacheConfig, work: Path, d_in: int) -> None:
    """Refuse a cache the disk cannot hold, before the first shard (what is already written counts as free)."""
    import shutil

    need = cfg.tokens * len(cfg.hooks) * d_in * getattr(torch, cfg.storage_dtype).itemsize
    have = sum(f.stat().st_size for f in work.glob("shard-*.safetensors")) if work.is_dir() else 0
    parent = next(p for p in [work, *work.parents] if p.exists())
    free = shutil.disk_usage(parent).free + have
    if need > free:
        raise InterpError(f"the cache needs {need / 2**30:.1f} GiB ({cfg.tokens:,} activations x {len(cfg.hooks)} "
                          f"hooks x {d_in} x {cfg.storage_dtype}) and {parent} has {free / 2**30:.1f} GiB free; "
                          f"lower --tokens, use --storage-dtype bfloat16, or choose another --out")


def _tokens(stream, batch: int):
    """Model batch `batch`'s token ids (a pure function of the index, so a resumed cache continues exactly)."""
    from interp.datasets import token_batches

    c = stream.cfg
    return token_batches(c.dataset, stream.tokenizer, c.model_batch, c.context_size, c.seed, batch)


def _start_manifest(work: Path, cfg: CacheConfig, stream, diffusion: bool, resume: bool) -> dict:
    if resume and (work / CACHE_JSON).exists():
        manifest = json.loads((work / CACHE_JSON).read_text())
        want = _describe(cfg, stream, diffusion)
        changed = [k for k in (*IDENTITY, "hooks", "seed", "storage_dtype") if manifest.get(k) != want[k]]
        if changed:
            raise InterpError(f"cannot resume {work}: the cache was made with other {', '.join(changed)}")
        # a kill between a shard's rename and the manifest leaves an unlisted shard, which is written again
        for s in manifest["shards"]:
            if not (work / s["file"]).exists():
                raise InterpError(f"{work / s['file']} is listed in {CACHE_JSON} but missing; start again with "
                                  f"--overwrite")
        manifest["tokens"] = cfg.tokens
        return manifest
    manifest = {**_describe(cfg, stream, diffusion), "shards": []}
    (work / CACHE_JSON).write_text(json.dumps(manifest, indent=1))
    return manifest


def _describe(cfg: CacheConfig, stream, diffusion: bool) -> dict:
    d_in = stream.model_batch(next(_tokens(stream, 0))[:1], 0)[0].shape[-1]
    d = {k: v for k, v in asdict(cfg).items() if k in (*IDENTITY, "hooks", "seed", "tokens", "storage_dtype",
                                                       "dtype")}
    return {"format": FORMAT, **d, "mask_ratio": list(cfg.mask_ratio), "d_in": d_in, "diffusion": diffusion}


def _write_shard(work: Path, manifest: dict, shard: torch.Tensor, first_batch: int, batches: int) -> None:
    from safetensors.torch import save_file

    name = f"shard-{len(manifest['shards']):05d}.safetensors"
    tmp = work / (name + ".tmp")
    save_file({"activations": shard.contiguous()}, str(tmp))
    tmp.rename(work / name)
    manifest["shards"].append({"file": name, "rows": len(shard), "first_batch": first_batch, "batches": batches})


def read_cache(path: str | Path) -> dict:
    """The manifest of a complete cache, with one clear error for anything else."""
    from interp.rundir import read_manifest

    path = Path(path)
    run = read_manifest(path) if path.is_dir() else None
    if run is None or run.get("kind") != "activations":
        raise InterpError(f"{path} is not an activation cache (make one with interp cache-activations)")
    if run.get("status") != "complete":
        raise InterpError(f"the activation cache {path} is not complete; finish it with "
                          f"interp cache-activations --resume --out {path}")
    manifest = json.loads((path / CACHE_JSON).read_text())
    if manifest.get("format") != FORMAT:
        raise InterpError(f"{path}: cache format {manifest.get('format')} is not {FORMAT}")
    manifest["rows"] = sum(s["rows"] for s in manifest["shards"])
    manifest.setdefault("keep_special_positions", True)  # caches that predate the option kept every position
    return manifest


class CachedActivations:
    """Shuffled [batch_size, n_hooks, d_in] batches from a cache; epoch e visits the shards in the order of the
    stream `sae-train/cache-order`, e. Resumable by the number of shards read (`batches_read`, named as the
    streaming source's count so the trainer treats both alike)."""

    def __init__(self, path: str | Path, manifest: dict, hooks: list[int], batch_size: int, buffer_rows: int,
                 seed: int, epochs: int, start: int = 0):
        from interp.seeds import torch_generator

        self.path, self.manifest, self.hooks = Path(path), manifest, hooks
        self.batch_size, self.buffer_rows, self.seed, self.epochs = batch_size, buffer_rows, seed, epochs
        self.batches_read = start
        self.shuffle = torch_generator(seed, "sae-train/cache-shuffle", start)

    def _shards(self) -> Iterator[torch.Tensor]:
        from safetensors import safe_open

        from interp.seeds import torch_generator

        shards = self.manifest["shards"]
        while self.batches_read < self.epochs * len(shards):
            epoch, i = divmod(self.batches_read, len(shards))
            order = torch.randperm(len(shards), generator=torch_generator(self.seed, "sae-train/cache-order", epoch))
            with safe_open(self.path / shards[int(order[i])]["file"], "pt") as f:
                acts = f.get_tensor("activations")
            self.batches_read += 1
            yield acts[:, self.hooks].float()

    def __iter__(self) -> Iterator[torch.Tensor]:
        from interp.activations import shuffled_batches

        return shuffled_batches(self._shards(), self.batch_size, self.buffer_rows, self.shuffle)
