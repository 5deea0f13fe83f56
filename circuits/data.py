"""Clean/corrupted task batches and the two metrics, both read at the answer position.

The answer position is the last prompt token for an AR model, and a `<mask>` appended to the prompt for a
diffusion model (where it predicts the answer). Metrics, per example:
- `kl`: KL(p_reference || p) over the whole vocabulary (the paper's; reference = the clean full model);
- `logit_diff`: logit(label) - logit(alt), where alt is the full model's top prediction on the corrupted
  prompt other than the label. Not every task has a well-defined "corrupted answer" (a corrupted sequence is
  no longer a sequence), so alt is what the model itself answers instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from interp.errors import InterpError
from interp.evaluate import encode_prompts
from interp.tasks import make_examples
from interp.tokenizer import number_token_id

METRICS = ("kl", "logit_diff")


@dataclass
class TaskBatch:
    clean: torch.Tensor  # [B, T] token ids
    corrupted: torch.Tensor  # [B, T]
    labels: torch.Tensor  # [B] answer token ids

    def __len__(self) -> int:
        return len(self.labels)


def task_batches(tokenizer, task: str, split: str = "circuit", n: int = 128, seed: int = 0, batch_size: int = 32,
                 diffusion: bool = False, examples=None) -> list[TaskBatch]:
    """Batches of `n` examples of `task` (or of the given `examples`), grouped so each batch has one length."""
    if batch_size < 1 or n < 1:
        raise InterpError("--n and --batch-size must be >= 1")
    examples = examples if examples is not None else make_examples(task, split, n, seed)
    groups, clean_ids = encode_prompts(tokenizer, [e.clean for e in examples])
    corrupted_ids = tokenizer([e.corrupted for e in examples])["input_ids"]
    batches = []
    for idx in groups.values():
        for s in range(0, len(idx), batch_size):
            chunk = idx[s : s + batch_size]
            clean = torch.tensor([clean_ids[i] for i in chunk])
            corrupted = torch.tensor([corrupted_ids[i] for i in chunk])
            if clean.shape != corrupted.shape:
                raise InterpError(f"task {task!r}: clean and corrupted prompts differ in token length")
            if diffusion:
                mask = torch.full((len(chunk), 1), tokenizer.mask_token_id)
                clean, corrupted = torch.cat([clean, mask], 1), torch.cat([corrupted, mask], 1)
            labels = torch.tensor([number_token_id(examples[i].label) for i in chunk])
            batches.append(TaskBatch(clean, corrupted, labels))
    return batches


def kl(logits: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """KL(softmax(reference) || softmax(logits)) per example, over the last axis."""
    ref = F.log_softmax(reference.float(), -1)
    return (ref.exp() * (ref - F.log_softmax(logits.float(), -1))).sum(-1)


def logit_diff(logits: torch.Tensor, labels: torch.Tensor, alt: torch.Tensor) -> torch.Tensor:
    return logits.gather(-1, labels[:, None])[:, 0] - logits.gather(-1, alt[:, None])[:, 0]


def alternative(corrupted_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The top prediction on the corrupted prompt other than the label."""
    masked = corrupted_logits.detach().clone()
    masked[torch.arange(len(labels)), labels] = float("-inf")
    return masked.argmax(-1)


def check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise InterpError(f"unknown metric {metric!r}; valid: {', '.join(METRICS)}")
