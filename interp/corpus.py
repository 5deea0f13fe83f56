"""The generated base corpus the zoo models are pretrained on.

It carries the arithmetic of the six task families only in other surface forms than the tasks use:
words, and symbols in other orders (`c = a + b`, sequences listed backwards, `m = LCM ( a, b )`),
plus, where a recipe asks (`in_format_share`; pythia-mini: 0.1%), a sliver of add/sub, mul/div and LCM
lines in the task's order without its instruction.
So a pretrained model half-knows the facts but not the task format: weak on the task suite, not at
zero, and fine-tuning mostly teaches format and sharpens what is there (the premise of docs/methods.md §1).
"""

from __future__ import annotations

import math
import random
from typing import Iterator

from .vocab import MAX_NUMBER

SYMBOLIC_SHARE = 0.15


def _add(r, share=0.0):
    a, b = r.randint(0, 99), r.randint(0, 99)
    s = a + b
    if share and r.random() < share:  # no draw at 0: older recipes keep their stream
        return f"{a} + {b} = {s}."
    if r.random() < SYMBOLIC_SHARE:
        return f"{s} = {a} + {b}."
    return r.choice([f"{a} plus {b} is {s}.", f"the sum of {a} and {b} is {s}.", f"{s} is {a} plus {b}.",
                     f"add {b} to {a} and you get {s}."])


def _sub(r, share=0.0):
    a = r.randint(0, 99)
    b = r.randint(0, a)
    d = a - b
    if share and r.random() < share:  # no draw at 0: older recipes keep their stream
        return f"{a} - {b} = {d}."
    if r.random() < SYMBOLIC_SHARE:
        return f"{d} = {a} - {b}."
    return r.choice([f"{a} minus {b} is {d}.", f"the difference of {a} and {b} is {d}.",
                     f"take away {b} from {a} and you get {d}.", f"{d} is {a} minus {b}."])


def _mul(r, share=0.0):
    b = r.randint(2, 31)
    a = r.randint(1, MAX_NUMBER // b)
    p = a * b
    if share and r.random() < share:  # no draw at 0: older recipes keep their stream
        return r.choice([f"{a} * {b} = {p}.", f"{p} / {b} = {a}."])
    if r.random() < SYMBOLIC_SHARE:
        return r.choice([f"{p} = {a} * {b}.", f"{a} = {p} / {b}."])
    return r.choice([f"{a} times {b} is {p}.", f"the product of {a} and {b} is {p}.",
                     f"{p} divided by {b} is {a}.", f"the quotient of {p} and {b} is {a}."])


def _seq(r, share=0.0):
    if r.random() < 0.5:
        start, step = r.randint(0, 99), r.randint(1, 30)
        terms = [start + i * step for i in range(r.randint(4, 6))]
        head = f"count from {start} in steps of {step}:"
    else:
        ratio = r.randint(2, 3)
        start = r.randint(1, MAX_NUMBER // ratio**4)
        terms = [start * ratio**i for i in range(5)]
        head = f"start at {start} and {'double' if ratio == 2 else 'triple'} each step:"
    if r.random() < SYMBOLIC_SHARE:
        return ", ".join(map(str, reversed(terms))) + "."
    return head + " " + " then ".join(map(str, terms)) + "."


def _lcm(r, share=0.0):
    a, b = r.randint(2, 40), r.randint(2, 40)
    m = math.lcm(a, b)
    if m > MAX_NUMBER:
        return _lcm(r, share)
    if share and r.random() < share:  # no draw at 0: older recipes keep their stream
        return f"LCM ( {a}, {b} ) = {m}."
    if r.random() < SYMBOLIC_SHARE:
        return f"{m} = LCM ( {a}, {b} )."
    return r.choice([f"the least common multiple of {a} and {b} is {m}.", f"{m} is the least common multiple of {a} and {b}."])


def _function(r, share=0.0):
    a, b = r.randint(1, 20), r.randint(0, 99)
    xs = sorted(r.sample(range(0, 9), 3))
    parts = ", ".join(f"when x is {x} y is {a * x + b}" for x in xs)
    return f"if y is {a} times x plus {b}, then {parts}."


def _compositional(r, share=0.0):
    a = r.randint(0, 99)
    b = r.randint(0, a)
    plus = r.random() < 0.5
    s = a + b if plus else a - b
    c = r.randint(2, 9)
    if s * c > MAX_NUMBER:
        return _compositional(r, share)
    first = f"{a} plus {b} is {s}" if plus else f"{a} minus {b} is {s}"
    return f"{first}, and {s} times {c} is {s * c}."


GENERATORS = [_add, _add, _sub, _sub, _mul, _mul, _seq, _lcm, _function, _compositional]


def corpus_lines(seed: int = 0, in_format_share: float = 0.0) -> Iterator[str]:
    """An endless, seeded stream of corpus lines."""
    r = random.Random(f"corpus/{seed}")
    while True:
        yield r.choice(GENERATORS)(r, in_format_share)


def token_stream(tokenizer, seed: int = 0) -> Iterator[int]:
    """Corpus lines tokenized and joined with `<eos>`, for packing into fixed-length sequences."""
    for line in corpus_lines(seed):
        yield from tokenizer(line, add_special_tokens=False)["input_ids"]
        yield tokenizer.eos_token_id


def packed_corpus_batch(tokenizer, batch_size: int, seq_len: int, key: str, in_format_share: float = 0.0):
    """[batch_size, seq_len] token ids: `<bos>` then corpus lines joined by `<eos>`; a pure function of `key`."""
    import torch

    r = random.Random(key)
    lines = corpus_lines(r.randrange(2**32), in_format_share)
    need = batch_size * (seq_len - 1)
    stream: list[int] = []
    while len(stream) < need:
        chunk = [next(lines) for _ in range(64)]
        for ids in tokenizer(chunk, add_special_tokens=False)["input_ids"]:
            stream += ids + [tokenizer.eos_token_id]
    body = torch.tensor(stream[:need]).view(batch_size, seq_len - 1)
    return torch.cat([torch.full((batch_size, 1), tokenizer.bos_token_id), body], dim=1)
