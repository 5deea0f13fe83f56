"""CircuitLoRA's allocation on hand-made circuits and the zoo model's modules: critical layers, ranks applied
by PEFT, parameter counts by formula, parameter matching."""

import pytest
import torch

from circuits.allocation import (allocate, check_ranks, critical_layers, layer_sizes, lora_parameters,
                                 match_params)
from circuits.circuit import Circuit
from circuits.graph import Graph
from interp.errors import InterpError
from interp.finetune import FinetuneConfig, LoRAOptions, peft_config

GPT_NEOX_LINEARS = ["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"]

G = Graph(4, 4, True)


def circuit(named: dict[str, float]) -> Circuit:
    return Circuit.from_scores(G, torch.tensor([named.get(e.name, 0.0) for e in G.edges]), threshold=0.1)


BEFORE = circuit({"input->a0.h0<v>": 1.0, "a0.h0->logits": 1.0})
AFTER = circuit({"input->a0.h0<v>": 1.0, "a0.h0->a2.h1<v>": 2.0, "a2.h1->m3": 3.0, "m3->logits": 0.5})


def test_critical_layers_by_source_and_target():
    # change by source: layer 0 gets a0.h0->logits (1) + a0.h0->a2.h1 (2); layer 2: 3; layer 3: 0.5
    from circuits.comparison import layer_change

    src = layer_change(BEFORE, AFTER, "source")
    assert src == pytest.approx({0: 3.0, 1: 0.0, 2: 3.0, 3: 0.5, 4: 0.0})
    assert critical_layers(src, 4, "topk:2") == [0, 2]
    dst = layer_change(BEFORE, AFTER, "target")
    assert dst == pytest.approx({0: 0.0, 1: 0.0, 2: 2.0, 3: 3.0, 4: 1.5})
    assert critical_layers(dst, 4, "topk:1") == [3]  # logits (layer 4) is not a block
    assert critical_layers(dst, 4, "mean+std") == [3]
    assert critical_layers(src, 4, "layers:3,1") == [1, 3]  # by hand, even where nothing changed (layer 1)
    for bad in ("topk:0", "topk:9", "topk:x", "biggest", "layers:4", "layers:", "layers:a"):
        with pytest.raises(InterpError):
            critical_layers(src, 4, bad)
    with pytest.raises(InterpError, match="selects no layer"):
        critical_layers({0: 0.0, 1: 0.0, 2: 0.0, 3: 0.0}, 4, "topk:1")


def test_allocation_reaches_every_module_with_its_rank(ar):
    from peft import get_peft_model

    from interp.loading import load_model

    alloc = allocate(BEFORE, AFTER, ar.model, GPT_NEOX_LINEARS, r_other=2, r_critical=8, rule="topk:1", count_by="target")
    assert alloc.critical == [3] and len(alloc.ranks) == 16
    assert {n: r for n, r in alloc.ranks.items() if r == 8} == {f"gpt_neox.layers.3.{m}": 8 for m in
                                                              ("attention.query_key_value", "attention.dense",
                                                               "mlp.dense_h_to_4h", "mlp.dense_4h_to_h")}
    assert all(alloc.alphas[n] == 2 * r for n, r in alloc.ranks.items())
    cfg = FinetuneConfig(method="lora", lora=LoRAOptions(r=2, rank_pattern=alloc.ranks, alpha_pattern=alloc.alphas))
    peft = get_peft_model(load_model("pythia-mini", bridge=False).model, peft_config(cfg, ar.model))
    check_ranks(peft, alloc.ranks)
    sizes = layer_sizes(ar.model, GPT_NEOX_LINEARS)
    trainable = sum(p.numel() for p in peft.parameters() if p.requires_grad)
    assert trainable == lora_parameters(sizes, lambda l: 8 if l == 3 else 2)
    assert sizes == {l: 128 * (4 + 2 + 5 + 5) for l in range(4)}  # qkv 128->384, dense, 128->512, 512->128
    with pytest.raises(InterpError, match="not applied"):
        check_ranks(peft, {**alloc.ranks, "gpt_neox.layers.0.attention.dense": 5})


def test_match_params_within_one_percent(ar):
    sizes = layer_sizes(ar.model, GPT_NEOX_LINEARS)
    for r_uniform, critical in ((8, [0]), (16, [1, 2]), (4, [3])):
        r_o, r_c = match_params(sizes, critical, r_uniform, ratio=4)
        uniform = lora_parameters(sizes, lambda l: r_uniform)
        ours = lora_parameters(sizes, lambda l: r_c if l in critical else r_o)
        assert abs(ours - uniform) <= 0.01 * uniform and r_c > r_o
