"""Resumable training checkpoints: model and optimizer state plus the next step, written atomically."""

from __future__ import annotations

import os
from pathlib import Path

import torch


def save_checkpoint(path: Path, model, optimizer, step: int) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    state = {"step": step, "model": model.state_dict(), "optimizer": optimizer.state_dict()}
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path, model, optimizer) -> int:
    """Restore state if a checkpoint exists; return the step to continue from (0 when none)."""
    path = Path(path)
    if not path.exists():
        return 0
    state = torch.load(path, map_location="cpu", weights_only=False)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    return int(state["step"])
