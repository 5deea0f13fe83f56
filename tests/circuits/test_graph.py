"""The circuit graph: node and edge counts by formula, parallel vs sequential blocks, serialisation."""

import pytest

from circuits.graph import Graph


def expected_edges(L, H, parallel):
    up = lambda l: 1 + l * (H + 1)  # input, then every head and MLP of earlier layers
    heads = sum(3 * H * up(l) for l in range(L))
    mlps = sum(up(l) + (0 if parallel else H) for l in range(L))
    return heads + mlps + up(L)


@pytest.mark.parametrize("parallel", [True, False])
@pytest.mark.parametrize("L,H", [(4, 4), (2, 3), (24, 16)])
def test_counts(L, H, parallel):
    g = Graph(L, H, parallel)
    assert len(g.nodes) == 2 + L * (H + 1)
    assert len(g.edges) == expected_edges(L, H, parallel)
    assert len({e.name for e in g.edges}) == len(g.edges)
    assert sum(g.edges_by_layer("source").values()) == sum(g.edges_by_layer("target").values()) == len(g.edges)


def test_parallel_residual_mlp_does_not_read_its_own_layers_heads():
    par, seq = Graph(4, 4, True), Graph(4, 4, False)
    names_par, names_seq = {e.name for e in par.edges}, {e.name for e in seq.edges}
    assert "a1.h2->m1" not in names_par and "a1.h2->m1" in names_seq
    assert "a0.h2->m1" in names_par and "m0->a1.h0<k>" in names_par
    assert "a1.h0->a1.h1<q>" not in names_par | names_seq  # heads of one layer never feed each other
    assert "input->logits" in names_par and "m3->logits" in names_par


def test_zoo_model_graph_and_round_trip(tmp_path, ar):
    g = Graph.from_model(ar.model)
    assert (g.n_layers, g.n_heads, g.parallel_attn_mlp) == (4, 4, True)  # GPT-NeoX: parallel residual
    assert g.summary()["edges"] == expected_edges(4, 4, True) == 463
    g.save(tmp_path / "g.json")
    assert Graph.load(tmp_path / "g.json").to_dict() == g.to_dict()
