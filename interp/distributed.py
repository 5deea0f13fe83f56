"""Several processes on `torch.distributed`, as `torchrun` launches them (one machine or many: torchrun's
rendezvous sets RANK, WORLD_SIZE, LOCAL_RANK and MASTER_ADDR/PORT; gloo on CPU, NCCL on CUDA).

`Comm` is what the training loop needs from the other ranks; with one process every method is the identity,
so the single-process path runs the same code.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch


@dataclass
class Comm:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls, device: str) -> "Comm":
        """Join the process group torchrun set up (a no-op without torchrun)."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world == 1:
            return cls()
        import torch.distributed as dist

        if not dist.is_initialized():
            cuda = device.startswith("cuda")
            if cuda:  # `cuda` is then each rank's own GPU
                torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
            dist.init_process_group("nccl" if cuda else "gloo")
        return cls(dist.get_rank(), dist.get_world_size())

    def broadcast(self, value):
        """Rank 0's `value` on every rank (a picklable Python object)."""
        if self.world == 1:
            return value
        box = [value]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()

    def any(self, flag: bool) -> bool:
        """True on every rank when any rank says True (a Ctrl-C on one rank stops all at the same step)."""
        if self.world == 1:
            return flag
        t = torch.tensor([int(flag)], device=self._device())
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
        return bool(t.item())

    def sum_(self, t: torch.Tensor) -> torch.Tensor:
        if self.world > 1:
            torch.distributed.all_reduce(t)
        return t

    def average_grads(self, params) -> None:
        """The data-parallel step: each rank's gradient of its share's mean loss, averaged, is the gradient of
        the global batch's mean loss (the shares are equal). One flat all-reduce instead of one per tensor."""
        if self.world == 1:
            return
        grads = [p.grad for p in params if p.grad is not None]
        flat = torch.cat([g.reshape(-1) for g in grads])
        torch.distributed.all_reduce(flat)
        flat /= self.world
        offset = 0
        for g in grads:
            g.copy_(flat[offset:offset + g.numel()].view_as(g))
            offset += g.numel()

    def exchange(self, acts: torch.Tensor, owners: list[int] | None) -> list[torch.Tensor]:
        """Every rank's `acts` ([n_r, n_hooks, d], n_r may differ), in rank order, as this rank needs them: all
        hooks (`owners` None: data-parallel, an all-gather) or only the hooks `owners` gives to this rank (hook-
        parallel, an all-to-all: each rank receives only its hooks' columns)."""
        if self.world == 1:
            return [acts if owners is None else acts[:, self.hooks_of(owners)]]
        import torch.distributed as dist

        counts = [torch.zeros(1, dtype=torch.long, device=acts.device) for _ in range(self.world)]
        dist.all_gather(counts, torch.tensor([len(acts)], device=acts.device))
        counts = [int(c) for c in counts]
        rows = max(counts)
        padded = torch.cat([acts, acts.new_zeros(rows - len(acts), *acts.shape[1:])])
        if owners is None:
            got = [torch.empty_like(padded) for _ in range(self.world)]
            dist.all_gather(got, padded)
        else:
            width = max(len(self.hooks_of(owners, r)) for r in range(self.world))
            send = [self._pad_hooks(padded[:, self.hooks_of(owners, r)], width) for r in range(self.world)]
            got = [torch.empty_like(send[0]) for _ in range(self.world)]
            dist.all_to_all(got, send)
            mine = len(self.hooks_of(owners))
            got = [g[:, :mine] for g in got]
        return [g[:n] for g, n in zip(got, counts)]

    def hooks_of(self, owners: list[int], rank: int | None = None) -> list[int]:
        rank = self.rank if rank is None else rank
        return [h for h, r in enumerate(owners) if r == rank]

    @staticmethod
    def _pad_hooks(t: torch.Tensor, width: int) -> torch.Tensor:
        return torch.cat([t, t.new_zeros(t.shape[0], width - t.shape[1], *t.shape[2:])], dim=1).contiguous()

    def _device(self) -> torch.device:
        return torch.device("cuda", torch.cuda.current_device()) \
            if torch.distributed.get_backend() == "nccl" else torch.device("cpu")

    def close(self) -> None:
        if self.world > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def hook_owners(n_hooks: int, world: int) -> list[int]:
    """Hook h trains on rank h mod world (round robin: ranks differ by at most one hook)."""
    return [h % world for h in range(n_hooks)]
