"""Clean/corrupted task batches and the two metrics, read at the answer's positions.

An answer is tokenized by the model's own tokenizer and may be several tokens (interp/answers.py). An AR batch
row is the prompt followed by the answer but its last token (teacher forcing), so the last k positions predict
the k answer tokens; a diffusion row is the prompt followed by k masks, which predict them. Metrics are taken at
each of those positions and summed over the answer's tokens: not every task defines a corrupted answer (a
corrupted sequence is no longer a sequence), so there is no "first position where the answers differ" to read;
the sum is the log-probability view of the whole answer, and with one-token answers it is the single-position
metric. Per example:
- `kl`: KL(p_reference || p) over the whole vocabulary (the paper's; reference = the clean full model);
- `logit_diff`: logit(answer token) - logit(alt), where alt is the full model's top prediction on the corrupted
  prompt other than the answer token at that position (what the model itself answers instead);
- `prob_diff`: P(answer token) - P(alt) likewise; for a range answer (greater-than) P(right) - P(wrong), the
  paper's metric (interp/greater_than.py). A range has no one answer token, so its logit difference is refused.
Clean and corrupted prompts must tokenize to one length (positions are compared one to one); circuit discovery
samples only such pairs and refuses a task where none exist.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from interp import greater_than as gt
from interp.answers import answer_ids
from interp.errors import InterpError
from interp.tasks import make_examples

METRICS = ("kl", "logit_diff", "prob_diff")


@dataclass
class TaskBatch:
    clean: torch.Tensor  # [B, T] token ids
    corrupted: torch.Tensor  # [B, T]
    labels: torch.Tensor  # [B, k] answer token ids, read at the last k positions (a range: the start year's)
    signs: torch.Tensor | None = None  # [B, k, vocab] for a range answer (interp/greater_than.py)

    def __len__(self) -> int:
        return len(self.labels)

    def answer(self, logits: torch.Tensor) -> torch.Tensor:
        """[B, k, vocab]: the logits at the positions that predict the answer's tokens."""
        return logits[:, -self.labels.shape[1]:]

    def score(self, metric: str, answer_logits: torch.Tensor, alt: torch.Tensor) -> torch.Tensor:
        """[B] `logit_diff` or `prob_diff` at the answer positions, summed over them."""
        if self.signs is not None:
            if metric == "logit_diff":
                raise InterpError("a range answer (greater_than) has no one answer token to take a logit difference "
                                  "of; use --metric prob_diff or kl")
            return gt.prob_diff(answer_logits, self.signs, self.labels)
        if metric == "prob_diff":
            answer_logits = F.softmax(answer_logits.float(), -1)
        return logit_diff(answer_logits, self.labels, alt).sum(-1)

    def hits(self, answer_logits: torch.Tensor) -> torch.Tensor:
        """[B] bool: the greedy answer is right (every answer position's top token, or in the range)."""
        if self.signs is not None:
            return gt.hits(answer_logits, self.signs, self.labels)
        return (answer_logits.argmax(-1) == self.labels).all(-1)


def task_batches(tokenizer, task: str, split: str = "circuit", n: int = 128, seed: int = 0, batch_size: int = 32,
                 diffusion: bool = False, examples=None) -> list[TaskBatch]:
    """Batches of `n` examples of `task` (or of the given `examples`), grouped so each batch has one length."""
    from collections import defaultdict

    if batch_size < 1 or n < 1:
        raise InterpError("--n and --batch-size must be >= 1")
    if examples is None:
        examples = make_examples(task, split, n, seed, tokenizer=tokenizer, aligned=True)
    clean_ids = tokenizer([e.clean for e in examples])["input_ids"]
    corrupted_ids = tokenizer([e.corrupted for e in examples])["input_ids"]
    answers = [answer_ids(tokenizer, e.label) for e in examples]
    groups = defaultdict(list)
    for i, (c, k, a) in enumerate(zip(clean_ids, corrupted_ids, answers)):
        if len(c) != len(k):
            raise InterpError(f"task {task!r}: clean and corrupted prompts differ in token length "
                              f"({examples[i].clean!r})")
        groups[len(c), len(a)].append(i)
    batches = []
    for idx in groups.values():
        for s in range(0, len(idx), batch_size):
            chunk = idx[s : s + batch_size]
            labels = torch.tensor([answers[i] for i in chunk])
            if diffusion:
                tail = torch.full(labels.shape, tokenizer.mask_token_id)
            else:
                tail = labels[:, :-1]  # teacher forcing: the last answer token is predicted, never read
            clean = torch.cat([torch.tensor([clean_ids[i] for i in chunk]), tail], 1)
            corrupted = torch.cat([torch.tensor([corrupted_ids[i] for i in chunk]), tail], 1)
            ranges = [examples[i].label for i in chunk if isinstance(examples[i].label, gt.Later)]
            signs = gt.signs(tokenizer, ranges, len(tokenizer)) if ranges else None
            batches.append(TaskBatch(clean, corrupted, labels, signs))
    return batches


def kl(logits: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """KL(softmax(reference) || softmax(logits)) per example, over the last axis."""
    ref = F.log_softmax(reference.float(), -1)
    return (ref.exp() * (ref - F.log_softmax(logits.float(), -1))).sum(-1)


def logit_diff(logits: torch.Tensor, labels: torch.Tensor, alt: torch.Tensor) -> torch.Tensor:
    """logit(label) - logit(alt); `labels` and `alt` index the last axis of `logits`."""
    return logits.gather(-1, labels[..., None])[..., 0] - logits.gather(-1, alt[..., None])[..., 0]


def alternative(corrupted_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The top prediction on the corrupted prompt other than the label (per position)."""
    masked = corrupted_logits.detach().clone().scatter_(-1, labels[..., None], float("-inf"))
    return masked.argmax(-1)


def check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise InterpError(f"unknown metric {metric!r}; valid: {', '.join(METRICS)}")
