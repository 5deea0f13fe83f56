"""Edge attribution and patching checked against direct computation on the zoo model (and a sequential
GPT-2 block layout): patch none = clean, patch all = corrupted; EAP = gradient x activation difference;
EAP-IG ranks edges like their true one-at-a-time patching effects; faithfulness rises with edges kept."""

import pytest
import torch

from circuits.attribution import AttributionConfig, attribute
from circuits.comparison import spearman
from circuits.data import alternative, kl, logit_diff, task_batches
from circuits.evaluate import evaluate_masks
from circuits.graph import Graph
from circuits.layout import Layout
from circuits.runs import node_outputs, patched_logits
from tests.attribution_reference import direct_scores


@pytest.fixture(scope="module")
def edge_model():
    from interp.loading import load_model

    m = load_model("pythia-mini", hooks_for_edges=True)
    return m, Layout(Graph.from_model(m.model))


@pytest.fixture(scope="module")
def batch(edge_model):
    m, _ = edge_model
    return task_batches(m.tokenizer, "add_sub", n=32, batch_size=32)[0]


@pytest.fixture(scope="module")
def runs(edge_model, batch):
    m, layout = edge_model
    clean_logits, clean_out = node_outputs(m.bridge, layout, batch.clean)
    corrupted_logits, corrupted_out = node_outputs(m.bridge, layout, batch.corrupted)
    return clean_logits, clean_out, corrupted_logits, corrupted_out


def check_patch_extremes(bridge, layout, batch):
    clean_logits, _ = node_outputs(bridge, layout, batch.clean)
    corrupted_logits, corrupted_out = node_outputs(bridge, layout, batch.corrupted)
    none = patched_logits(bridge, layout, batch.clean, corrupted_out, torch.zeros(layout.n_src, layout.n_dst))
    every = patched_logits(bridge, layout, batch.clean, corrupted_out, layout.valid.float())
    assert (clean_logits - corrupted_logits).abs().max() > 0.1  # the check below means something
    torch.testing.assert_close(none, clean_logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(every, corrupted_logits, atol=1e-4, rtol=0)


def test_patching_no_edge_is_clean_and_every_edge_is_corrupted(edge_model, batch):
    m, layout = edge_model
    check_patch_extremes(m.bridge, layout, batch)


@pytest.mark.parametrize("metric", ["logit_diff", "kl"])
def test_eap_is_gradient_times_activation_difference(edge_model, batch, runs, metric):
    m, layout = edge_model
    scores = attribute(m.bridge, layout, [batch], AttributionConfig(method="eap", metric=metric))
    sample = torch.randperm(len(scores), generator=torch.Generator().manual_seed(0))[:25].tolist()
    sample += scores.abs().argsort(descending=True)[:5].tolist()  # the strongest edges too
    direct = direct_scores(m.bridge, layout, batch, runs, sample, metric, at_corrupted=metric == "kl")
    assert direct.abs().max() > 1e-3
    torch.testing.assert_close(scores[sample], direct, atol=1e-5, rtol=1e-4)


def test_eap_is_the_derivative_of_edge_patching(edge_model, batch, runs):
    """The same scores from the patching side: d metric / d (share of the edge patched) at 0."""
    m, layout = edge_model
    _, _, corrupted_logits, corrupted_out = runs
    scores = attribute(m.bridge, layout, [batch], AttributionConfig(method="eap", metric="logit_diff"))
    share = torch.zeros(layout.n_src, layout.n_dst, requires_grad=True)
    logits = batch.answer(patched_logits(m.bridge, layout, batch.clean, corrupted_out, share))
    value = logit_diff(logits, batch.labels, alternative(batch.answer(corrupted_logits), batch.labels)).sum()
    derivative = layout.from_matrix(torch.autograd.grad(value, share)[0]) / len(batch)
    torch.testing.assert_close(scores, derivative, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("method,chunk", [("eap-ig", 3), ("eap", 1)])
def test_position_chunks_give_the_whole_context_scores(edge_model, batch, runs, method, chunk):
    """Holding source outputs a few positions at a time (for long contexts) changes the order of the sums only."""
    m, layout = edge_model
    assert batch.clean.shape[1] > chunk * 2  # several chunks, the last one short
    whole = attribute(m.bridge, layout, [batch], AttributionConfig(method=method, metric="kl", ig_steps=2))
    chunked = attribute(m.bridge, layout, [batch], AttributionConfig(method=method, metric="kl", ig_steps=2,
                                                                     position_chunk=chunk))
    assert whole.abs().max() > 1e-3
    torch.testing.assert_close(chunked, whole, atol=1e-6, rtol=1e-4)
    _, part = node_outputs(m.bridge, layout, batch.clean, slice(2, 4))
    torch.testing.assert_close(part, runs[1][:, 2:4])


def test_eap_ig_ranks_edges_like_their_true_patching_effect(tuned_edge_model):
    """Spearman >= 0.8 between |score| and the KL effect of patching each of 160 sampled edges alone, on the
    fine-tuned model, with the paper's metric (KL is never negative, while a score's sign says which way the
    edge pushes along the IG path). Other models and metrics: tests/benchmarks/bench_attribution_fidelity.py."""
    m, layout, accuracy = tuned_edge_model
    assert accuracy > 0.5
    batch = task_batches(m.tokenizer, "add_sub", n=32, batch_size=32)[0]
    clean_logits, _ = node_outputs(m.bridge, layout, batch.clean)
    corrupted_logits, corrupted_out = node_outputs(m.bridge, layout, batch.corrupted)
    scores = attribute(m.bridge, layout, [batch], AttributionConfig(method="eap-ig", metric="kl", ig_steps=5))
    sample = torch.randperm(len(scores), generator=torch.Generator().manual_seed(1))[:160].tolist()
    effects = []
    with torch.no_grad():
        for i in sample:
            patch = torch.zeros(layout.n_src, layout.n_dst)
            patch[layout.src[i], layout.dst[i]] = 1.0
            logits = batch.answer(patched_logits(m.bridge, layout, batch.clean, corrupted_out, patch))
            effects.append(kl(logits, batch.answer(clean_logits)).mean().item())
    rho = spearman(scores[sample].abs(), torch.tensor(effects))
    assert rho >= 0.8, rho


def test_faithfulness_rises_with_edges_kept(tuned_edge_model):
    from circuits.circuit import Circuit

    m, layout, _ = tuned_edge_model
    batches = task_batches(m.tokenizer, "add_sub", n=64, batch_size=32)
    scores = attribute(m.bridge, layout, batches, AttributionConfig())
    shares = [1, 4, 15, 40, 100]
    masks = [Circuit.from_scores(layout.graph, scores, top_percent=p).in_graph for p in shares]
    masks.append(torch.zeros(len(scores), dtype=torch.bool))
    results = evaluate_masks(m.bridge, layout, task_batches(m.tokenizer, "add_sub", "test", 64, batch_size=32), masks)
    faith = [r["faithfulness"] for r in results[:-1]]
    assert faith == sorted(faith), faith
    assert faith[-1] == pytest.approx(100, abs=1e-3)  # the whole model is its own circuit
    assert results[-1]["faithfulness"] == pytest.approx(0, abs=1e-3)  # an empty circuit is the corrupted model
    assert faith[2] > 50


def test_sequential_blocks(tmp_path):
    """GPT-2 layout (the MLP reads its own layer's heads): a randomly initialised 2-layer GPT-2."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from interp.loading import load_model
    from interp.tokenizer import load_tokenizer

    tok = load_tokenizer()
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(n_layer=2, n_head=2, n_embd=32, vocab_size=len(tok), n_positions=64)).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    m = load_model(str(tmp_path), hooks_for_edges=True)
    graph = Graph.from_model(m.model)
    assert not graph.parallel_attn_mlp and "a1.h0->m1" in {e.name for e in graph.edges}
    layout = Layout(graph)
    batch = task_batches(m.tokenizer, "add_sub", n=8, batch_size=8)[0]
    check_patch_extremes(m.bridge, layout, batch)
    runs_ = (*node_outputs(m.bridge, layout, batch.clean), *node_outputs(m.bridge, layout, batch.corrupted))
    scores = attribute(m.bridge, layout, [batch], AttributionConfig(method="eap", metric="logit_diff"))
    edges = list(range(len(scores)))
    torch.testing.assert_close(scores, direct_scores(m.bridge, layout, batch, runs_, edges, "logit_diff", False),
                               atol=1e-6, rtol=1e-4)


def test_diffusion_model_answers_at_an_appended_mask():
    """mdlm-mini: prompts get a `<mask>` where the answer goes; patching and EAP hold there too."""
    from interp.loading import load_model

    m = load_model("mdlm-mini", hooks_for_edges=True)
    layout = Layout(Graph.from_model(m.model))
    batch = task_batches(m.tokenizer, "add_sub", n=8, batch_size=8, diffusion=True)[0]
    assert (batch.clean[:, -1] == m.tokenizer.mask_token_id).all()
    check_patch_extremes(m.bridge, layout, batch)
    runs_ = (*node_outputs(m.bridge, layout, batch.clean), *node_outputs(m.bridge, layout, batch.corrupted))
    scores = attribute(m.bridge, layout, [batch], AttributionConfig(method="eap", metric="kl"))
    sample = scores.abs().argsort(descending=True)[:10].tolist()
    torch.testing.assert_close(scores[sample], direct_scores(m.bridge, layout, batch, runs_, sample, "kl", True),
                               atol=1e-5, rtol=1e-4)
