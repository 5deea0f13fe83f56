"""The zoo's model architecture: a small GPT-NeoX (Pythia family), causal or bidirectional.

Number-token embeddings start from Fourier features of the number's value (periods 2..1000), the
structure pretrained LLMs are found to use for numbers; it lets a 1M-parameter model learn arithmetic
in minutes on a CPU instead of memorising tables from random vectors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from . import vocab
from .seeds import manual_seed, torch_generator
from .tokenizer import number_token_id

PERIODS = (2, 3, 5, 7, 10, 20, 50, 100, 250, 500, 1000)


@dataclass
class ArchConfig:
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    d_mlp: int = 512
    n_ctx: int = 128
    causal: bool = True


def build_model(arch: ArchConfig, seed: int):
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    from .tokenizer import load_tokenizer

    tok = load_tokenizer()
    cfg = GPTNeoXConfig(
        vocab_size=len(tok), hidden_size=arch.d_model, num_hidden_layers=arch.n_layers,
        num_attention_heads=arch.n_heads, intermediate_size=arch.d_mlp, max_position_embeddings=arch.n_ctx,
        rotary_pct=0.25, use_parallel_residual=True, tie_word_embeddings=False, is_causal=arch.causal,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
        hidden_dropout=0.0, attention_dropout=0.0,
    )
    manual_seed(seed, "init/weights")
    model = GPTNeoXForCausalLM(cfg)
    init_number_embeddings(model, seed)
    return model


def number_features(n: torch.Tensor) -> torch.Tensor:
    """cos/sin of 2*pi*n/T for each period T, plus the scaled value: (len(n), 2*len(PERIODS)+1)."""
    angles = 2 * math.pi * n[:, None].float() / torch.tensor(PERIODS, dtype=torch.float)[None]
    return torch.cat([angles.cos(), angles.sin(), (n[:, None].float() / vocab.MAX_NUMBER) * 2 - 1], dim=1)


@torch.no_grad()
def init_number_embeddings(model, seed: int) -> None:
    """Overwrite the number rows of the input and output embeddings with a random projection of
    `number_features`, scaled to the norm of the randomly initialised rows."""
    g = torch_generator(seed, "init/number-embeddings")
    numbers = torch.arange(vocab.MAX_NUMBER + 1)
    rows = number_token_id(0) + numbers
    feats = number_features(numbers)
    for weight in (model.get_input_embeddings().weight, model.get_output_embeddings().weight):
        proj = torch.linalg.qr(torch.randn(weight.shape[1], feats.shape[1], generator=g))[0]
        emb = feats @ proj.T
        target = weight.norm(dim=1).mean()
        weight[rows] = emb / emb.norm(dim=1, keepdim=True).mean() * target
