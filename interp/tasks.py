"""The task suite as `clean, corrupted, label` triples: six arithmetic families (docs/methods.md §1) and the
standard circuit-discovery tasks of the EAP / EAP-IG papers: indirect-object identification (`ioi`) and
greater-than (`greater_than`, whose label is a range of years: interp/greater_than.py).

Prompts and answers are text; the loaded model's tokenizer decides their tokens (interp/answers.py). On the
zoo's tokenizer every number is one token; on a real model's an answer may be several. Tasks built from word
lists (IOI's names, places and objects) keep, for a given tokenizer, only the words it makes one token, so that
clean and corrupted prompts stay position-aligned; `aligned` sampling (circuit discovery) also drops arithmetic
pairs whose numbers tokenize to different lengths. Splits are fixed by a hash of the clean prompt (80% train, 10% circuit,
10% test), so they are disjoint whatever sizes or seeds are asked for; sampling within a split is seeded.
"""

from __future__ import annotations

import csv
import hashlib
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from . import greater_than as gt
from .errors import InterpError
from .vocab import MAX_NUMBER

SPLITS = ("train", "circuit", "test")
CALC = "Calculate the result of the following arithmetic expression and provide only the final answer."


@dataclass(frozen=True)
class Example:
    clean: str
    corrupted: str
    label: int | str | gt.Later


@dataclass(frozen=True)
class Task:
    name: str
    description: str
    ranges: str
    sample: Callable[..., Example]  # (rng) or, with `words`, (rng, words)
    words: dict[str, tuple[str, ...]] | None = None  # word lists, filtered per tokenizer
    range_answer: bool = False  # the label is a range (greater-than), not one answer to train towards

    def examples(self, split: str = "train", n: int = 256, seed: int = 0) -> list[Example]:
        return make_examples(self.name, split, n, seed)


def _other(rng: random.Random, lo: int, hi: int, avoid: int) -> int:
    """A value in [lo, hi] different from `avoid`."""
    while True:
        v = rng.randint(lo, hi)
        if v != avoid:
            return v


def _add_sub(rng):
    a = rng.randint(0, 99)
    b = rng.randint(0, a)  # a >= b so that both the clean and the flipped expression stay >= 0
    op = rng.choice("+-")
    flip = "-" if op == "+" else "+"
    label = a + b if op == "+" else a - b
    return Example(f"{CALC} {a} {op} {b} =", f"{CALC} {a} {flip} {b} =", label)


def _mul_div(rng):
    b = rng.randint(2, 31)
    a = rng.randint(2, MAX_NUMBER // b)
    a2 = _other(rng, 2, MAX_NUMBER // b, a)
    if rng.random() < 0.5:
        return Example(f"{CALC} {a} * {b} =", f"{CALC} {a2} * {b} =", a * b)
    return Example(f"{CALC} {a * b} / {b} =", f"{CALC} {a2 * b} / {b} =", a)


SEQ = "Continue the sequence and give the next term."


def _sequence(rng):
    if rng.random() < 0.5:
        start, step = rng.randint(0, 99), rng.randint(1, 30)
        terms = [start + i * step for i in range(5)]
    else:
        ratio = rng.randint(2, 3)
        start = rng.randint(1, MAX_NUMBER // ratio**4)
        terms = [start * ratio**i for i in range(5)]
    shown, label = terms[:4], terms[4]
    bad = list(shown)
    i = rng.choice([2, 3])
    bad[i] = _other(rng, 0, min(MAX_NUMBER, 2 * label), shown[i])
    fmt = lambda ts: f"{SEQ} " + ", ".join(map(str, ts)) + ","
    return Example(fmt(shown), fmt(bad), label)


LCM_PAIRS = [(a, b) for a in range(2, 41) for b in range(2, 41) if a != b and math.lcm(a, b) <= MAX_NUMBER]


def _lcm(rng):
    (a, b), (c, d) = rng.sample(LCM_PAIRS, 2)
    while True:
        e, f = rng.choice(LCM_PAIRS)
        if math.lcm(e, f) != math.lcm(c, d):
            break
    fmt = lambda x, y: f"Find the least common multiple. LCM ( {a}, {b} ) = {math.lcm(a, b)}, LCM ( {x}, {y} ) ="
    return Example(fmt(c, d), fmt(e, f), math.lcm(c, d))


def _function(rng):
    a, b = rng.randint(1, 20), rng.randint(0, 99)
    b2 = _other(rng, 0, 99, b)

    def fmt(bb):
        ys = ", ".join(str(a * x + bb) for x in (1, 2, 3))
        return f"Compute the value of the function. y = {a} * x + {bb}. Given x = 1, 2, 3, 4, y = {ys},"

    return Example(fmt(b), fmt(b2), 4 * a + b)


def _compositional(rng):
    a = rng.randint(0, 99)
    b = rng.randint(0, a)
    op = rng.choice("+-")
    s = a + b if op == "+" else a - b
    divisors = [c for c in range(2, 10) if s % c == 0 and s > 0]
    if divisors and rng.random() < 0.5:
        outer, c = "/", rng.choice(divisors)
        label = s // c
    else:
        outer, c = "*", rng.randint(2, max(2, min(9, MAX_NUMBER // max(s, 1))))
        label = s * c
    c2 = _other(rng, 2, 9, c)
    fmt = lambda cc: f"{CALC} ( {a} {op} {b} ) {outer} {cc} ="
    return Example(fmt(c), fmt(c2), label)


IOI_TEMPLATES = (
    "When {a} and {b} went to the {place}, {s} gave the {obj} to",
    "After {a} and {b} arrived at the {place}, {s} handed the {obj} to",
    "While {a} and {b} were at the {place}, {s} passed the {obj} to",
    "Once {a} and {b} got to the {place}, {s} threw the {obj} to",
    "Then {a} and {b} spent the day at the {place}, and {s} offered the {obj} to",
    "Later {a} and {b} walked into the {place}, where {s} lent the {obj} to",
)
IOI_WORDS = {
    "names": ("Mary", "John", "Alice", "Bob", "James", "Sarah", "David", "Emma", "Michael", "Anna", "Paul", "Laura",
              "Mark", "Lisa", "Tom", "Kate", "Peter", "Jane", "Daniel", "Susan", "Robert", "Linda", "George", "Helen",
              "Steven", "Karen", "Richard", "Amy", "Kevin", "Rachel", "Brian", "Emily", "Jason", "Rose", "Eric",
              "Grace", "Adam", "Julia", "Ryan", "Claire"),
    "places": ("store", "park", "school", "office", "garden", "station", "market", "library"),
    "objects": ("ball", "book", "drink", "key", "bag", "letter", "ring", "pen"),
}


def _ioi_prompt(template: str, io: str, s: str, io_first: bool, subject: str, place: str, obj: str) -> str:
    a, b = (io, s) if io_first else (s, io)
    return template.format(a=a, b=b, s=subject, place=place, obj=obj)


def _ioi(rng, words=IOI_WORDS):
    """Clean: two names, the second clause's subject is one of them, the answer is the other (the indirect
    object). Corrupted: that subject is a third name, so the prompt no longer says who is left (ABC)."""
    io, s, c = rng.sample(words["names"], 3)
    template, io_first = rng.choice(IOI_TEMPLATES), rng.random() < 0.5
    place, obj = rng.choice(words["places"]), rng.choice(words["objects"])
    return Example(_ioi_prompt(template, io, s, io_first, s, place, obj),
                   _ioi_prompt(template, io, s, io_first, c, place, obj), io)


def _greater_than(rng, words=gt.WORDS):
    """Clean: a span starting in year YY of a century; corrupted: the same span starting in year 01."""
    noun, cc, yy = rng.choice(words["nouns"]), rng.choice(words["centuries"]), rng.choice(gt.STARTS)
    fmt = lambda start: gt.TEMPLATE.format(noun=noun, cc=cc, yy=start)
    return Example(fmt(yy), fmt(gt.CORRUPTED_START), gt.Later(yy))


TASKS: dict[str, Task] = {
    t.name: t
    for t in [
        Task("add_sub", "a + b or a - b", "a in 0..99, b in 0..a; answers 0..198", _add_sub),
        Task("mul_div", "a * b, or exact division p / b", "b in 2..31, a*b <= 999", _mul_div),
        Task("sequence", "next term of an arithmetic or geometric sequence",
             "arithmetic: start 0..99, step 1..30; geometric: ratio 2..3, 5th term <= 999", _sequence),
        Task("lcm", "LCM of a pair after one worked example", "a, b in 2..40, LCM <= 999", _lcm),
        Task("function", "y = a*x + b at x = 4 given three values", "a in 1..20, b in 0..99", _function),
        Task("compositional", "(a +- b) * c or (a +- b) / c", "a, b in 0..99, c in 2..9, answers <= 999",
             _compositional),
        Task("ioi", "indirect object: who received the object", f"{len(IOI_TEMPLATES)} templates, "
             f"{len(IOI_WORDS['names'])} names, {len(IOI_WORDS['places'])} places, {len(IOI_WORDS['objects'])} objects "
             "(those the tokenizer makes one token)", _ioi, IOI_WORDS),
        Task("greater_than", "a year after the start year (a range answer)", f"start years {gt.CENTURIES[0]}02.."
             f"{gt.CENTURIES[-1]}98, {len(gt.NOUNS)} nouns (those the tokenizer makes one token)", _greater_than,
             gt.WORDS, range_answer=True),
    ]
}

ARITHMETIC = ("add_sub", "mul_div", "sequence", "lcm", "function", "compositional")  # the zoo's suite; "all" elsewhere


# Every clean prompt each sampler can draw, for counting what a split holds. They mirror the samplers'
# formats; tests/test_input_bounds.py checks that sampled prompts all appear here.
def _add_sub_prompts():
    for a in range(100):
        for b in range(a + 1):
            for op in "+-":
                yield f"{CALC} {a} {op} {b} ="


def _mul_div_prompts():
    for b in range(2, 32):
        for a in range(2, MAX_NUMBER // b + 1):
            yield f"{CALC} {a} * {b} ="
            yield f"{CALC} {a * b} / {b} ="


def _sequence_prompts():
    fmt = lambda ts: f"{SEQ} " + ", ".join(map(str, ts)) + ","
    for start in range(100):
        for step in range(1, 31):
            yield fmt([start + i * step for i in range(4)])
    for ratio in (2, 3):
        for start in range(1, MAX_NUMBER // ratio**4 + 1):
            yield fmt([start * ratio**i for i in range(4)])


def _lcm_prompts():
    for a, b in LCM_PAIRS:
        head = f"Find the least common multiple. LCM ( {a}, {b} ) = {math.lcm(a, b)}, LCM ( "
        yield from (f"{head}{c}, {d} ) =" for c, d in LCM_PAIRS if (c, d) != (a, b))


def _function_prompts():
    for a in range(1, 21):
        for b in range(100):
            ys = ", ".join(str(a * x + b) for x in (1, 2, 3))
            yield f"Compute the value of the function. y = {a} * x + {b}. Given x = 1, 2, 3, 4, y = {ys},"


def _compositional_prompts():
    for a in range(100):
        for b in range(a + 1):
            for op in "+-":
                s = a + b if op == "+" else a - b
                divs = [c for c in range(2, 10) if s % c == 0 and s > 0]
                muls = range(2, max(2, min(9, MAX_NUMBER // max(s, 1))) + 1)
                yield from (f"{CALC} ( {a} {op} {b} ) / {c} =" for c in divs)
                yield from (f"{CALC} ( {a} {op} {b} ) * {c} =" for c in muls)


def _ioi_prompts(words=IOI_WORDS):
    for template in IOI_TEMPLATES:
        for io in words["names"]:
            for s in words["names"]:
                if s == io:
                    continue
                for io_first in (True, False):
                    for place in words["places"]:
                        for obj in words["objects"]:
                            yield _ioi_prompt(template, io, s, io_first, s, place, obj)


def _greater_than_prompts(words=gt.WORDS):
    for noun in words["nouns"]:
        for cc in words["centuries"]:
            yield from (gt.TEMPLATE.format(noun=noun, cc=cc, yy=yy) for yy in gt.STARTS)


PROMPTS = {"add_sub": _add_sub_prompts, "mul_div": _mul_div_prompts, "sequence": _sequence_prompts,
           "lcm": _lcm_prompts, "function": _function_prompts, "compositional": _compositional_prompts, "ioi": _ioi_prompts,
           "greater_than": _greater_than_prompts}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise InterpError(f"unknown task {name!r}; valid tasks: {', '.join(TASKS)}")
    return TASKS[name]


def trainable(name: str) -> Task:
    """The task, refused in one line when its label is not one answer a model can be trained towards."""
    task = get_task(name)
    if task.range_answer:
        raise InterpError(f"task {name!r} has a range of right answers; it is for eval and circuits, not training")
    return task


def split_of(clean: str) -> str:
    """The split a clean prompt belongs to, fixed by its hash (80/10/10)."""
    bucket = int(hashlib.sha1(clean.encode()).hexdigest(), 16) % 10
    return "train" if bucket < 8 else ("circuit" if bucket == 8 else "test")


def task_words(task: str, tokenizer=None) -> dict[str, tuple[str, ...]] | None:
    """A word-list task's words, keeping those `tokenizer` makes one token after a space (all without one)."""
    words = get_task(task).words
    if words is None or tokenizer is None:
        return words
    years = "centuries" in words  # kept by how the tokenizer writes years, not by being one token
    words = {k: v for k, v in words.items() if k != "centuries"}
    one = lambda w: len(tokenizer(f" {w}", add_special_tokens=False)["input_ids"]) == 1 and \
        tokenizer.unk_token_id not in tokenizer(f" {w}", add_special_tokens=False)["input_ids"]
    kept = {k: tuple(w for w in ws if one(w)) for k, ws in words.items()}
    need = {"names": 3}
    for k, ws in kept.items():
        if len(ws) < need.get(k, 1):
            raise InterpError(f"task {task!r} cannot be built on this tokenizer: {len(ws)} of its {len(words[k])} "
                              f"{k} are one token (it needs {need.get(k, 1)})")
    if years:
        kept["centuries"] = gt.centuries(tokenizer)
    return kept


def split_count(task: str, split: str, stop_at: int | None = None, words=None) -> int:
    """How many distinct examples `split` of `task` holds, or `stop_at` once that many are found (counting
    all of lcm's 2M prompts takes seconds; a few thousand take milliseconds)."""
    count = 0
    for clean in PROMPTS[task](*([words] if words else [])):
        if split_of(clean) == split:
            count += 1
            if count == stop_at:
                break
    return count


def make_examples(task: str, split: str = "train", n: int = 256, seed: int = 0, at_most: bool = False,
                  tokenizer=None, aligned: bool = False) -> list[Example]:
    """`n` distinct examples of `task` from `split`, deterministic in (task, split, n, seed) and, for word-list
    tasks, the tokenizer's one-token words. With `at_most`, a split with fewer distinct examples returns all it
    has instead of failing. With `aligned`, only examples whose clean and corrupted prompts have one token length
    under `tokenizer` are kept (circuit metrics compare them position by position)."""
    spec = get_task(task)
    if split not in SPLITS:
        raise InterpError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
    if n < 1:
        raise InterpError(f"n must be >= 1, got {n}")
    words = task_words(task, tokenizer)
    sample = (lambda rng: spec.sample(rng, words)) if words else spec.sample
    same_length = lambda ex: not aligned or tokenizer is None or \
        len(tokenizer(ex.clean)["input_ids"]) == len(tokenizer(ex.corrupted)["input_ids"])
    held = split_count(task, split, stop_at=n, words=words)  # sampling for more than the split holds would never end
    if held < n and not at_most:
        raise InterpError(f"task {task!r} split {split!r} holds {held} distinct examples; n must be at most {held} "
                          f"(got {n})")
    want = min(n, held)  # the draw budget stays 200 n: at_most runs draw what they drew before
    rng = random.Random(f"{task}/{split}/{seed}")
    seen: dict[str, Example] = {}
    for _ in range(200 * n + 10_000):
        ex = sample(rng)
        if ex.clean not in seen and split_of(ex.clean) == split and same_length(ex):
            seen[ex.clean] = ex
            if len(seen) == want:
                return list(seen.values())
    if at_most and seen:
        return list(seen.values())
    why = " whose clean and corrupted prompts tokenize to one length" if aligned else ""
    raise InterpError(f"task {task!r} split {split!r} has fewer than {n} distinct examples{why} (found {len(seen)})")


def validate(examples: Iterable[Example], tokenizer=None, source: str = "examples") -> list[Example]:
    """Check every triple; raise InterpError naming the first bad row (1-based, as in a CSV file)."""
    from .answers import answer_ids
    from .tokenizer import load_tokenizer

    tok = tokenizer or load_tokenizer()
    out = []
    for row, ex in enumerate(examples, start=1):
        where = f"{source} row {row}"
        if not ex.clean or not ex.corrupted:
            raise InterpError(f"{where}: clean and corrupted prompts must be non-empty")
        try:
            answer_ids(tok, ex.label)
        except InterpError as e:
            raise InterpError(f"{where}: {e}") from None
        c, k = tok(ex.clean)["input_ids"], tok(ex.corrupted)["input_ids"]
        if len(c) != len(k):
            raise InterpError(f"{where}: clean has {len(c)} tokens but corrupted has {len(k)}; they must be equal")
        if tok.unk_token_id in c or tok.unk_token_id in k:
            raise InterpError(f"{where}: prompt contains a word outside the vocabulary")
        out.append(ex)
    return out


def write_csv(examples: Iterable[Example], path: str | Path) -> Path:
    """Write `clean,corrupted,label` rows, atomically (a partial file never looks complete)."""
    from .rundir import replacing

    path = Path(path)
    with replacing(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["clean", "corrupted", "label"])
        for ex in examples:
            w.writerow([ex.clean, ex.corrupted, ex.label])
    return path


def read_csv(path: str | Path, tokenizer=None) -> list[Example]:
    """Read and validate a task CSV with columns clean, corrupted, label."""
    path = Path(path)
    if not path.is_file():
        raise InterpError(f"task file {path} does not exist")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or set(reader.fieldnames) != {"clean", "corrupted", "label"}:
            raise InterpError(f"{path}: header must be clean,corrupted,label (got {reader.fieldnames})")
        rows = []
        for i, r in enumerate(reader, start=1):
            label = (r["label"] or "").strip()
            if not label:
                raise InterpError(f"{path} row {i}: empty label")
            rows.append(Example(r["clean"] or "", r["corrupted"] or "", gt.parse(label) or
                                (int(label) if label.isdigit() else label)))
    return validate(rows, tokenizer, source=str(path))
