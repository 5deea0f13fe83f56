"""Token batches for activation harvesting: the generated corpus, a local text or JSONL file, or a
Hugging Face dataset where the network allows.

Every source yields [batch, context] id tensors that start with `<bos>`, and batch `i` is a pure function
of (source, seed, i), so a resumed run picks up at the batch where it stopped. A file's last contexts
(`HELDOUT_SHARE`, at least one) are held out: training never reads them and evaluation reads only them.
"""

from __future__ import annotations

import codecs
import json
from pathlib import Path
from typing import Iterator

import torch

from .seeds import torch_generator
from .errors import InterpError


SPLITS = ("train", "heldout")
HELDOUT_SHARE = 0.05


def token_batches(dataset: str, tokenizer, batch_size: int, context_size: int, seed: int = 0,
                  start: int = 0, purpose: str = "activations", split: str = "train",
                  step: int = 1) -> Iterator[torch.Tensor]:
    """Endless batches of `batch_size` sequences of `context_size` tokens, batch indices `start`, `start + step`,
    ... (a rank's share under torchrun); the
    generated corpus's text and a file's order come from the stream named `purpose` (interp/seeds.py).
    `split` picks a file's training or held-out contexts; the generated corpus has no end to hold out, its
    purposes draw different text."""
    if split not in SPLITS:
        raise InterpError(f"split must be one of {', '.join(SPLITS)} (got {split!r})")
    if context_size < 2:
        raise InterpError(f"context size must be at least 2 (got {context_size})")
    if dataset == "corpus":
        from .corpus import packed_corpus_batch

        def corpus():
            i = start
            while True:
                yield packed_corpus_batch(tokenizer, batch_size, context_size, f"{purpose}/{seed}/{i}")
                i += step

        return corpus()
    if is_local_file(dataset):
        return _file_batches(Path(dataset).expanduser(), tokenizer, batch_size, context_size,
                             torch_generator(seed, f"{purpose}/file-order"), start, split, step)
    return _hub_batches(dataset, tokenizer, batch_size, context_size, start, split, step)


SNIFF_BYTES = 1 << 20
FILE_FORMATS = "one text per line (.txt) or one JSON object with a 'text' field per line (.jsonl)"


def is_local_file(dataset: str) -> bool:
    """The rule `token_batches` uses: an existing path, or a name with a text-file suffix."""
    path = Path(dataset).expanduser()
    return dataset != "corpus" and (path.exists() or path.suffix in (".txt", ".jsonl", ".json"))


def _check_text(path: Path, data: bytes, complete: bool) -> None:
    if complete and not data.strip():
        raise InterpError(f"dataset file {path} is empty; it needs {FILE_FORMATS}")
    try:  # final=False: a character cut at the end of a sniffed prefix is not an error
        codecs.getincrementaldecoder("utf-8")().decode(data, final=complete)
    except UnicodeDecodeError:
        raise InterpError(f"dataset file {path} is not UTF-8 text (binary?); it needs {FILE_FORMATS}") from None
    if b"\x00" in data:
        raise InterpError(f"dataset file {path} is binary (holds NUL bytes); it needs {FILE_FORMATS}")


def check_dataset(dataset: str) -> None:
    """Refuse a local dataset file that is missing, empty or binary before any model loads; only the first
    MiB is read here, `read_texts` checks the whole file."""
    if not is_local_file(dataset):
        return
    path = Path(dataset).expanduser()
    if not path.is_file():
        raise InterpError(f"dataset file {path} does not exist")
    with open(path, "rb") as f:
        head = f.read(SNIFF_BYTES)
    _check_text(path, head, complete=len(head) < SNIFF_BYTES)


def read_texts(path: Path) -> list[str]:
    """Lines of a text file, or the `text` field of each line of a JSONL file."""
    if not path.is_file():
        raise InterpError(f"dataset file {path} does not exist")
    data = path.read_bytes()
    _check_text(path, data, complete=True)
    texts = _parse_texts(path, data.decode("utf-8"))
    if not texts:
        raise InterpError(f"dataset file {path} holds no text; it needs {FILE_FORMATS}")
    return texts


def _parse_texts(path: Path, content: str) -> list[str]:
    if path.suffix in (".jsonl", ".json"):
        texts = []
        for n, line in enumerate(content.splitlines(), 1):
            if not line.strip():
                continue
            try:
                texts.append(json.loads(line)["text"])
            except (json.JSONDecodeError, KeyError, TypeError):
                raise InterpError(f"{path} line {n}: expected a JSON object with a 'text' field") from None
        return texts
    return [line for line in content.splitlines() if line.strip()]


def _pack(texts: list[str], tokenizer, context_size: int) -> torch.Tensor:
    stream: list[int] = []
    for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]:
        stream += ids + [tokenizer.eos_token_id]
    n = len(stream) // (context_size - 1)
    body = torch.tensor(stream[: n * (context_size - 1)], dtype=torch.long).view(n, context_size - 1)
    return torch.cat([torch.full((n, 1), tokenizer.bos_token_id), body], dim=1)


def _file_batches(path, tokenizer, batch_size, context_size, generator, start, split, step):
    chunks = _pack(read_texts(path), tokenizer, context_size)
    if len(chunks) < 2:
        raise InterpError(f"{path} holds fewer than {2 * (context_size - 1)} tokens: too short for one context "
                          "to train on and one to hold out")
    # the file's tail, not a random draw: neighbouring lines often share a document
    n_heldout = max(1, round(HELDOUT_SHARE * len(chunks)))
    chunks = chunks[:-n_heldout] if split == "train" else chunks[-n_heldout:]
    order = torch.randperm(len(chunks), generator=generator)

    def batches():
        i = start
        while True:  # epochs over the file, in one seeded order
            yield chunks[order[(torch.arange(batch_size) + i * batch_size) % len(chunks)]]
            i += step

    return batches()


def _hub_batches(name, tokenizer, batch_size, context_size, start, split, step):
    from .loading import hub_reachable

    if not hub_reachable():
        raise InterpError(f"dataset {name!r} is neither 'corpus' nor a local .txt/.jsonl file, and the hub is "
                          "not reachable offline; pass a local file instead")
    import datasets

    hub_split = {"train": "train", "heldout": "validation"}[split]
    try:
        rows = datasets.load_dataset(name, split=hub_split, streaming=True)
    except ValueError as e:  # the split does not exist
        raise InterpError(f"dataset {name!r} has no {hub_split!r} split ({e}); pass a local file") from None

    def batches():
        texts: list[str] = []
        i = 0
        for row in rows:
            texts.append(row["text"])
            if len(texts) >= 4 * batch_size:
                chunks = _pack(texts, tokenizer, context_size)
                texts = []
                for b in range(0, len(chunks) - batch_size + 1, batch_size):
                    if i >= start and (i - start) % step == 0:
                        yield chunks[b:b + batch_size]
                    i += 1

    return batches()
