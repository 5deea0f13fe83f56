"""Tiny random-initialised models, one per family in interp/families.py, for tests/test_families.py.

Each is 2 layers, d_model 32, 4 query heads (2 key/value heads where the family has grouped-query attention),
built from its `transformers` config class with a fixed seed and saved with the workbench's tokenizer, so
`load_model(path)` reads it like any local model directory. What the tests expect of each family is written
out here by hand, not derived from interp/families.py, so a wrong adapter entry fails a test.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

D_MODEL, N_HEADS, N_KV_HEADS, D_MLP, N_CTX = 32, 4, 2, 64, 128


@dataclass(frozen=True)
class Spec:
    config: str  # transformers config class
    model: str  # transformers model class (the one with the family's LM head)
    family: str  # interp.families name
    kwargs: dict = field(default_factory=dict)
    kv_heads: int = N_HEADS
    parallel: bool = False
    masked: bool = False
    # the linear modules LoRA must adapt, relative to a block
    lora: tuple[str, ...] = ()
    blocks: str = "model.layers"  # where the blocks are
    mlp_out: str = "mlp.down_proj"  # the MLP output projection, relative to a block


LLAMA_LIKE = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
              "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")
COMMON = dict(num_hidden_layers=2, hidden_size=D_MODEL, num_attention_heads=N_HEADS, intermediate_size=D_MLP,
              max_position_embeddings=N_CTX)
GQA = dict(COMMON, num_key_value_heads=N_KV_HEADS, head_dim=D_MODEL // N_HEADS)

SPECS: dict[str, Spec] = {
    "gpt_neox": Spec("GPTNeoXConfig", "GPTNeoXForCausalLM", "gpt_neox",
                     dict(COMMON, rotary_pct=0.25, use_parallel_residual=True), parallel=True,
                     lora=("attention.query_key_value", "attention.dense", "mlp.dense_h_to_4h", "mlp.dense_4h_to_h"),
                     blocks="gpt_neox.layers", mlp_out="mlp.dense_4h_to_h"),
    "gpt2": Spec("GPT2Config", "GPT2LMHeadModel", "gpt2",
                 dict(n_layer=2, n_embd=D_MODEL, n_head=N_HEADS, n_inner=D_MLP, n_positions=N_CTX),
                 lora=("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"), blocks="transformer.h",
                 mlp_out="mlp.c_proj"),
    "llama": Spec("LlamaConfig", "LlamaForCausalLM", "llama", GQA, N_KV_HEADS, lora=LLAMA_LIKE),
    "qwen2": Spec("Qwen2Config", "Qwen2ForCausalLM", "qwen", GQA, N_KV_HEADS, lora=LLAMA_LIKE),
    "qwen3": Spec("Qwen3Config", "Qwen3ForCausalLM", "qwen", GQA, N_KV_HEADS, lora=LLAMA_LIKE),
    "gemma2": Spec("Gemma2Config", "Gemma2ForCausalLM", "gemma", GQA, N_KV_HEADS, lora=LLAMA_LIKE),
    "gemma3_text": Spec("Gemma3TextConfig", "Gemma3ForCausalLM", "gemma", GQA, N_KV_HEADS, lora=LLAMA_LIKE),
    # `is_causal: false` is how a model directory tells load_model it is a diffusion model (see
    # test_masked_family_loads_as_a_diffusion_model for a BERT config without it)
    "bert": Spec("BertConfig", "BertForMaskedLM", "bert", dict(COMMON, is_causal=False), masked=True,
                 lora=("attention.self.query", "attention.self.key", "attention.self.value",
                       "attention.output.dense", "intermediate.dense", "output.dense"),
                 blocks="bert.encoder.layer", mlp_out="output.dense"),
}


def build(name: str, path: Path, seed: int = 0, **config) -> Path:
    """Family `name`'s tiny model, random with `seed`, saved with the workbench tokenizer at `path`; `config`
    overrides the spec's config arguments (None drops one)."""
    import transformers

    from interp.tokenizer import load_tokenizer

    spec = SPECS[name]
    tok = load_tokenizer()
    ids = dict(vocab_size=len(tok), pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
               eos_token_id=tok.eos_token_id)
    if spec.masked:
        ids["mask_token_id"] = tok.mask_token_id  # BERT's config has no field for it; kept for readers
    kwargs = {k: v for k, v in (spec.kwargs | config).items() if v is not None}
    config = getattr(transformers, spec.config)(**(ids | kwargs))
    torch.manual_seed(seed)
    model = getattr(transformers, spec.model)(config)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path
