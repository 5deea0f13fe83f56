"""Where a train-sae run's activations come from, and how they are split over torchrun's ranks.

A `Source` is the model's activation stream (interp/activations.py) or an activation cache
(saes/activation_cache.py). Both yield the same global batch on every rank, batch for batch what one process
would see. Data-parallel (the default under torchrun): each rank trains every SAE on its slice of rows and the
gradients are averaged. Hook-parallel (`distribute_hooks`): hook h's SAEs live on rank h mod world and see the
whole batch of their hook; the stream hands each rank only its hooks' columns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

import torch

from interp.distributed import Comm, hook_owners
from interp.errors import InterpError

from .config import SAETrainConfig, default_hook


@dataclass
class Source:
    cfg: SAETrainConfig
    comm: Comm
    hooks: list[str]  # every hook of the run
    d_in: int
    loaded: Any = None  # the model, when streaming
    cache: dict | None = None  # the cache's manifest
    owners: list[int] | None = None  # hook-parallel: the rank of each hook
    reader: Any = field(default=None, init=False)

    @property
    def mine(self) -> set[int] | None:
        """The hooks this rank trains (None: all of them, data-parallel or one process)."""
        return None if self.owners is None else set(self.comm.hooks_of(self.owners))

    @property
    def writes(self) -> bool:
        """Whether this rank writes its SAEs into checkpoints (data-parallel ranks hold equal copies)."""
        return self.comm.main or self.owners is not None

    def column_of(self, hook: int) -> int:
        return hook if self.owners is None else self.comm.hooks_of(self.owners).index(hook)

    def column(self, state) -> int:
        return self.column_of(state.hook_index)

    def batches(self, start: int) -> Iterator[torch.Tensor]:
        """Global batches from model batch (or cache shard) `start` on."""
        cfg = self.cfg
        if self.cache is not None:
            from .activation_cache import CachedActivations

            columns = [self.cache["hooks"].index(h) for h in self.hooks]
            if self.owners is not None:
                columns = [columns[h] for h in self.comm.hooks_of(self.owners)]
            self.reader = CachedActivations(cfg.activations, self.cache, columns, cfg.batch_size,
                                            cfg.batch_size * cfg.buffer_batches, cfg.seed, cfg.epochs, start)
        else:
            from interp.activations import ActivationStream

            self.reader = ActivationStream(self.loaded.bridge, self.loaded.tokenizer,
                                           cfg.stream(self.loaded.is_diffusion),
                                           start, self.comm, self.owners)
        return iter(self.reader)

    def rows(self, batch: torch.Tensor) -> torch.Tensor:
        """This rank's rows of a global batch: a slice under data-parallel, all of it otherwise."""
        if self.owners is not None or self.comm.world == 1:
            return batch
        share = len(batch) // self.comm.world
        return batch[self.comm.rank * share:(self.comm.rank + 1) * share]

    def gather_logs(self, log: dict) -> dict:
        """Step metrics for the curves: averaged over data-parallel ranks, collected from hook-parallel ones."""
        if self.comm.world == 1:
            return log
        if self.owners is None:
            names = sorted(log)
            keys = sorted(log[names[0]])
            t = torch.tensor([[log[n][k] for k in keys] for n in names], dtype=torch.float64)
            self.comm.sum_(t)
            return {n: dict(zip(keys, (t[i] / self.comm.world).tolist())) for i, n in enumerate(names)}
        logs = [None] * self.comm.world
        torch.distributed.all_gather_object(logs, log)
        return {k: v for part in logs for k, v in part.items()}

    def model(self):
        """The model for the evaluation: the streaming one, or loaded now for a cache."""
        if self.loaded is None:
            from interp.loading import load_model

            cfg = self.cfg
            self.loaded = load_model(cfg.model, device=cfg.device, dtype=cfg.dtype, device_map=cfg.device_map,
                                     trust_remote_code=cfg.trust_remote_code)
        return self.loaded


def open_source(cfg: SAETrainConfig, comm: Comm, cache: dict | None) -> Source:
    """Check the run against the model (loaded here) or the cache (`apply_cache`'s) before anything is
    written; fills in the hooks."""
    if comm.world > 1 and not cfg.distribute_hooks:
        if cfg.batch_size % comm.world:
            raise InterpError(f"--batch-size {cfg.batch_size} does not split evenly over {comm.world} processes")
        if cfg.architecture == "batchtopk":
            raise InterpError("batchtopk picks its latents over the whole batch, which data-parallel ranks do not "
                              "see; train it in one process or with --distribute-hooks")
    source = Source(cfg, comm, cfg.hooks, cache["d_in"], cache=cache) if cache else _stream_source(cfg, comm)
    if max(cfg.k) > cfg.d_sae(source.d_in):
        raise InterpError(f"k = {max(cfg.k)} is larger than the width {cfg.d_sae(source.d_in)}; "
                          f"k must be at most the width")
    if cfg.distribute_hooks and comm.world > 1:
        if len(source.hooks) < comm.world:
            raise InterpError(f"--distribute-hooks needs at least one hook per process ({len(source.hooks)} hooks, "
                              f"{comm.world} processes)")
        source.owners = hook_owners(len(source.hooks), comm.world)
    return source


def _stream_source(cfg: SAETrainConfig, comm: Comm) -> Source:
    from interp.activations import ActivationStream
    from interp.loading import load_model

    loaded = load_model(cfg.model, device=cfg.device, dtype=cfg.dtype, device_map=cfg.device_map,
                        trust_remote_code=cfg.trust_remote_code)
    if not cfg.hooks:
        cfg.hooks = [default_hook(len(loaded.bridge.blocks))]
    probe = ActivationStream(loaded.bridge, loaded.tokenizer, cfg.stream(loaded.is_diffusion))  # checks hooks, dataset
    cfg.hooks = probe.hooks  # duplicates dropped
    d_in = probe.model_batch(next(probe.tokens)[:1])[0].shape[-1]
    return Source(cfg, comm, cfg.hooks, d_in, loaded=loaded)


def apply_cache(cfg: SAETrainConfig) -> dict:
    """The manifest of the cache `cfg.activations`; sets what the cache was made with (model, dataset, context,
    masking, hooks) and refuses an option given otherwise, in one line."""
    from .activation_cache import IDENTITY, read_cache

    cache = read_cache(cfg.activations)
    defaults = SAETrainConfig()
    plain = lambda key, value: list(value) if key == "mask_ratio" else value  # noqa: E731
    for key in IDENTITY:
        have, given = plain(key, cache[key]), plain(key, getattr(cfg, key))
        if given not in (have, plain(key, getattr(defaults, key))):  # left at its default: the cache's
            raise InterpError(f"the cache {cfg.activations} holds {key.replace('_', ' ')} {have!r}, not {given!r}")
        setattr(cfg, key, tuple(have) if key == "mask_ratio" else have)
    missing = [h for h in cfg.hooks if h not in cache["hooks"]]
    if missing:
        raise InterpError(f"the cache {cfg.activations} has no hook {missing[0]}; it holds {', '.join(cache['hooks'])}")
    cfg.hooks = list(dict.fromkeys(cfg.hooks)) or list(cache["hooks"])
    available = cfg.epochs * cache["rows"]
    if cfg.steps() * cfg.batch_size > available:
        need = -(-cfg.steps() * cfg.batch_size // cache["rows"])
        raise InterpError(f"the cache holds {cache['rows']:,} activations; {cfg.steps() * cfg.batch_size:,} "
                          f"training activations need --epochs {need} (or fewer --tokens)")
    return cache
