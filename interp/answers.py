"""Answers on any tokenizer: a task's answer is text (`" 70"`, `" Mary"`), tokenized by the loaded model's own
tokenizer, and may be several tokens.

An encoded batch is `inputs` [B, T] and `targets` [B, T]: `targets[b, t]` is the answer token that the logits at
position t must predict, and IGNORE everywhere else. Autoregressive (AR) inputs are the prompt followed by the
answer (teacher forcing: position t predicts token t + 1); diffusion inputs are the prompt followed by one mask
per answer token (each mask predicts its own token). AR rows of different lengths are right-padded: under causal
attention a pad never changes the logits before it, and pads carry no target. Diffusion attention is
bidirectional, so a diffusion batch must be one length (callers group prompts by length).

Greedy decoding reproduces the answer exactly when, with the answer's own prefix fed back, every answer position's
argmax is the answer token (the greedy path then is that prefix), and the token after it does not continue the
answer's last word (" 7" is not right when the model goes on to " 70"). One teacher-forced forward pass decides
it; `tests/benchmarks/smollm2.py` checks it against `transformers` `generate`, prompt by prompt.
"""

from __future__ import annotations

from collections import defaultdict

import torch
import torch.nn.functional as F

from .errors import InterpError
from .greater_than import Later, hits, sampled_right, signs

IGNORE = -100


def answer_text(label) -> str:
    """The text that follows a prompt when the model answers `label` (prompts end before a space; a range
    label's prompt ends with the century, and its start year's digits follow it glued)."""
    return label.text if isinstance(label, Later) else f" {label}"


def answer_ids(tokenizer, label) -> list[int]:
    ids = tokenizer(answer_text(label), add_special_tokens=False)["input_ids"]
    if not ids or (tokenizer.unk_token_id is not None and tokenizer.unk_token_id in ids):
        raise InterpError(f"answer {label!r} cannot be written with this tokenizer (it tokenizes to {ids})")
    return ids


def pad_id(tokenizer) -> int:
    for tid in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if tid is not None:
            return tid
    return 0


def subword(tokenizer) -> bool:
    """Whether a token can continue an answer's last word (" 1" then "0" reads " 10"): true of BPE and
    SentencePiece tokenizers, false of the zoo's word-level one."""
    ones, zero = answer_ids(tokenizer, 1), tokenizer("0", add_special_tokens=False)["input_ids"]
    return len(zero) == 1 and continues(tokenizer, ones, zero[0])


def encode(tokenizer, prompts: list[str], labels: list, diffusion: bool,
           stop: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, targets) for prompts and their answers (module docstring). With `stop` (AR), the position after
    the answer also targets the end-of-sequence token: fine-tuning then teaches the model to end its answer."""
    prompt_ids = tokenizer(prompts)["input_ids"]
    rows = []
    for p, label in zip(prompt_ids, labels):
        a = answer_ids(tokenizer, label)
        if diffusion:
            rows.append((p + [tokenizer.mask_token_id] * len(a), [IGNORE] * len(p) + a))
        else:
            rows.append((p + a, [IGNORE] * (len(p) - 1) + a + [tokenizer.eos_token_id if stop else IGNORE]))
    width = max(len(x) for x, _ in rows)
    if diffusion and any(len(x) != width for x, _ in rows):
        raise InterpError("a diffusion model needs the prompts and answers of a batch to share a token length; "
                          "under this tokenizer they do not")
    fill = pad_id(tokenizer)
    inputs = torch.tensor([x + [fill] * (width - len(x)) for x, _ in rows])
    targets = torch.tensor([y + [IGNORE] * (width - len(y)) for _, y in rows])
    return inputs, targets


def by_length(tokenizer, prompts: list[str], labels: list, diffusion: bool) -> dict[int, list[int]]:
    """Example indices grouped by their encoded length (no padding inside a group)."""
    groups: dict[int, list[int]] = defaultdict(list)
    ids = tokenizer(prompts)["input_ids"]
    for i, (p, label) in enumerate(zip(ids, labels)):
        groups[len(p) + len(answer_ids(tokenizer, label))].append(i)
    return dict(groups)


def answer_ce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over all answer tokens in the batch."""
    return F.cross_entropy(logits.transpose(1, 2).float(), targets, ignore_index=IGNORE)


def answer_logprob(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """[B] log-probability of each row's whole answer (the sum over its tokens)."""
    mask = targets != IGNORE
    lp = F.log_softmax(logits.float(), -1).gather(-1, targets.clamp(min=0)[..., None])[..., 0]
    return (lp * mask).sum(1)


def first_answer_position(targets: torch.Tensor) -> torch.Tensor:
    """[B] the position whose logits predict each row's first answer token."""
    return (targets != IGNORE).int().argmax(1)


def teacher_forced_correct(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """[B] every answer position's argmax is its answer token."""
    mask = targets != IGNORE
    return ((logits.argmax(-1) == targets) | ~mask).all(1)


def continues(tokenizer, answer: list[int], next_id: int) -> bool:
    """Whether `next_id` after `answer` runs on into the answer's last word (a letter or digit joins it)."""
    text = tokenizer.decode(answer)
    longer = tokenizer.decode(answer + [next_id])
    return longer.startswith(text) and len(longer) > len(text) and longer[len(text)].isalnum()


@torch.no_grad()
def correct(model, tokenizer, prompts: list[str], labels: list, diffusion: bool = False,
            batch_size: int = 64) -> torch.Tensor:
    """[n] bool: whether the model's answer to each prompt is exactly its label (or, for a range label, in its
    range: interp/greater_than.py). AR: greedy continuation (module docstring); diffusion: the answer positions
    start masked and the model's own sampler (low-confidence remasking, one token per step) unmasks them."""
    from .diffusion import sample

    model.eval()
    out = torch.zeros(len(prompts), dtype=torch.bool)
    device = next(model.parameters()).device
    for idx in by_length(tokenizer, prompts, labels, diffusion).values():
        for s in range(0, len(idx), batch_size):
            chunk = idx[s : s + batch_size]
            inputs, targets = encode(tokenizer, [prompts[i] for i in chunk], [labels[i] for i in chunk], diffusion)
            inputs, targets = inputs.to(device), targets.to(device)
            if diffusion:
                k = int((targets[0] != IGNORE).sum())
                got = sample(model, inputs[:, :-k], tokenizer.mask_token_id, gen_length=k, denoise_steps=k)
                if isinstance(labels[chunk[0]], Later):
                    out[chunk] = torch.tensor([sampled_right(tokenizer, g, labels[i])
                                               for g, i in zip(got[:, -k:].tolist(), chunk)])
                else:
                    out[chunk] = (got[:, -k:] == targets[:, -k:]).all(1).cpu()
                continue
            logits = model(input_ids=inputs).logits
            if isinstance(labels[chunk[0]], Later):  # one prompt length per group: the answer is the last k
                k = int((targets[0] != IGNORE).sum())
                where = slice(inputs.shape[1] - k - 1, inputs.shape[1] - 1)
                out[chunk] = hits(logits[:, where], signs(tokenizer, [labels[i] for i in chunk], logits.shape[-1]),
                                  inputs[:, -k:]).cpu()
                continue
            ok = teacher_forced_correct(logits, targets).cpu()
            after = logits[:, -1].argmax(-1).tolist()  # one length per group: the position after the answer
            for j, i in enumerate(chunk):
                if ok[j]:
                    answer = answer_ids(tokenizer, labels[i])
                    ok[j] = not continues(tokenizer, answer, after[j])
            out[chunk] = ok
    return out
