"""Exact-match accuracy of a model on a task: the argmax next token (AR) or the argmax at an
appended `<mask>` (diffusion) must be the label token."""

from __future__ import annotations

from collections import defaultdict

import torch

from .tasks import Example, make_examples
from .tokenizer import number_token_id


def encode_prompts(tokenizer, prompts: list[str]) -> tuple[dict[int, list[int]], list[list[int]]]:
    """Group prompt indices by token length, so each batch needs no padding (task prompts of one
    family share a length, since every number is one token)."""
    groups: dict[int, list[int]] = defaultdict(list)
    ids = tokenizer(prompts)["input_ids"]
    for i, seq in enumerate(ids):
        groups[len(seq)].append(i)
    return dict(groups), ids


@torch.no_grad()
def answer_logits(model, tokenizer, prompts: list[str], diffusion: bool = False, batch_size: int = 256) -> torch.Tensor:
    """Logits for the answer position of every prompt, shape (len(prompts), vocab)."""
    from .diffusion import masked_token_logits

    groups, ids = encode_prompts(tokenizer, prompts)
    out = torch.empty(len(prompts), model.config.vocab_size)
    model.eval()
    for idx in groups.values():
        for s in range(0, len(idx), batch_size):
            chunk = idx[s : s + batch_size]
            x = torch.tensor([ids[i] for i in chunk])
            if diffusion:
                out[chunk] = masked_token_logits(model, x, tokenizer.mask_token_id).float()
            else:
                out[chunk] = model(input_ids=x).logits[:, -1].float()
    return out


def accuracy(model, tokenizer, examples: list[Example], diffusion: bool = False) -> float:
    logits = answer_logits(model, tokenizer, [e.clean for e in examples], diffusion)
    labels = torch.tensor([number_token_id(e.label) for e in examples])
    return (logits.argmax(-1) == labels).float().mean().item()


def task_accuracy(model, tokenizer, task: str, split: str = "test", n: int = 200, seed: int = 0,
                  diffusion: bool = False) -> float:
    return accuracy(model, tokenizer, make_examples(task, split, n, seed), diffusion)
