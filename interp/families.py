"""Model families: the one place that knows how a family lays out its modules.

Each adapter says where the blocks are, whether attention and MLP read the same residual (parallel) or one
after the other, the attention layout (query heads and key/value heads, fewer under grouped-query
attention), whether the MLP is gated, which linear modules PEFT targets, which module is the MLP's output
projection, and whether the family is a masked LM (the workbench's diffusion kind). A model is matched by its
config's `model_type`; anything else is refused in one line naming the supported families.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import InterpError


@dataclass(frozen=True)
class Family:
    name: str
    model_types: tuple[str, ...]  # transformers `config.model_type` values
    blocks: str  # dotted path from the top-level model to the list of blocks
    attn_linears: tuple[str, ...]  # attention projections (PEFT target names)
    mlp_linears: tuple[str, ...]  # MLP projections, the output projection last
    gated_mlp: bool
    mlp_out_path: str  # the MLP output projection, relative to a block
    masked: bool = False  # a masked LM (BERT, LLaDA, Dream): the workbench treats it as a diffusion model
    mask_token: str | None = None  # a diffusion family's mask token, where its tokenizer does not name one
    parallel_attr: str | None = None  # config flag for a parallel residual, where the family has one

    @property
    def linears(self) -> list[str]:
        return [*self.attn_linears, *self.mlp_linears]


FAMILIES: dict[str, Family] = {f.name: f for f in [
    Family("gpt_neox", ("gpt_neox",), "gpt_neox.layers", ("query_key_value", "dense"),
           ("dense_h_to_4h", "dense_4h_to_h"), gated_mlp=False, mlp_out_path="mlp.dense_4h_to_h", parallel_attr="use_parallel_residual"),
    Family("gpt2", ("gpt2",), "transformer.h", ("c_attn", "c_proj"), ("c_fc", "c_proj"), gated_mlp=False, mlp_out_path="mlp.c_proj"),
    Family("llama", ("llama", "mistral"), "model.layers", ("q_proj", "k_proj", "v_proj", "o_proj"),
           ("gate_proj", "up_proj", "down_proj"), gated_mlp=True, mlp_out_path="mlp.down_proj"),
    Family("qwen", ("qwen2", "qwen3"), "model.layers", ("q_proj", "k_proj", "v_proj", "o_proj"),
           ("gate_proj", "up_proj", "down_proj"), gated_mlp=True, mlp_out_path="mlp.down_proj"),
    Family("gemma", ("gemma2", "gemma3_text"), "model.layers", ("q_proj", "k_proj", "v_proj", "o_proj"),
           ("gate_proj", "up_proj", "down_proj"), gated_mlp=True, mlp_out_path="mlp.down_proj"),
    # multimodal Gemma 3 (Gemma3ForConditionalGeneration) nests the language model beside the vision tower
    Family("gemma3", ("gemma3",), "model.language_model.layers", ("q_proj", "k_proj", "v_proj", "o_proj"),
           ("gate_proj", "up_proj", "down_proj"), gated_mlp=True, mlp_out_path="mlp.down_proj"),
    Family("bert", ("bert",), "bert.encoder.layer", ("query", "key", "value", "attention.output.dense"),
           ("intermediate.dense", "output.dense"), gated_mlp=False, mlp_out_path="output.dense", masked=True),
    # masked diffusion LMs whose code ships with the checkpoint (--trust-remote-code): LLaDA's blocks hold their
    # projections directly (its unembedding is also called ff_out, outside the blocks); Dream is Qwen2's tree
    Family("llada", ("llada",), "model.transformer.blocks", ("q_proj", "k_proj", "v_proj", "attn_out"),
           ("ff_proj", "up_proj", "ff_out"), gated_mlp=True, mlp_out_path="ff_out", masked=True, mask_token="<|mdm_mask|>"),
    Family("dream", ("Dream", "dream"), "model.layers", ("q_proj", "k_proj", "v_proj", "o_proj"),
           ("gate_proj", "up_proj", "down_proj"), gated_mlp=True, mlp_out_path="mlp.down_proj", masked=True),
]}


def family_of(config) -> Family:
    """The adapter for an HF config (or a model carrying one)."""
    config = getattr(config, "config", config)
    model_type = getattr(config, "model_type", None)
    for f in FAMILIES.values():
        if model_type in f.model_types:
            return f
    supported = ", ".join(t for f in FAMILIES.values() for t in f.model_types)
    raise InterpError(f"unsupported model family {model_type!r}; supported: {supported}")


def text_config(config):
    """The language model's config (multimodal configs such as Gemma 3's nest it)."""
    return getattr(config, "text_config", None) or config


def n_layers(config) -> int:
    c = text_config(getattr(config, "config", config))
    return getattr(c, "num_hidden_layers", None) or c.n_layers  # LLaDA's config names it n_layers


def heads(config) -> tuple[int, int]:
    """(query heads, key/value heads); equal without grouped-query attention."""
    c = text_config(getattr(config, "config", config))
    n = getattr(c, "num_attention_heads", None) or c.n_heads
    return n, getattr(c, "num_key_value_heads", None) or getattr(c, "n_kv_heads", None) or n


def parallel_residual(config) -> bool:
    """Whether attention and MLP both read the block's input (GPT-NeoX, GPT-J) instead of one after the other."""
    c = text_config(getattr(config, "config", config))
    f = family_of(c)
    return bool(f.parallel_attr and getattr(c, f.parallel_attr, False))


def layer_list(model):
    """The model's blocks (an nn.ModuleList), through a PEFT wrapper if there is one."""
    root = model.get_base_model() if hasattr(model, "get_base_model") else model
    obj = root
    for part in family_of(root.config).blocks.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise InterpError(f"{type(root).__name__} has no {family_of(root.config).blocks}; is it a "
                              f"{family_of(root.config).name} language model with its head?")
    return obj


def block_prefix(model, layer: int) -> str:
    """The parameter-name prefix of block `layer` (`model.layers.3.`)."""
    return f"{family_of(model.config).blocks}.{layer}."


def peft_targets(model) -> list[str]:
    """The linear modules LoRA adapts by default: every attention and MLP projection of the family."""
    return sorted(set(family_of(model.config).linears))


def outside_blocks(model, targets: list[str]) -> list[str]:
    """Modules named like `targets` but outside the language model's blocks (a multimodal model's vision tower
    has its own q_proj ...): LoRA must leave them alone."""
    inside = family_of(model.config).blocks + "."
    return [n for n, _ in model.named_modules()
            if n.split(".")[-1] in targets and not n.startswith(inside) and f".{inside}" not in f".{n}"]
