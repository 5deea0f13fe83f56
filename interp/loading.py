"""`load_model`: a zoo name, a local HF directory or a hub id -> HF model, tokenizer and a
TransformerLens `TransformerBridge` with TransformerLens hook names.

Bidirectional models (config `is_causal: false`, the zoo's diffusion model) get the bridge's attention
reconstruction switched to bidirectional too: the bridge otherwise synthesises a causal mask.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import InterpError
from .zoo import ZOO, get_entry

DIFFUSION_TYPES = {"llada", "dream"}


@dataclass
class LoadedModel:
    name: str
    kind: str  # "ar" or "diffusion"
    model: Any  # the HF model (shared with the bridge, which wraps its modules)
    tokenizer: Any
    bridge: Any = None
    path: str | None = None

    @property
    def is_diffusion(self) -> bool:
        return self.kind == "diffusion"


def resolve(name_or_path: str) -> tuple[str, str | None]:
    """(where to load from, zoo kind or None)."""
    if name_or_path in ZOO:
        entry = get_entry(name_or_path)
        if not (entry.path / "config.json").exists():
            raise InterpError(f"zoo model {name_or_path!r} has no weights at {entry.path}; run `interp zoo train {name_or_path}`")
        return str(entry.path), entry.kind
    p = Path(name_or_path).expanduser()
    if p.exists():
        if not (p / "config.json").exists():
            raise InterpError(f"{p} is not a Hugging Face model directory (no config.json)")
        return str(p), None
    if name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1:
        raise InterpError(f"model directory {name_or_path} does not exist")
    return name_or_path, None


def hub_reachable(timeout: float = 2.0) -> bool:
    """False when HF_HUB_OFFLINE is set or the hub cannot be reached (checked once, without retries)."""
    import socket

    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return False
    try:
        socket.create_connection(("huggingface.co", 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def check_device(device: str) -> None:
    """One clear error for a device torch cannot parse, or a GPU this torch cannot see."""
    import torch

    try:
        kind = torch.device(device).type
    except (RuntimeError, ValueError):
        raise InterpError(f"unknown device {device!r}; use cpu, cuda, cuda:N or mps") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise InterpError(f"device {device!r}: torch {torch.__version__} sees no CUDA GPU (a CPU build, or no driver)")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise InterpError(f"device {device!r}: torch sees no Apple GPU")


def load_model(name_or_path: str, bridge: bool = True, hooks_for_edges: bool = False,
               trust_remote_code: bool = False, device: str = "cpu") -> LoadedModel:
    """Load a model by zoo name, local directory or hub id.

    `hooks_for_edges` turns on the bridge's attention-result, split-qkv-input and mlp-in hooks that
    edge attribution needs (`blocks.{l}.attn.hook_result`, `blocks.{l}.hook_q_input`, ...).
    """
    from transformers import AutoConfig, AutoTokenizer

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # one line per error, no weight-loading bars in CLI output
    check_device(device)
    source, kind = resolve(name_or_path)
    if not Path(source).exists() and not hub_reachable():
        raise InterpError(
            f"model {name_or_path!r} is not available offline: use a zoo name ({', '.join(ZOO)}) "
            "or download it where there is network and pass its local directory"
        )
    try:
        config = AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code)
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
    except OSError as e:
        if not Path(source).exists():
            raise InterpError(f"hub model {name_or_path!r} could not be loaded: {str(e).splitlines()[0]}") from None
        raise InterpError(f"cannot load {source}: {str(e).splitlines()[0]}") from None
    except ValueError as e:
        raise InterpError(f"cannot load {name_or_path!r}: {str(e).splitlines()[0]}") from None
    if kind is None:
        bidirectional = getattr(config, "is_causal", True) is False or config.model_type in DIFFUSION_TYPES
        kind = "diffusion" if bidirectional else "ar"
    model = _load_weights(source, trust_remote_code)
    model.to(device).eval()
    loaded = LoadedModel(name_or_path, kind, model, tokenizer, path=source)
    if bridge:
        loaded.bridge = make_bridge(loaded, hooks_for_edges, trust_remote_code, device)
    return loaded


WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")


def _load_weights(source: str, trust_remote_code: bool):
    """The HF model at `source`, with one line for missing or corrupt weights instead of a loader traceback."""
    import torch
    from safetensors import SafetensorError
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM

    if Path(source).is_dir() and not any((Path(source) / f).exists() for f in WEIGHT_FILES):
        raise InterpError(f"{source} holds no weights; a model directory needs model.safetensors or pytorch_model.bin")
    try:
        try:
            return AutoModelForCausalLM.from_pretrained(source, trust_remote_code=trust_remote_code, dtype=torch.float32)
        except ValueError:  # no causal-LM head for this config: a masked LM
            return AutoModelForMaskedLM.from_pretrained(source, trust_remote_code=trust_remote_code, dtype=torch.float32)
    except (SafetensorError, OSError, RuntimeError, ValueError) as e:
        first = (str(e).splitlines() or [type(e).__name__])[0]
        raise InterpError(f"cannot load the weights in {source}, corrupt or incomplete ({first}); "
                          "copy or retrain the model directory") from None


CONTEXT_KEYS = ("n_ctx", "max_position_embeddings", "n_positions")


def _context_limit(model) -> tuple[str, int] | None:
    """(config key, value) of the longest sequence `model` (a LoadedModel, a bridge or an HF model) has
    positions for; None when its HF config names no limit."""
    if isinstance(model, LoadedModel):
        model = model.model
    config = getattr(getattr(model, "original_model", model), "config", None)  # a bridge wraps the HF model
    for key in CONTEXT_KEYS:
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return key, value
    return None


def max_context(model) -> int | None:
    """The longest sequence the model has positions for (n_ctx / max_position_embeddings), or None."""
    limit = _context_limit(model)
    return limit[1] if limit else None


def check_context(model, context_size: int) -> None:
    """Refuse sequences longer than the model's positions: learned positions fail or exhaust memory, rotary
    ones run silently on positions the model never saw (wrong CE)."""
    limit = _context_limit(model)
    if limit is not None and context_size > limit[1]:
        key, value = limit
        raise InterpError(f"context size {context_size} is above the model's limit of {value} tokens "
                          f"({key} in its config); use a context size of at most {value}")


def make_bridge(loaded: LoadedModel, hooks_for_edges: bool = False, trust_remote_code: bool = False, device: str = "cpu"):
    """Wrap the loaded HF model in a TransformerBridge (the bridge takes over the model's modules)."""
    from transformer_lens.model_bridge import TransformerBridge

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bridge = TransformerBridge.boot_transformers(
            loaded.path, hf_model=loaded.model, tokenizer=loaded.tokenizer, device=device,
            trust_remote_code=trust_remote_code,
        )
    if loaded.is_diffusion:
        for block in bridge.blocks:
            # plain assignment is forwarded to the wrapped HF module; the flag lives on the bridge component
            object.__setattr__(block.attn, "is_causal", False)
    if hooks_for_edges:
        bridge.set_use_attn_result(True)
        bridge.set_use_split_qkv_input(True)
        bridge.set_use_hook_mlp_in(True)
    return bridge
