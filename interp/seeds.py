"""Named random streams: one per purpose, independent across seeds and purposes.

`stream(seed, "unlearn/retain-rows", step)` is `numpy.random.SeedSequence(seed)` spawned at a key made from
the purpose's name (and any integers after it), so no two (seed, purpose, ...) share draws: seed s's retain
rows are not seed s+1's forget rows, as ad-hoc offsets such as `seed + 1` made them. A new purpose is a new
name; it never shifts the draws of the others.
"""

from __future__ import annotations

import hashlib
import random

import numpy as np
import torch


def _key(purpose: str) -> int:
    return int.from_bytes(hashlib.sha256(purpose.encode()).digest()[:4], "little")


def stream(seed: int, purpose: str, *index: int) -> np.random.SeedSequence:
    if seed < 0 or any(i < 0 for i in index):
        raise ValueError(f"seeds and stream indices must be >= 0, got {seed} {index}")
    return np.random.SeedSequence(seed, spawn_key=(_key(purpose), *index))


def seed_of(seed: int, purpose: str, *index: int) -> int:
    """A 63-bit integer from the named stream, for APIs that take a seed (torch, random)."""
    return int(stream(seed, purpose, *index).generate_state(1, np.uint64)[0] >> np.uint64(1))


def torch_generator(seed: int, purpose: str, *index: int, device: str | torch.device = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed_of(seed, purpose, *index))


def numpy_generator(seed: int, purpose: str, *index: int) -> np.random.Generator:
    return np.random.default_rng(stream(seed, purpose, *index))


def python_random(seed: int, purpose: str, *index: int) -> random.Random:
    return random.Random(seed_of(seed, purpose, *index))


def manual_seed(seed: int, purpose: str, *index: int) -> None:
    """Seed torch's global generator (for code that draws from it, such as weight initialisers)."""
    torch.manual_seed(seed_of(seed, purpose, *index))
