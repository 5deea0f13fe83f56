"""Peak memory of this process, for run reports (what a run on a bigger model will need)."""

from __future__ import annotations

import resource

import torch


def peak_memory() -> dict[str, float | None]:
    """`peak_rss_mb`: the process's peak resident memory (Linux reports it in KiB); `peak_cuda_mb`: the peak
    of tensors allocated on the current GPU, None without one. Both cover the whole process so far."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    cuda = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
    return {"peak_rss_mb": round(rss, 1), "peak_cuda_mb": None if cuda is None else round(cuda, 1)}


def available_bytes(device) -> int:
    """Memory free for new tensors on `device`: the GPU's free memory, or the kernel's MemAvailable."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 * 2**30  # no /proc (not Linux): assume a laptop's worth
