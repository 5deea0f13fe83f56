"""The greater-than task (Hanna et al. 2023, docs/methods.md §2): "The war lasted from the year 1732 to the year 17"
is right with any two-digit year after 32. The corrupted prompt starts in year 01, so every year is after it.

There is no single answer, so the label is a range (`Later(32)`) and the prompt ends with the century: the two
year digits follow it glued. A tokenizer writes them as one token (GPT-2: "17" "32") or as two digit tokens
(SmolLM2: "1" "7" "3" "2"); centuries written any other way (Llama 3's "173" "2") are dropped, and the task is
refused when none is left. A batch carries, per answer position, a sign for every token: +1 for a right year
(or tens digit above the start's), -1 for a wrong one, 0 for the start's own tens digit, whose units decide.
- probability difference: P(right year) - P(wrong year), the paper's metric; with two digit tokens it is
  sum_t s(t) P(t) + P(start's tens) * sum_u s(u) P(u | start's tens), the same quantity over two positions;
- accuracy: the greedy year is after the start (the tens digit above it, or equal and the units above).
The start year's own tokens are fed as the answer prefix (teacher forcing), as for every other task.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .errors import InterpError

TEMPLATE = "The {noun} lasted from the year {cc}{yy:02d} to the year {cc}"
CENTURIES = tuple(str(c) for c in range(11, 18))
NOUNS = ("war", "siege", "campaign", "expedition", "voyage", "reign", "drought", "famine", "rebellion", "conflict",
         "crisis", "journey", "dynasty", "occupation", "exile", "trial", "strike", "tour")
WORDS = {"nouns": NOUNS, "centuries": CENTURIES}  # the centuries are kept by how a tokenizer writes years
STARTS = range(2, 99)  # clean start years; 01 is the corrupted one
CORRUPTED_START = 1


@dataclass(frozen=True)
class Later:
    """A range answer: any two-digit year after `than`, written straight after the century."""
    than: int

    def __str__(self) -> str:  # the CSV form
        return f">{self.than:02d}"

    @property
    def text(self) -> str:  # the tokens fed after the prompt: the start year's own digits
        return f"{self.than:02d}"


def parse(label: str) -> Later | None:
    m = re.fullmatch(r">(\d\d)", label)
    return Later(int(m.group(1))) if m else None


def _years(tokenizer, cc: str) -> list[list[int]] | None:
    """ids[yy]: the tokens of the two digits after century `cc`, when they split as the task needs."""
    enc = lambda s: tokenizer(s, add_special_tokens=False)["input_ids"]
    head = enc(f"the year {cc}")
    ids = []
    for yy in range(100):
        full, alone = enc(f"the year {cc}{yy:02d}"), enc(f"{yy:02d}")
        if full[: len(head)] != head or full[len(head):] != alone:
            return None
        ids.append(alone)
    k = {len(a) for a in ids}
    if k == {1}:
        return ids if len({a[0] for a in ids}) == 100 else None
    if k == {2}:  # digit tokens: the tens token must depend on the tens digit only, and so the units
        tens = {yy // 10: a[0] for yy, a in enumerate(ids)}
        units = {yy % 10: a[1] for yy, a in enumerate(ids)}
        ok = all(a == [tens[yy // 10], units[yy % 10]] for yy, a in enumerate(ids))
        return ids if ok and len(set(tens.values())) == 10 and len(set(units.values())) == 10 else None
    return None


def centuries(tokenizer) -> tuple[str, ...]:
    """The centuries whose years `tokenizer` writes as century + one or two year tokens."""
    if tokenizer is None:
        return CENTURIES
    kept = tuple(cc for cc in CENTURIES if _years(tokenizer, cc) is not None)
    if not kept:
        raise InterpError("task 'greater_than' cannot be built on this tokenizer: it writes no year 1100..1799 as "
                          "the century followed by one or two year tokens")
    return kept


def signs(tokenizer, labels: list[Later], vocab: int) -> torch.Tensor:
    """[B, k, vocab]: +1 / -1 / 0 per token at each answer position (module docstring)."""
    ids = _years(tokenizer, centuries(tokenizer)[0])  # the year tokens are the same after every kept century
    out = torch.zeros(len(labels), len(ids[0]), vocab)
    for b, label in enumerate(labels):
        t0, u0 = divmod(label.than, 10)
        for yy, a in enumerate(ids):
            if len(a) == 1:
                out[b, 0, a[0]] = 1.0 if yy > label.than else -1.0
                continue
            t, u = divmod(yy, 10)
            out[b, 0, a[0]] = 0.0 if t == t0 else (1.0 if t > t0 else -1.0)
            out[b, 1, a[1]] = 1.0 if u > u0 else -1.0
    return out


def _fit(s: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """Signs padded to the model's vocabulary (embeddings are often padded past the tokenizer's)."""
    return F.pad(s, (0, logits.shape[-1] - s.shape[-1])).to(logits.device)


def prob_diff(logits: torch.Tensor, s: torch.Tensor, ties: torch.Tensor) -> torch.Tensor:
    """[B]: P(right year) - P(wrong year) from the answer positions' logits [B, k, V] (module docstring)."""
    p = F.softmax(logits.float(), -1)
    terms = (p * _fit(s, logits)).sum(-1)
    if terms.shape[1] == 1:
        return terms[:, 0]
    return terms[:, 0] + p[:, 0].gather(-1, ties[:, :1])[:, 0] * terms[:, 1]


def hits(logits: torch.Tensor, s: torch.Tensor, ties: torch.Tensor) -> torch.Tensor:
    """[B] bool: the greedy year is after the start (the second position is read only when the first is a tie)."""
    top = logits.argmax(-1)
    sign = _fit(s, logits).gather(-1, top[..., None])[..., 0]
    ok = sign[:, 0] > 0
    if top.shape[1] == 2:
        ok |= (top[:, 0] == ties[:, 0]) & (sign[:, 1] > 0)
    return ok


def sampled_right(tokenizer, ids: list[int], label: Later) -> bool:
    """Whether sampled answer tokens read as a two-digit year after the start (diffusion accuracy)."""
    text = tokenizer.decode(ids).strip()
    return len(text) == 2 and text.isdigit() and int(text) > label.than
