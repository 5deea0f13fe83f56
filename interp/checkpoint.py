"""Resumable training checkpoints: model and optimizer state plus the next step, written atomically.

Checkpoints are read back with `safe_load`: tensors and plain containers only, so a checkpoint copied from
someone else's run directory cannot run code when it is loaded.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .errors import InterpError
from .rundir import replacing


def safe_load(path: Path, map_location="cpu"):
    """`torch.load` with `weights_only=True`; anything else in the file is refused in one line."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # UnpicklingError for foreign objects; RuntimeError / EOFError for a torn file
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise InterpError(f"refused to load {path}: it is not a plain tensor checkpoint ({first})") from None


def save_checkpoint(path: Path, model, optimizer, step: int) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"step": step, "model": model.state_dict(), "optimizer": optimizer.state_dict()}
    with replacing(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path, model, optimizer) -> int:
    """Restore state if a checkpoint exists; return the step to continue from (0 when none)."""
    path = Path(path)
    if not path.exists():
        return 0
    state = safe_load(path)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    return int(state["step"])
