"""Named random streams: no two (seed, purpose, index) share draws."""

import numpy as np
import pytest
import torch

from interp.seeds import seed_of, stream, torch_generator

PURPOSES = ["unlearn/retain-rows", "unlearn/forget-rows", "activations/masks", "finetune/order", "sae-eval/masks"]


def draws(seed, purpose, index):
    return stream(seed, purpose, index).generate_state(512, np.uint64)


def test_two_seeds_share_no_draws():
    seen = {}
    for seed in range(4):
        for purpose in PURPOSES:
            for index in range(3):
                for value in draws(seed, purpose, index).tolist():
                    assert value not in seen, f"{(seed, purpose, index)} repeats a draw of {seen[value]}"
                    seen[value] = (seed, purpose, index)


def test_torch_streams_differ_where_offsets_collided():
    # the old rule seeded seed s's retain rows with s + 1 and seed s + 1's forget rows with (s + 1) + 0
    old_a = torch.randint(1 << 30, (64,), generator=torch.Generator().manual_seed(0 + 1))
    old_b = torch.randint(1 << 30, (64,), generator=torch.Generator().manual_seed(1 + 0))
    assert torch.equal(old_a, old_b)
    new_a = torch.randint(1 << 30, (64,), generator=torch_generator(0, "unlearn/retain-rows"))
    new_b = torch.randint(1 << 30, (64,), generator=torch_generator(1, "unlearn/forget-rows"))
    assert not set(new_a.tolist()) & set(new_b.tolist())


def test_streams_are_reproducible_and_bounded():
    assert seed_of(3, "x", 7) == seed_of(3, "x", 7) < 2 ** 63
    with pytest.raises(ValueError):
        stream(-1, "x")
