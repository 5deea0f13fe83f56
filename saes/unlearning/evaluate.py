"""Unlearning metrics and attacks, for the original model and every method.

Clean: forget-task accuracy, retain accuracy per task, base-corpus cross-entropy. Attacks on the forget task:
- few-shot: three solved forget examples before each prompt;
- reworded: the corpus's word forms ("a times b is", "the quotient of p and b is"), no instruction;
- format: operands in parentheses, "( a ) * ( b ) =";
- relearn: full fine-tuning on 10 forget examples for a fixed number of steps, then held-out accuracy: the best
  over the learning rates `relearn_lrs` (an attacker tunes the rate; too high a rate damages more than it
  restores) of the mean over `relearn_draws` independent draws of the 10 examples (which ten are drawn moves it
  by several points; every rate sees the same draws);
- probe: a linear (softmax) probe on layer l's activations at the last prompt token, trained on forget train
  prompts to read the answer, scored on the test prompts;
- ablation: project out the single direction along which the method moved forget activations at layer l
  (for RMU and SSPU the control vector's), then forget accuracy.
A method that edits activations at inference (clamping) keeps its edit through every attack. The few-shot
examples, the probe's training prompts and initialisation, and each relearning draw come from named random
streams of the run's seed (interp/seeds.py).
"""

from __future__ import annotations

import copy
import re
from collections import Counter
from contextlib import nullcontext
from functools import lru_cache

import torch
import torch.nn.functional as F

from interp.evaluate import accuracy
from interp.seeds import manual_seed, seed_of
from interp.tasks import Example, make_examples

from .hooks import ablate_fn, capture, edit_output

ATTACKS = ("few_shot", "reworded", "format", "relearn", "probe", "ablation")


# The corpus's four word forms of multiplication and division (interp/corpus.py): the reworded attack uses two;
# `--forget-text prompts+words` unlearns on the other two, so the attack's wording stays held out.
ATTACK_WORDS = ("the product of {a} and {b} is", "{p} divided by {b} is")
TRAIN_WORDS = ("{a} times {b} is", "the quotient of {p} and {b} is")


def reword(e: Example, forms: tuple[str, str] = ATTACK_WORDS) -> Example:
    """A mul_div prompt in words, with no instruction: forms = (multiplication, division)."""
    m = re.search(r"(\d+) \* (\d+) =$", e.clean)
    if m:
        a, b = m.groups()
        return Example(forms[0].format(a=a, b=b), "", e.label)
    p, b = re.search(r"(\d+) / (\d+) =$", e.clean).groups()
    return Example(forms[1].format(p=p, b=b), "", e.label)


def _format(e: Example) -> Example:
    return Example(re.sub(r"(\d+) ([*/+-]) (\d+) =$", r"( \1 ) \2 ( \3 ) =", e.clean), "", e.label)


@lru_cache(maxsize=None)  # sampling a whole split takes up to a second, and every evaluation reads it
def test_set(task: str, n_eval: int) -> tuple[Example, ...]:
    """The first `n_eval` test prompts of `task`, or all of them where the split holds fewer."""
    return tuple(make_examples(task, "test", n_eval, 0, at_most=True))


def prompt_sets(task: str, n_eval: int, seed: int) -> dict[str, list[Example]]:
    test = test_set(task, n_eval)
    shots = make_examples(task, "train", 3, seed_of(seed, "unlearn/few-shot"))
    prefix = " ".join(f"{s.clean} {s.label} ." for s in shots)
    sets = {"clean": test, "few_shot": [Example(f"{prefix} {e.clean}", "", e.label) for e in test],
            "format": [_format(e) for e in test]}
    if task == "mul_div":  # word forms exist for this family in the corpus
        sets["reworded"] = [reword(e) for e in test]
    return sets


def chance(task: str, n_eval: int) -> float:
    """Accuracy of always answering the test split's most common label."""
    labels = [e.label for e in test_set(task, n_eval)]
    return Counter(labels).most_common(1)[0][1] / len(labels)


@torch.no_grad()
def corpus_ce(model, ids: torch.Tensor) -> float:
    logits = model(input_ids=ids).logits[:, :-1]
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1)).item()


@torch.no_grad()
def last_token_acts(model, tok, examples: list[Example], layer: int) -> torch.Tensor:
    from interp.evaluate import encode_prompts

    groups, ids = encode_prompts(tok, [e.clean for e in examples])
    out = torch.empty(len(examples), model.config.hidden_size)
    for idx in groups.values():
        with capture(model, layer) as h:
            model(input_ids=torch.tensor([ids[i] for i in idx]))
        out[idx] = h[0][:, -1].float()
    return out


def probe_accuracy(model, tok, task: str, layer: int, n_train: int, n_eval: int, seed: int) -> float:
    train = make_examples(task, "train", n_train, seed_of(seed, "unlearn/probe-examples"), at_most=True)
    test = test_set(task, n_eval)
    x, xt = last_token_acts(model, tok, train, layer), last_token_acts(model, tok, test, layer)
    mu, sd = x.mean(0), x.std(0) + 1e-6
    x, xt = (x - mu) / sd, (xt - mu) / sd
    labels = {e.label for e in (*train, *test)}
    names = sorted(labels) if all(isinstance(v, int) for v in labels) else sorted(labels, key=str)
    y = torch.tensor([names.index(e.label) for e in train])
    yt = torch.tensor([names.index(e.label) for e in test])
    classes = y.unique()
    y_idx = torch.searchsorted(classes, y)
    manual_seed(seed, "unlearn/probe-init")  # nn.Linear draws its initial weights from the global generator
    w = torch.nn.Linear(x.shape[1], len(classes))
    opt = torch.optim.Adam(w.parameters(), lr=1e-2, weight_decay=1e-4)
    with torch.enable_grad():
        for _ in range(300):
            opt.zero_grad()
            F.cross_entropy(w(x), y_idx).backward()
            opt.step()
    pred = classes[w(xt).argmax(-1)]
    return (pred == yt).float().mean().item()


def ablation_accuracy(model, original, tok, examples: list[Example], layer: int) -> float:
    """Accuracy with the mean direction along which `model` moved the examples' layer-l activations projected out."""
    moved = last_token_acts(model, tok, examples, layer) - last_token_acts(original, tok, examples, layer)
    with edit_output(model, layer, ablate_fn(moved.mean(0))):
        return accuracy(model, tok, examples)


def relearn(model, tok, task: str, edit, n_examples: int, steps: int, lr: float, seed: int, draw: int):
    """A copy of `model` fully fine-tuned on draw `draw` of `n_examples` forget train examples at `seed` (with
    the method's edit on)."""
    from interp.finetune import answer_loss, encode_train

    model = copy.deepcopy(model)
    examples = make_examples(task, "train", n_examples, seed_of(seed, "unlearn/relearn-examples", draw))
    inputs, targets = encode_train(tok, examples, False)
    for p in model.parameters():
        p.requires_grad_(True)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    with edit(model):
        for _ in range(steps):
            opt.zero_grad()
            answer_loss(model, inputs, targets).backward()
            opt.step()
    model.eval()
    return model


def evaluate(model, tok, forget: str, retain: list[str], corpus: torch.Tensor, layer: int, cfg, original=None,
             edit=None) -> dict:
    """Every metric and attack for one model. `edit(model)`: a context manager applying an inference-time edit
    (clamping); `original`: the model before unlearning, for the ablation direction (None: no ablation)."""
    edit = edit or (lambda m: nullcontext(m))
    out = {}
    with edit(model):
        sets = prompt_sets(forget, cfg.n_eval, cfg.seed)
        out["forget"] = accuracy(model, tok, sets["clean"])
        out["retain"] = {t: accuracy(model, tok, test_set(t, cfg.n_eval)) for t in retain}
        out["corpus_ce"] = corpus_ce(model, corpus)
        for name in ("few_shot", "reworded", "format"):
            if name in sets:
                out[name] = accuracy(model, tok, sets[name])
        out["probe"] = probe_accuracy(model, tok, forget, layer, cfg.probe_examples, cfg.n_eval, cfg.seed)
        if original is not None:
            out["ablation"] = ablation_accuracy(model, original, tok, sets["clean"], layer)
    out |= relearn_attack(model, tok, forget, edit, sets["clean"], cfg)
    out["retain_mean"] = sum(out["retain"].values()) / len(out["retain"])
    return out


def relearn_attack(model, tok, forget: str, edit, clean: list[Example], cfg) -> dict:
    """The relearning attack's best rate, its accuracy (the mean over draws), each draw's, and every rate's."""
    each = {}  # rate -> accuracy per draw; every rate sees the same draws
    for lr in cfg.relearn_rates():
        each[lr] = []
        for draw in range(cfg.relearn_draws):
            tuned = relearn(model, tok, forget, edit, cfg.relearn_examples, cfg.relearn_steps, lr, cfg.seed, draw)
            with edit(tuned):
                each[lr].append(accuracy(tuned, tok, clean))
    by_lr = {lr: sum(a) / len(a) for lr, a in each.items()}
    best = max(by_lr, key=by_lr.get)
    return {"relearn_lr": best, "relearn": by_lr[best], "relearn_each": each[best],
            "relearn_by_lr": {f"{lr:g}": a for lr, a in by_lr.items()}}
