"""The training data every method shares, and each step's rows of it.

`training_data(tok, cfg)`: forget prompts (with the positions the push applies to), each retain task's prompts,
base-corpus rows and, with `--forget-text prompts+words`, two word forms of the forget family. `draw(...)`: one
step's rows, each kind from its own named random stream (interp/seeds.py), so a step's forget rows never share
draws with its retain or corpus rows, nor with another seed's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from interp.seeds import seed_of, torch_generator

from .hooks import resid

if TYPE_CHECKING:
    from .config import UnlearnConfig


@dataclass
class Batches:
    forget: tuple[torch.Tensor, torch.Tensor]  # inputs (prompt + answer), answer targets
    retain: list[tuple[torch.Tensor, torch.Tensor]]  # one pair per retain task
    corpus: torch.Tensor  # [n, seq] base-corpus token ids
    forget_mask: torch.Tensor | None = None  # [n, seq] bool: where the push applies (None: every position)
    words: list[tuple] = field(default_factory=list)  # more forget text, one (inputs, targets, mask) per word form
    _frozen: dict = field(default_factory=dict, repr=False)

    @torch.no_grad()
    def frozen(self, model, layer: int) -> tuple[list[torch.Tensor], torch.Tensor]:
        """The frozen model's layer-`layer` activations on every retain prompt and corpus row, computed once
        rather than in two forwards every step (chunks of 256 rows give the same activations as a step's batch)."""
        key = (model, layer)
        if key not in self._frozen:
            acts = lambda ids: torch.cat([resid(model, layer, ids[i:i + 256]) for i in range(0, len(ids), 256)])
            self._frozen[key] = ([acts(ids) for ids, _ in self.retain], acts(self.corpus))
        return self._frozen[key]


def distinct_positions(forget: torch.Tensor, retain: list[torch.Tensor]) -> torch.Tensor:
    """[n, seq] bool: True where the forget prompt's prefix up to that token is the prefix of no retain prompt.
    Elsewhere a causal model's activation is the same function of the same tokens as on some retain prompt
    ("<bos> Calculate ... 30" starts both "30 * 16 =" and "30 + 4 ="), so pushing it and holding it to the
    frozen model's would fight each other, and the compromise costs the retain task."""
    seen = {tuple(row[:t + 1]) for ids in retain for row in ids.tolist() for t in range(len(row))}
    return torch.tensor([[tuple(row[:t + 1]) not in seen for t in range(len(row))] for row in forget.tolist()])


def training_data(tok, cfg: UnlearnConfig) -> Batches:
    """The forget and retain training prompts of `cfg`'s tasks, the corpus rows, and the word forms."""
    from interp.corpus import packed_corpus_batch
    from interp.finetune import encode_train
    from interp.tasks import make_examples

    seed = seed_of(cfg.seed, "unlearn/train-examples")
    examples = lambda t: make_examples(t, "train", 2000, seed, at_most=True)
    forget = encode_train(tok, examples(cfg.forget_tasks()[0]), False)
    retain = [encode_train(tok, examples(t), False) for t in cfg.retain_tasks()]
    mask = lambda ids: distinct_positions(ids, [r[0] for r in retain]) if cfg.push_at == "distinct" else None
    words = word_forms(tok, examples(cfg.forget_tasks()[0]), mask) if cfg.forget_text == "prompts+words" else []
    corpus = packed_corpus_batch(tok, 256, 32, f"unlearn-train-{cfg.seed}")  # already a stream of its own
    return Batches(forget, retain, corpus, mask(forget[0]), words)


def word_forms(tok, examples: list, mask) -> list[tuple]:
    """(inputs, targets, pushed) per form, "a times b is" and "the quotient of p and b is": one group per form,
    since a group's prompts share a token length. `mask` is None when every position is pushed."""
    from interp.finetune import encode_train

    from .evaluate import TRAIN_WORDS, reword

    worded = [reword(e, TRAIN_WORDS) for e in examples]
    out = []
    for form in ("times", "quotient"):
        ids, targets = encode_train(tok, [e for e in worded if form in e.clean], False)
        # "distinct": from the operation word on, as for the prompts ("30 * ..."): a number at the start is how
        # add_sub, sequence and corpus text start too
        op = (ids == tok.convert_tokens_to_ids(form)).int().argmax(1, keepdim=True)
        distinct = mask(ids)
        out.append((ids, targets, None if distinct is None else (torch.arange(ids.shape[1]) >= op) & distinct))
    return out


@dataclass
class Batch:
    """One step's rows. `forget`: (inputs, targets, pushed positions) of the task's prompts, then, with word
    forms, of one form (the forms in turn); `retain`: the rows of one retain task (the tasks in turn)."""
    step: int
    forget: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
    task: int
    retain_rows: torch.Tensor
    retain: tuple[torch.Tensor, torch.Tensor]
    corpus_rows: torch.Tensor
    corpus: torch.Tensor


def rows(n: int, size: int, seed: int, purpose: str, step: int) -> torch.Tensor:
    return torch.randint(n, (size,), generator=torch_generator(seed, purpose, step))


def draw(data: Batches, step: int, size: int, seed: int) -> Batch:
    everywhere = lambda ids, mask: mask if mask is not None else torch.ones_like(ids, dtype=torch.bool)
    pick = lambda x, purpose: tuple(t[rows(len(x[0]), size, seed, purpose, step)] for t in x)
    forget = [pick((*data.forget, everywhere(data.forget[0], data.forget_mask)), "unlearn/forget-rows")]
    if data.words:
        ids, targets, mask = data.words[step % len(data.words)]
        forget.append(pick((ids, targets, everywhere(ids, mask)), "unlearn/word-rows"))
    task = step % len(data.retain)
    idx = rows(len(data.retain[task][0]), size, seed, "unlearn/retain-rows", step)
    corpus = rows(len(data.corpus), max(1, size // 4), seed, "unlearn/corpus-rows", step)
    return Batch(step, forget, task, idx, tuple(t[idx] for t in data.retain[task]), corpus, data.corpus[corpus])
