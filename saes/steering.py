"""Per-token feature activations on a text, and steering with an SAE feature.

Autoregressive: add `strength x` the feature's (unit) decoder direction at the hook, every position, and
decode greedily. Diffusion (DLM-Scope's diffusion-time steering, docs/methods.md §4): at every denoising step of the
remasking sampler, encode the hook's activation, add `amp x` that position's largest SAE activation to the
feature, decode, and add back the SAE's reconstruction error; on all positions or only where the feature is
most active.

`steer_steps` does the same one model call at a time, so a caller (the app) can show the generations as they
grow and stop when its client goes away.
"""

from __future__ import annotations

import queue
import threading
from contextlib import closing
from dataclasses import dataclass
from types import SimpleNamespace

import torch

from interp.errors import InterpError


def _flat(act: torch.Tensor) -> torch.Tensor:
    return act.flatten(2)  # attention hooks are [batch, pos, head, d_head]; SAEs read them flattened


def n_ctx(loaded) -> int:
    """The model's context length: the most tokens it reads at once."""
    n = getattr(getattr(loaded.bridge, "cfg", None), "n_ctx", None)
    return int(n or loaded.model.config.max_position_embeddings)


def tokenize(loaded, text: str, what: str = "text", generate: int = 0) -> torch.Tensor:
    """`text`'s input ids, [1, n]; refused when they, plus `generate` tokens to come, overrun the context."""
    ids = loaded.tokenizer(text, return_tensors="pt")["input_ids"]
    limit, n = n_ctx(loaded), ids.shape[1]
    if n + generate > limit:
        more = f" and {generate} more were asked for" if generate else ""
        raise InterpError(f"the {what} is {n} tokens{more}; "
                          f"the model reads at most {limit} tokens (its context length)")
    return ids


@torch.no_grad()
def text_activations(loaded, hook: str, sae, text: str) -> tuple[list[str], torch.Tensor]:
    """The text's tokens and the SAE's latent activations at each, [n_tokens, d_sae]."""
    ids = tokenize(loaded, text)
    if ids.shape[1] == 0:
        raise InterpError("the text has no tokens")
    _, cache = loaded.bridge.run_with_cache(ids, names_filter=[hook])
    acts = sae.encode(_flat(cache[hook])[0])
    return loaded.tokenizer.convert_ids_to_tokens(ids[0].tolist()), acts


@dataclass
class SteerConfig:
    latent: int
    strength: float = 8.0  # AR: multiple of the unit decoder direction
    amp: float = 2.0  # diffusion: multiple of the position's largest SAE activation
    positions: str = "all"  # diffusion: "all" or "active" (where the feature is most active)
    n_tokens: int = 12
    denoise_steps: int | None = None  # diffusion denoising steps (default n_tokens)


def _ar_hook(sae, latent: int, strength: float):
    direction = sae.W_dec[latent].detach()

    def add(act, hook):
        return act + strength * direction.view(act.shape[2:])
    return add


def _diffusion_hook(sae, latent: int, amp: float, positions: str):
    def steer(act, hook):
        x = _flat(act)
        f = sae.encode(x)
        error = x - sae.decode(f)
        boost = amp * f.max(-1).values  # each position's largest SAE activation
        if positions == "active":  # only where this feature is most active: its top quarter of positions
            mine = f[..., latent]
            cut = mine.quantile(0.75, dim=-1, keepdim=True)
            boost = boost * ((mine >= cut) & (mine > 0))
        f = f.clone()
        f[..., latent] += boost
        return (sae.decode(f) + error).view(act.shape)
    return steer


def _greedy(bridge, ids: torch.Tensor, n_tokens: int, hooks: list):
    """Greedy decoding; yields the ids after each new token."""
    for _ in range(n_tokens):
        logits = bridge.run_with_hooks(ids, fwd_hooks=hooks)
        ids = torch.cat([ids, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
        yield ids


class _Stopped(Exception):
    """The caller of `_paced` stopped asking for steps."""


def _paced(work):
    """Run `work(pause)` in a thread that waits at each `pause(x)` until the caller asks for the next item.

    The diffusion sampler has no step hook; pausing it in its model call lets the caller stop it between two
    model calls: closing this generator ends the thread at its next pause. Yields each paused `x`, returns what
    `work` returns, and raises what it raises."""
    go, back = queue.SimpleQueue(), queue.SimpleQueue()

    def pause(x):
        back.put(("step", x))
        if not go.get():
            raise _Stopped

    def body():
        try:
            with torch.no_grad():  # grad mode is per thread
                back.put(("done", work(pause)))
        except _Stopped:
            pass
        except BaseException as e:  # re-raised in the caller's thread
            back.put(("error", e))

    threading.Thread(target=body, name="interp-steer", daemon=True).start()
    try:
        while True:
            kind, value = back.get()
            if kind == "error":
                raise value
            if kind == "done":
                return value
            yield value
            go.put(True)
    finally:
        go.put(False)  # a thread paused in `pause` stops; one that has finished never reads it


def _denoise(loaded, ids: torch.Tensor, cfg: "SteerConfig", hooks: list):
    """The remasking sampler; yields the sequence before each denoising step, then the result."""
    from interp.diffusion import sample

    def work(pause):
        def model(input_ids):
            pause(input_ids)
            return SimpleNamespace(logits=loaded.bridge.run_with_hooks(input_ids, fwd_hooks=hooks))
        return sample(model, ids, loaded.tokenizer.mask_token_id, gen_length=cfg.n_tokens,
                      denoise_steps=cfg.denoise_steps or cfg.n_tokens)
    yield (yield from _paced(work))


def _check_config(sae, cfg: SteerConfig) -> None:
    if not 0 <= cfg.latent < sae.cfg.d_sae:
        raise InterpError(f"latent {cfg.latent} is out of range; this SAE has latents 0..{sae.cfg.d_sae - 1}")
    if cfg.positions not in ("all", "active"):
        raise InterpError(f"positions must be 'all' or 'active', got {cfg.positions!r}")
    if cfg.n_tokens < 1:
        raise InterpError("n_tokens must be >= 1")


@torch.no_grad()
def steer_steps(loaded, hook: str, sae, prompt: str, cfg: SteerConfig):
    """`steer`, one model call at a time: yields the result so far after each call (the default generation
    first, then the steered one); a caller that closes the generator stops the work there."""
    _check_config(sae, cfg)
    ids = tokenize(loaded, prompt, "prompt", cfg.n_tokens)
    if loaded.is_diffusion:
        hooks = [(hook, _diffusion_hook(sae, cfg.latent, cfg.amp, cfg.positions))]
        run = lambda fwd_hooks: _denoise(loaded, ids, cfg, fwd_hooks)
    else:
        if ids.shape[1] == 0:
            raise InterpError("the prompt has no tokens")
        hooks = [(hook, _ar_hook(sae, cfg.latent, cfg.strength))]
        run = lambda fwd_hooks: _greedy(loaded.bridge, ids, cfg.n_tokens, fwd_hooks)
    result = {"prompt": prompt, "default": "", "steered": "",
              "mode": "diffusion" if loaded.is_diffusion else "autoregressive"}
    for key, fwd_hooks in (("default", []), ("steered", hooks)):
        with closing(run(fwd_hooks)) as outs:  # closing this generator closes the run (and its thread) now
            for out in outs:
                result = dict(result, **{key: loaded.tokenizer.decode(out[0, ids.shape[1]:].tolist())})
                yield result


def steer(loaded, hook: str, sae, prompt: str, cfg: SteerConfig) -> dict:
    """Default and steered continuations of `prompt` (greedy; the diffusion model fills `n_tokens` masks)."""
    for result in steer_steps(loaded, hook, sae, prompt, cfg):
        pass
    return result
