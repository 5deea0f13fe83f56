"""Reading and editing block l's output (the residual stream after it, hook_resid_post) on plain HF models, and
naming the parameters an update may change."""

from __future__ import annotations

from contextlib import contextmanager

import torch


def block(model, layer: int):
    from interp.families import layer_list

    return layer_list(model)[layer]


@contextmanager
def capture(model, layer: int):
    """Record block `layer`'s output during forwards."""
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


def ablate_fn(direction: torch.Tensor):
    d = direction / direction.norm()

    def edit(h):
        return h - (h @ d)[..., None] * d
    return edit


def answer_prob(model, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """[n] the model's probability of each prompt's whole answer (interp/answers.py)."""
    from interp.answers import answer_logprob

    return answer_logprob(model(input_ids=inputs).logits, targets).exp()


def param_names(model, layers: list[int], params: str) -> list[str]:
    """`params`: comma-separated module suffixes inside the chosen blocks; `mlp_out` names the family's MLP
    output projection (the default)."""
    from interp.families import block_prefix, family_of

    names = []
    wanted = [s.strip() for s in params.split(",")]
    for n, _ in model.named_parameters():
        prefix = next((p for p in (block_prefix(model, l) for l in layers) if n.startswith(p)), None)
        if prefix is None:
            continue
        module = n[len(prefix):].rsplit(".", 1)[0]
        if ("mlp_out" in wanted and module == family_of(model.config).mlp_out_path
                or any(f".{s}." in f".{module}." for s in wanted if s != "mlp_out")):
            names.append(n)
    return names


def residual_axes(model, names: list[str]) -> dict[str, int]:
    """The axis of each parameter that indexes the residual stream: the first for nn.Linear weights ([out, in])
    and biases, the last for GPT-2's Conv1D weights ([in, out])."""
    from transformers.pytorch_utils import Conv1D

    modules = dict(model.named_modules())
    conv = lambda n: n.endswith(".weight") and isinstance(modules.get(n.rsplit(".", 1)[0]), Conv1D)
    return {n: -1 if conv(n) else 0 for n in names}
