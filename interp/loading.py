"""`load_model`: a zoo name, a local HF directory or a hub id -> HF model, tokenizer and a
TransformerLens `TransformerBridge` with TransformerLens hook names.

Bidirectional models (config `is_causal: false`, the zoo's diffusion model) get the bridge's attention
reconstruction switched to bidirectional too: the bridge otherwise synthesises a causal mask.

`dtype` picks the weights' precision (float32, bfloat16, float16); `device_map="auto"` lets accelerate spread
a model too big for one device over all of them. A `.gguf` file (or a directory holding one and no
config.json) loads through transformers' GGUF reader, dequantised to `dtype`: a plain HF model after that.
"""

from __future__ import annotations

import os
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import InterpError
from .zoo import ZOO, get_entry


@dataclass
class LoadedModel:
    name: str
    kind: str  # "ar" or "diffusion"
    model: Any  # the HF model (shared with the bridge, which wraps its modules)
    tokenizer: Any
    bridge: Any = None
    path: str | None = None
    head_loaded: bool = True  # False: the checkpoint had no LM head (e.g. a bare BertModel); it is random
    dtype: str = "float32"
    device_map: str | None = None  # set: accelerate placed the weights; inputs go to the embeddings' device

    @property
    def is_diffusion(self) -> bool:
        return self.kind == "diffusion"

    def require_head(self, what: str) -> None:
        """Refuse `what` (a metric read through the LM head's logits) on a model whose head is random."""
        if not self.head_loaded:
            raise InterpError(f"{what} needs the model's LM head, but {self.name} has none (its checkpoint lacks the "
                              "head's weights, as a bare BertModel does); use a checkpoint saved with its head")


def resolve(name_or_path: str) -> tuple[str, str | None]:
    """(where to load from: a model directory, a .gguf file or a hub id; zoo kind or None)."""
    if name_or_path in ZOO:
        entry = get_entry(name_or_path)
        if not (entry.path / "config.json").exists():
            raise InterpError(f"zoo model {name_or_path!r} has no weights at {entry.path}; run `interp zoo train {name_or_path}`")
        return str(entry.path), entry.kind
    p = Path(name_or_path).expanduser()
    if p.exists():
        if p.is_file() and p.suffix == ".gguf":
            return str(p), None
        if p.is_dir() and not (p / "config.json").exists():
            ggufs = sorted(p.glob("*.gguf"))
            if len(ggufs) == 1:
                return str(ggufs[0]), None
            if ggufs:
                raise InterpError(f"{p} holds {len(ggufs)} .gguf files ({', '.join(g.name for g in ggufs)}); "
                                  "pass the path of the one to load")
        if not (p / "config.json").exists():
            raise InterpError(f"{p} is not a Hugging Face model directory (no config.json) nor a .gguf file")
        return str(p), None
    if p.suffix == ".gguf":
        raise InterpError(f"GGUF file {name_or_path} does not exist")
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


DTYPES = ("float32", "bfloat16", "float16")
DEVICE_MAPS = ("auto", "balanced", "balanced_low_0", "sequential")  # the strategies accelerate knows by name


def torch_dtype(dtype: str):
    """The torch dtype named `dtype`, or one error line naming the choices."""
    import torch

    if dtype not in DTYPES:
        raise InterpError(f"unknown dtype {dtype!r}; use {', '.join(DTYPES)}")
    return getattr(torch, dtype)


def check_device_map(device_map: str | None) -> None:
    import importlib.util

    if device_map is None:
        return
    if device_map not in DEVICE_MAPS:
        raise InterpError(f"unknown device map {device_map!r}; use {', '.join(DEVICE_MAPS)}")
    if importlib.util.find_spec("accelerate") is None:
        raise InterpError(f"--device-map {device_map} needs accelerate: pip install accelerate")


def gguf_args(source: str) -> tuple[str, dict]:
    """(what to pass to from_pretrained, extra keyword arguments): transformers reads a .gguf file by name
    from its directory."""
    import importlib.util

    p = Path(source)
    if p.suffix != ".gguf" or not p.is_file():
        return source, {}
    if importlib.util.find_spec("gguf") is None:
        raise InterpError(f"{p} is a GGUF file; reading it needs the gguf package: pip install -e \".[gguf]\"")
    return str(p.parent), {"gguf_file": p.name}


def load_model(name_or_path: str, bridge: bool = True, hooks_for_edges: bool = False,
               trust_remote_code: bool = False, device: str = "cpu", dtype: str = "float32",
               device_map: str | None = None) -> LoadedModel:
    """Load a model by zoo name, local directory, .gguf file or hub id.

    `hooks_for_edges` turns on the bridge's attention-result, split-qkv-input and mlp-in hooks that
    edge attribution needs (`blocks.{l}.attn.hook_result`, `blocks.{l}.hook_q_input`, ...).
    `dtype` is float32, bfloat16 or float16; `device_map` ("auto", ...) places the weights through accelerate
    instead of moving the model to `device`.
    """
    from transformers import AutoConfig, AutoTokenizer

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # one line per error, no weight-loading bars in CLI output
    check_device(device)
    torch_dtype(dtype)
    check_device_map(device_map)
    source, kind = resolve(name_or_path)
    where, gguf = gguf_args(source)
    if not Path(source).exists() and not hub_reachable():
        raise InterpError(
            f"model {name_or_path!r} is not available offline: use a zoo name ({', '.join(ZOO)}) "
            "or download it where there is network and pass its local directory"
        )
    try:
        config = AutoConfig.from_pretrained(where, trust_remote_code=trust_remote_code, **gguf)
        tokenizer = AutoTokenizer.from_pretrained(where, trust_remote_code=trust_remote_code, **gguf)
    except OSError as e:
        if not Path(source).exists():
            raise InterpError(f"hub model {name_or_path!r} could not be loaded: {str(e).splitlines()[0]}") from None
        raise InterpError(f"cannot load {source}: {str(e).splitlines()[0]}") from None
    except ValueError as e:
        raise InterpError(f"cannot load {name_or_path!r}: {str(e).splitlines()[0]}") from None
    except (KeyError, IndexError, TypeError, AssertionError, EOFError, struct.error) as e:
        if not gguf:
            raise
        # the GGUF reader fails on a damaged or foreign file with these too; the first line says why
        first = (str(e).splitlines() or [type(e).__name__])[0]
        raise InterpError(f"cannot read the GGUF file {source} ({first})") from None
    if kind is None:
        kind = "diffusion" if getattr(config, "is_causal", True) is False or masked_family(config) else "ar"
    if kind == "diffusion" and tokenizer.mask_token is None and (token := family_mask_token(config)):
        tokenizer.mask_token = token  # LLaDA's tokenizer holds its mask token without naming it
    model, head_loaded = _load_weights(source, trust_remote_code, dtype, device_map, masked=kind == "diffusion")
    if device_map is None:
        model.to(device)
    model.eval()
    loaded = LoadedModel(name_or_path, kind, model, tokenizer, path=source, head_loaded=head_loaded, dtype=dtype,
                         device_map=device_map)
    if bridge:
        loaded.bridge = make_bridge(loaded, hooks_for_edges, trust_remote_code, device)
    return loaded


WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")


def masked_family(config) -> bool:
    """Whether the config's family is a masked LM (BERT, LLaDA, Dream), which the workbench runs as a diffusion
    model."""
    from .families import FAMILIES

    return any(f.masked and config.model_type in f.model_types for f in FAMILIES.values())


def family_mask_token(config) -> str | None:
    from .families import FAMILIES

    return next((f.mask_token for f in FAMILIES.values() if config.model_type in f.model_types), None)


def _load_weights(source: str, trust_remote_code: bool, dtype: str = "float32", device_map: str | None = None,
                  masked: bool = False):
    """(the HF model at `source`, whether its head came from the checkpoint), with one line for missing or
    corrupt weights instead of a loader traceback."""
    import torch
    from safetensors import SafetensorError
    from transformers import AutoModel, AutoModelForCausalLM, AutoModelForMaskedLM

    if Path(source).is_dir() and not any((Path(source) / f).exists() for f in WEIGHT_FILES):
        raise InterpError(f"{source} holds no weights; a model directory needs model.safetensors or pytorch_model.bin")
    where, gguf = gguf_args(source)
    kw = dict(trust_remote_code=trust_remote_code, dtype=getattr(torch, dtype), output_loading_info=True, **gguf)
    if gguf:
        from transformers import GgufConfig

        # unpacked to plain tensors even where a GGUF matmul kernel is installed: hooks, gradients and the
        # bridge need ordinary Linear weights
        kw["quantization_config"] = GgufConfig(dequantize=True)
    if device_map is not None:
        kw["device_map"] = device_map
    try:
        first, second = (AutoModelForMaskedLM, AutoModelForCausalLM) if masked else (AutoModelForCausalLM, AutoModelForMaskedLM)
        try:
            model, info = first.from_pretrained(where, **kw)
        except ValueError:  # no head of that kind for this config: the other one
            try:
                model, info = second.from_pretrained(where, **kw)
            except ValueError:
                if not trust_remote_code:
                    raise
                # remote code (LLaDA, Dream) may register its language model under AutoModel only
                model, info = AutoModel.from_pretrained(where, **kw)
    except (SafetensorError, OSError, RuntimeError, ValueError) as e:
        first = (str(e).splitlines() or [type(e).__name__])[0]
        raise InterpError(f"cannot load the weights in {source}, corrupt or incomplete ({first}); "
                          "copy or retrain the model directory") from None
    # Any missing key outside the base model is head, freshly initialised: head names differ by family (cls.,
    # lm_head, embed_out, vocab_projector, ...), so no list of prefixes is complete. A tied head (lm_head = the
    # embeddings) is not reported missing by transformers 5; one that shares its tensor with a loaded weight
    # is not counted either, whatever the version reports.
    params = dict(model.named_parameters(remove_duplicate=False))
    missing = set(info.get("missing_keys", ()))
    loaded = {id(p) for n, p in params.items() if n not in missing}  # tied names share one Parameter
    head_missing = [k for k in missing if not k.startswith(model.base_model_prefix + ".")
                    and not (k in params and id(params[k]) in loaded)]
    if gguf:
        # the weights are dequantised, but the model still names a GGUF quantizer, which makes save_pretrained
        # refuse and PEFT treat it as quantized: forget it
        model.hf_quantizer = None
        model.config.__dict__.pop("quantization_config", None)
    return model, not head_missing


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

    if loaded.device_map is not None:  # accelerate placed the weights; the bridge feeds the embeddings' device
        device = str(loaded.model.get_input_embeddings().weight.device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # the bridge reads the config from the HF model itself, so a GGUF-loaded model needs no config.json
        bridge = TransformerBridge.boot_transformers(
            loaded.path, hf_model=loaded.model, tokenizer=loaded.tokenizer, device=device,
            dtype=next(loaded.model.parameters()).dtype, trust_remote_code=trust_remote_code,
        )
    if loaded.is_diffusion:
        for block in bridge.blocks:
            # plain assignment is forwarded to the wrapped HF module; the flag lives on the bridge component
            object.__setattr__(block.attn, "is_causal", False)
    if hooks_for_edges:
        try:
            bridge.set_use_attn_result(True)
            bridge.set_use_split_qkv_input(True)
            bridge.set_use_hook_mlp_in(True)
        except NotImplementedError:  # the Bridge splits heads only for some attention layouts (not BERT's)
            raise InterpError(f"{loaded.name}: TransformerBridge has no per-head attention hooks for "
                              f"{loaded.model.config.model_type} models, which edge attribution needs") from None
    return bridge
