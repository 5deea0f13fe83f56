"""Selection, pruning, the circuit file, and comparison of circuits (no model needed)."""

import json

import pytest
import torch

from circuits.circuit import Circuit, prune, select
from circuits.comparison import compare, edge_change, jaccard, layer_change, robustness
from circuits.graph import Graph
from interp.errors import InterpError

G = Graph(2, 2, True)


def scores_for(named: dict[str, float]) -> torch.Tensor:
    return torch.tensor([named.get(e.name, 0.0) for e in G.edges])


def test_select_rules():
    s = torch.tensor([0.1, -0.5, 0.3, 0.0, 0.2])
    assert select(s, top_n=2).tolist() == [False, True, True, False, False]
    assert select(s, threshold=0.2).tolist() == [False, True, True, False, True]
    assert select(s, top_percent=40).tolist() == [False, True, True, False, False]
    assert select(s, top_percent=1).sum() == 1  # never empty
    for bad in ({}, {"top_n": 2, "threshold": 0.1}, {"top_percent": 0}, {"top_percent": 101}, {"top_n": 0}):
        with pytest.raises(InterpError):
            select(s, **bad)


def test_prune_keeps_only_input_to_logits_paths():
    keep = scores_for({"input->a0.h0<v>": 1, "a0.h0->logits": 1,  # a path
                       "a0.h1->m1": 1,  # a0.h1 has no kept input: dangling
                       "input->m0": 1}) != 0  # m0 reaches nothing
    kept = {e.name for e, k in zip(G.edges, prune(G, keep).tolist()) if k}
    assert kept == {"input->a0.h0<v>", "a0.h0->logits"}


def test_circuit_file_round_trip(tmp_path):
    s = torch.randn(len(G.edges), generator=torch.Generator().manual_seed(0))
    c = Circuit.from_scores(G, s, {"model": "m", "task": "add_sub", "metric": "kl", "method": "eap-ig"}, top_percent=20)
    path = c.save(tmp_path / "c" / "circuit.json")
    d = json.loads(path.read_text())
    assert d["model"] == "m" and d["share_kept"] == pytest.approx(c.share_kept)
    assert set(d["nodes"]) == set(G.nodes) and set(d["edges"]) == {e.name for e in G.edges}
    assert {"in_graph", "score"} <= set(d["nodes"]["a0.h0"]) and {"in_graph", "score"} <= set(d["edges"]["input->m0"])
    back = Circuit.load(path.parent)
    assert torch.equal(back.in_graph, c.in_graph) and torch.allclose(back.scores, c.scores)
    assert back.node_names == c.node_names and back.info["task"] == "add_sub"
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(InterpError):
        Circuit.load(tmp_path / "bad.json")
    with pytest.raises(InterpError):
        Circuit.load(tmp_path / "missing.json")


def test_compare_counts_and_change():
    a_scores = scores_for({"input->a0.h0<v>": 2.0, "a0.h0->logits": 1.0, "input->m1": 0.5, "m1->logits": 0.5})
    b_scores = scores_for({"input->a0.h0<v>": 1.5, "a0.h0->logits": 0.3, "input->a1.h1<q>": -0.8, "a1.h1->logits": 0.9})
    a = Circuit.from_scores(G, a_scores, threshold=0.4)
    b = Circuit.from_scores(G, b_scores, threshold=0.4)  # a0.h0->logits (0.3) drops out, a0.h0 keeps no path
    r = compare(a, b)
    assert r["nodes_added"] == ["a1.h1"] and r["nodes_removed"] == ["a0.h0", "m1"]
    assert set(r["edges_added"]) == {"input->a1.h1<q>", "a1.h1->logits"}
    assert r["edges_flipped"] == 2 + 4
    assert r["node_jaccard"] == pytest.approx(jaccard({"input", "a0.h0", "m1", "logits"}, {"input", "a1.h1", "logits"}))
    assert r["edge_jaccard"] == 0.0
    change = dict(zip([e.name for e in G.edges], edge_change(a, b).tolist()))
    assert change["input->a0.h0<v>"] == pytest.approx(2.0) and change["input->a1.h1<q>"] == pytest.approx(0.8)
    src, dst = layer_change(a, b, "source"), layer_change(a, b, "target")
    # input counts as layer 0 by source; logits as layer n_layers by target
    assert src[0] == pytest.approx(2.0 + 1.0 + 0.5 + 0.8) and src[1] == pytest.approx(0.5 + 0.9)
    assert dst[2] == pytest.approx(1.0 + 0.5 + 0.9) and sum(src.values()) == pytest.approx(sum(dst.values()))
    same = compare(a, a)
    assert same["node_jaccard"] == same["edge_jaccard"] == 1.0 and same["total_change"] == 0


def test_robustness_and_graph_mismatch():
    s = torch.randn(len(G.edges), generator=torch.Generator().manual_seed(1))
    a = Circuit.from_scores(G, s, top_percent=30)
    assert robustness([a, a, a])["edge_jaccard"] == 1.0
    other = Circuit.from_scores(Graph(3, 2, True), torch.ones(len(Graph(3, 2, True).edges)), top_n=3)
    with pytest.raises(InterpError):
        compare(a, other)
    with pytest.raises(InterpError):
        robustness([a])


def test_union_averages_shared_edges_and_cuts_to_size():
    from circuits.circuit import union

    a = Circuit.from_scores(G, scores_for({"input->a0.h0<v>": 2.0, "a0.h0->logits": 1.0}), threshold=0.5)
    b = Circuit.from_scores(G, scores_for({"input->a0.h0<v>": 1.0, "a0.h0->logits": 0.6, "input->m1": 0.9,
                                           "m1->logits": 0.7}), threshold=0.5)
    u = union(a, b)
    s = dict(zip([e.name for e in G.edges], u.scores.tolist()))
    assert s["input->a0.h0<v>"] == pytest.approx(1.5) and s["a0.h0->logits"] == pytest.approx(0.8)
    assert s["m1->logits"] == pytest.approx(0.7)
    assert u.edge_names == a.edge_names | b.edge_names and u.node_names == a.node_names | b.node_names
    cut = union(a, b, n_edges=3)  # 1.5, 0.9, 0.8 kept; input->m1 then has no way on to the logits
    assert cut.edge_names == {"input->a0.h0<v>", "a0.h0->logits"}
