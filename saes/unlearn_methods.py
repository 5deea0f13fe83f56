"""SSPU stage 3 and its baselines, trained by one loop with the same data, parameters and step budget.

- SSPU: forget activations at layer l (at the positions `forget_mask` marks) pushed toward c*u, u a random
  direction projected into the irrelevant subspace; retain activations held to the frozen model's; and the
  penalty (reg_weight / 2) ||(I - Q Q^T) dW||^2 on the part of each updated matrix's change that writes outside
  the relevant subspace (Q: its orthonormal basis), applied as a proximal step (see `_shrink_outside`).
  Variants (`target`): "erase" pushes the forget activations' relevant component ||Q^T h||^2 to zero instead of
  pushing toward c*u; "control+erase" adds that term to the push toward c*u.
- Push weights (`push_weight`): "uniform" averages the push over every pushed position; "known" weights each
  forget prompt's positions by the model's current probability of its answer plus KNOWN_FLOOR, so the push goes
  where the model still answers, not to prompts it already gets wrong.
- More forget text (`Batches.words`, the task in words): each step adds one word form's batch to every method's
  forget term, the forms in turn.
- RMU (Li et al. 2024): the same push with u ~ uniform[0, 1) normalised, no subspace term.
- Gradient ascent: minus the answer cross-entropy on forget prompts, plus it on retain prompts.
- SAE clamping (inference only): where any forget feature fires at layer l, set the forget features to
  -clamp x their max activation, decode, keep the SAE error term.
Only the named parameters train; everything else stays bit-identical.
"""

from __future__ import annotations

import copy
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

UNLEARN_METHODS = ("sspu", "rmu", "gradient_ascent")
KNOWN_FLOOR = 0.1  # "known" push weights: forgotten prompts keep this much, so they stay pushed


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


def block(model, layer: int):
    from interp.families import layer_list

    return layer_list(model)[layer]


@contextmanager
def capture(model, layer: int):
    """Record block `layer`'s output (the residual stream after it, hook_resid_post) during forwards."""
    seen = []
    handle = block(model, layer).register_forward_hook(lambda m, i, o: seen.append(o[0] if isinstance(o, tuple) else o))
    try:
        yield seen
    finally:
        handle.remove()


class _Reached(Exception):
    def __init__(self, h):
        self.h = h


def resid(model, layer: int, ids: torch.Tensor) -> torch.Tensor:
    """Block `layer`'s output on `ids`, with the forward stopped there: the blocks above it and the unembedding
    cannot change it, so running them is wasted work every step. The activation is the very tensor a full
    forward computes."""
    def stop(m, i, o):
        raise _Reached(o[0] if isinstance(o, tuple) else o)
    handle = block(model, layer).register_forward_hook(stop)
    try:
        model(input_ids=ids)
    except _Reached as reached:
        return reached.h
    finally:
        handle.remove()
    raise RuntimeError(f"block {layer} did not run")


@contextmanager
def edit_output(model, layer: int, fn):
    """Replace block `layer`'s output by fn(output) during forwards (clamping, direction ablation)."""
    def hook(m, i, o):
        if isinstance(o, tuple):
            return (fn(o[0]), *o[1:])
        return fn(o)
    handle = block(model, layer).register_forward_hook(hook)
    try:
        yield model
    finally:
        handle.remove()


def param_names(model, layers: list[int], params: str) -> list[str]:
    """`params`: comma-separated module suffixes inside the chosen blocks; `mlp_out` names the family's MLP
    output projection (the default)."""
    from interp.families import block_prefix, family_of

    names = []
    for n, _ in model.named_parameters():
        prefix = next((p for p in (block_prefix(model, l) for l in layers) if n.startswith(p)), None)
        if prefix is None:
            continue
        module = n[len(prefix):].rsplit(".", 1)[0]
        wanted = [s.strip() for s in params.split(",")]
        if ("mlp_out" in wanted and module == family_of(model.config).mlp_out_path
                or any(f".{s}." in f".{module}." for s in wanted if s != "mlp_out")):
            names.append(n)
    return names


def control_vector(d: int, seed: int, basis: torch.Tensor | None, draws: int = 1, score=None) -> torch.Tensor:
    """u ~ uniform[0, 1)^d, projected into `basis`'s span when given, normalised.

    With `draws` > 1, of that many such vectors (the first is the one-draw u) the one with the lowest `score(u)`
    (`unlearning.prepare` scores with `half_push_recall`). Which random u a seed draws decides most of how far
    it forgets.
    """
    gen = torch.Generator().manual_seed(seed)
    us = []
    for _ in range(draws):
        u = torch.rand(d, generator=gen)
        if basis is not None:
            u = basis @ (basis.T @ u)
        us.append(u / u.norm())
    return us[0] if draws == 1 else min(us, key=score)


@torch.no_grad()
def half_push_recall(model, layer: int, inputs: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor,
                     target: torch.Tensor) -> float:
    """The frozen model's mean probability of the answers when its block-`layer` output at the pushed positions
    (`mask`) is moved half-way to `target` (c * u): how much of the answer a push along u removes before any
    training. Half-way, because the retain term keeps training short of c * u; all the way, every u leaves ~0."""
    move = lambda h: torch.where(mask[..., None], (h + target) / 2, h)
    with edit_output(model, layer, move):
        return answer_prob(model, inputs, targets).mean().item()


def _rows(n: int, step: int, batch: int, seed: int) -> torch.Tensor:
    return torch.randint(n, (batch,), generator=torch.Generator().manual_seed(seed * 1_000_003 + step))


def _pick(x: tuple[torch.Tensor, ...], step: int, batch: int, seed: int):
    idx = _rows(len(x[0]), step, batch, seed)
    return tuple(t[idx] for t in x)


def answer_prob(model, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """[n] the model's probability of each prompt's whole answer (interp/answers.py)."""
    from interp.answers import answer_logprob

    return answer_logprob(model(input_ids=inputs).logits, targets).exp()


@torch.no_grad()
def known_weights(model, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """[n] the model's probability of each prompt's answer, plus KNOWN_FLOOR."""
    return answer_prob(model, inputs, targets) + KNOWN_FLOOR


def _answer_ce(model, inputs, targets):
    from interp.finetune import answer_loss

    return answer_loss(model, inputs, targets)


def train(method: str, base, data: Batches, names: list[str], layer: int, steps: int, lr: float, seed: int,
          coef: float = 0.0, u: torch.Tensor | None = None, retain_weight: float = 1.0, reg_weight: float = 0.0,
          relevant: torch.Tensor | None = None, batch: int = 32, target: str = "control", progress=None,
          push_weight: str = "uniform"):
    """A copy of `base` after `steps` of `method`; only `names` change. `target` (SSPU only): "control" pushes
    forget activations toward coef * u; "erase" pushes their component in the relevant subspace to zero;
    "control+erase" adds the two terms. `push_weight` (SSPU and RMU): "uniform" or "known" (module docstring)."""
    model = copy.deepcopy(base)
    frozen = base.eval()
    params = dict(model.named_parameters())
    for p in model.parameters():
        p.requires_grad_(False)
    trained = [params[n] for n in names]
    for p in trained:
        p.requires_grad_(True)
    start = {n: params[n].detach().clone() for n in names}
    opt = torch.optim.AdamW(trained, lr=lr, weight_decay=0.0)
    outside = None if relevant is None else torch.eye(relevant.shape[0]) - relevant @ relevant.T
    model.train()
    everywhere = lambda ids, mask: mask if mask is not None else torch.ones_like(ids, dtype=torch.bool)
    kind = target if method == "sspu" else "control"
    ascent = method == "gradient_ascent"
    retain_h0, corpus_h0 = (None, None) if ascent else data.frozen(frozen, layer)

    def push(h, f):
        inputs, targets, mask = f
        loss = ((h - coef * u) ** 2).mean(-1) if kind != "erase" else 0.0
        if kind != "control":  # the relevant component's energy, per dimension
            loss = loss + ((h @ relevant) ** 2).sum(-1) / h.shape[-1]
        if push_weight == "uniform":
            return loss[mask].mean()
        w = mask * known_weights(model, inputs, targets)[:, None]
        return (loss * w).sum() / w.sum()

    for step in range(steps):
        # the task's prompts every step; with word forms, one form's batch too, in turn
        forget = [_pick((*data.forget, everywhere(data.forget[0], data.forget_mask)), step, batch, seed)]
        if data.words:
            ids, targets, mask = data.words[step % len(data.words)]
            forget.append(_pick((ids, targets, everywhere(ids, mask)), step, batch, seed + 2))
        task = step % len(data.retain)
        idx = _rows(len(data.retain[task][0]), step, batch, seed + 1)
        r_in, r_t = (t[idx] for t in data.retain[task])
        if ascent:
            loss = -sum(_answer_ce(model, f_in, f_t) for f_in, f_t, _ in forget)
            loss = loss + retain_weight * _answer_ce(model, r_in, r_t)
        else:
            rows = torch.randint(len(data.corpus), (max(1, batch // 4),),
                                 generator=torch.Generator().manual_seed(seed + step))
            inputs = (forget[0][0], r_in, data.corpus[rows], *(f[0] for f in forget[1:]))
            h = [resid(model, layer, ids) for ids in inputs]
            loss = sum(push(hf, f) for hf, f in zip([h[0], *h[3:]], forget))
            loss = loss + retain_weight * (F.mse_loss(h[1], retain_h0[task][idx]) + F.mse_loss(h[2], corpus_h0[rows]))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if method == "sspu" and reg_weight and outside is not None:
            _shrink_outside(params, start, names, outside, lr * reg_weight, residual_axes(model, names))
        if progress is not None:
            progress.update(1)
            progress.set_postfix(method=method, loss=f"{loss.item():.4f}")
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def residual_axes(model, names: list[str]) -> dict[str, int]:
    """The axis of each parameter that indexes the residual stream: the first for nn.Linear weights ([out, in])
    and biases, the last for GPT-2's Conv1D weights ([in, out])."""
    from transformers.pytorch_utils import Conv1D

    modules = dict(model.named_modules())
    conv = lambda n: n.endswith(".weight") and isinstance(modules.get(n.rsplit(".", 1)[0]), Conv1D)
    return {n: -1 if conv(n) else 0 for n in names}


@torch.no_grad()
def _shrink_outside(params: dict, start: dict, names: list[str], outside: torch.Tensor, strength: float,
                    axes: dict[str, int]) -> None:
    """The subspace penalty (reg_weight / 2) * ||(I - Q Q^T) dW||^2 as a proximal step after each Adam step of
    size lr: the update's component outside the relevant subspace is divided by (1 + lr * reg_weight). A penalty
    added to the loss does not hold under Adam, whose per-coordinate scaling undoes it (the test shows the
    difference); this decoupled form does, as AdamW decouples weight decay (also scaled by lr)."""
    d = outside.shape[0]
    for n in names:
        if params[n].shape[axes[n]] != d:  # only matrices and biases that write into the residual stream
            continue
        delta = (params[n] - start[n]).movedim(axes[n], 0)
        shrink = (outside @ delta.reshape(d, -1)).reshape(delta.shape).movedim(0, axes[n])
        params[n].sub_(shrink * (strength / (1 + strength)))


def clamp_fn(sae, features: list[int], clamp: float, max_acts: torch.Tensor):
    """The conditional clamping edit of block l's output (see the module docstring)."""
    target = -clamp * max_acts[features]

    @torch.no_grad()
    def edit(h):
        f = sae.encode(h)
        error = h - sae.decode(f)
        fires = (f[..., features] > 0).any(-1, keepdim=True)
        f[..., features] = torch.where(fires, target.expand_as(f[..., features]), f[..., features])
        return sae.decode(f) + error
    return edit


def ablate_fn(direction: torch.Tensor):
    d = direction / direction.norm()

    def edit(h):
        return h - (h @ d)[..., None] * d
    return edit
