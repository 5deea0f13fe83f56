"""Training several sae-lens training SAEs (a k sweep, several hooks) from one activation stream.

The SAE class and its step come from `cfg.architecture` (saes/architectures/; the default `topk` steps with
`topk_train_step`, which computes sae-lens's loss sparsely). The optimiser is `cfg.optimizer` (saes/optimizers.py:
sparsify's schedule-free sign descent by default, or sae-lens's Adam recipe), after a gradient-norm clip of
1.0; activations are scaled to mean norm sqrt(d_in), folded into the weights at the end. A latent is dead when it
has not fired for `dead_tokens` activations; dead latents feed the AuxK loss.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from sae_lens.saes.sae import SAEMetadata, TrainingSAE

from interp.checkpoint import safe_load

from .architectures import Architecture, fired, get_architecture
from .config import SAETrainConfig, sae_name
from .optimizers import make_optimizer


@dataclass
class SAEState:
    name: str
    hook_index: int
    sae: TrainingSAE
    architecture: Architecture
    optimizer: torch.optim.Optimizer
    scheduler: object
    since_fired: torch.Tensor  # activations since each latent last fired
    fired: torch.Tensor  # firing counts over training

    def state_dict(self) -> dict:
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "since_fired": self.since_fired, "fired": self.fired}

    def load_state_dict(self, d: dict) -> None:
        self.optimizer.load_state_dict(d["optimizer"])
        self.scheduler.load_state_dict(d["scheduler"])
        self.since_fired, self.fired = d["since_fired"], d["fired"]


def make_states(cfg: SAETrainConfig, hooks: list[str], d_in: int, model_name: str,
                only: set[int] | None = None) -> list[SAEState]:
    """One state per (hook, k); `only` keeps the hooks of this rank (hook-parallel)."""
    states = []
    arch = get_architecture(cfg.architecture)
    for h, hook in enumerate(hooks):
        if only is not None and h not in only:
            continue
        for k in cfg.k:
            torch.manual_seed(cfg.seed)
            meta = SAEMetadata(model_name=model_name, hook_name=hook, hook_head_index=None,
                               context_size=cfg.context_size, prepend_bos=True, dataset_path=cfg.dataset)
            sae = arch.make(cfg, d_in, k, meta)
            opt, sched = make_optimizer(cfg, sae)
            d_sae = sae.cfg.d_sae
            states.append(SAEState(sae_name(hook, k), h, sae, arch, opt, sched,
                                   torch.zeros(d_sae, dtype=torch.long, device=cfg.device),
                                   torch.zeros(d_sae, dtype=torch.long, device=cfg.device)))
    return states


def train_step(state: SAEState, x: torch.Tensor, dead_tokens: int, comm=None) -> dict[str, float]:
    """One optimiser step on scaled activations `x`; returns the step's metrics. With `comm` (data-parallel),
    `x` is this rank's share of the batch: gradients are averaged and firings counted over all ranks."""
    sae = state.sae
    dead = state.since_fired >= dead_tokens
    out = state.architecture.step(sae, x, dead)
    out["loss"].backward()
    if comm is not None:
        comm.average_grads(sae.parameters())
    torch.nn.utils.clip_grad_norm_(sae.parameters(), 1.0)
    state.optimizer.step()
    state.optimizer.zero_grad(set_to_none=True)
    state.scheduler.step()
    with torch.no_grad():
        hit, l0 = fired(out)
        counts = torch.bincount(hit, minlength=len(state.fired))
        if comm is not None:
            comm.sum_(counts)
        state.since_fired += len(x) * (comm.world if comm is not None else 1)
        state.since_fired[counts > 0] = 0
        state.fired += counts
        var = (x - x.mean(0)).pow(2).sum(-1).mean()
        mse = out["mse_loss"].item()
    return {"mse": mse, "aux": out["auxiliary_reconstruction_loss"].item(), "explained_variance": 1 - mse / var.item(),
            "l0": l0.float().mean().item(), "dead_fraction": dead.float().mean().item(),
            "lr": state.optimizer.param_groups[0]["lr"]}


def save_checkpoint(work: Path, states: list[SAEState], progress: dict, comm=None, writes: bool = True) -> None:
    """Write the checkpoint next to the old one, then swap: a kill never leaves a half-written checkpoint.
    Under torchrun, ranks with `writes` add their SAEs and rank 0 swaps (barriers keep the order)."""
    from interp.distributed import Comm

    comm = comm or Comm()
    tmp, final, old = work / "checkpoint.tmp", work / "checkpoint", work / "checkpoint.old"
    if comm.main:
        shutil.rmtree(tmp, ignore_errors=True)
    comm.barrier()
    for s in states if writes else []:
        s.sae.save_model(tmp / s.name)
        torch.save(s.state_dict(), tmp / s.name / "trainer_state.pt")
    comm.barrier()
    if comm.main:
        (tmp / "progress.json").write_text(json.dumps(progress))
        if final.exists():
            final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    comm.barrier()


def load_checkpoint(work: Path, states: list[SAEState]) -> dict | None:
    ckpt = work / "checkpoint"
    if not (ckpt / "progress.json").exists():
        ckpt = work / "checkpoint.old"  # killed between the two renames
        if not (ckpt / "progress.json").exists():
            return None
    for s in states:
        s.sae.load_weights_from_checkpoint(ckpt / s.name)
        s.load_state_dict(safe_load(ckpt / s.name / "trainer_state.pt", map_location=s.sae.W_dec.device))
    return json.loads((ckpt / "progress.json").read_text())
