"""Exact-match accuracy of a model on a task: the model's whole answer, tokenized by its own tokenizer, must be
the label (AR: greedy continuation; diffusion: the answer positions masked and unmasked by the model's sampler;
see interp/answers.py)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from .answers import correct
from .options import device_map_field, dtype_field, opt, trust_remote_code_field
from .tasks import Example, make_examples


@dataclass
class EvalConfig:
    model: str = opt(help="zoo name, local HF directory, .gguf file or hub id")
    task: list[str] = opt(help="task names (repeatable or comma-separated) or 'all'")
    split: str = opt("test", "train, circuit or test")
    n: int = opt(200, "examples per task", min=1)
    seed: int = opt(0, "seed of the examples drawn", min=0)
    dtype: str = dtype_field()
    device_map: str | None = device_map_field()
    trust_remote_code: bool = trust_remote_code_field()


def encode_prompts(tokenizer, prompts: list[str]) -> tuple[dict[int, list[int]], list[list[int]]]:
    """Group prompt indices by token length, so each batch needs no padding."""
    groups: dict[int, list[int]] = defaultdict(list)
    ids = tokenizer(prompts)["input_ids"]
    for i, seq in enumerate(ids):
        groups[len(seq)].append(i)
    return dict(groups), ids


def accuracy(model, tokenizer, examples: list[Example], diffusion: bool = False) -> float:
    ok = correct(model, tokenizer, [e.clean for e in examples], [e.label for e in examples], diffusion)
    return ok.float().mean().item()


def task_accuracy(model, tokenizer, task: str, split: str = "test", n: int = 200, seed: int = 0,
                  diffusion: bool = False) -> float:
    return accuracy(model, tokenizer, make_examples(task, split, n, seed, tokenizer=tokenizer), diffusion)
