"""Every model family of interp/families.py on a tiny random model (tests/tiny_families.py): loading with its
TransformerLens hooks, `interp eval`, `interp train-sae`, circuit discovery (the graph's q/k/v inputs under
grouped-query attention, EAP against the direct gradient), LoRA's target modules, and the per-family pieces of
unlearning. Parametrised by family, so a failure names it. Random models score ~0: these tests check that every
step runs and computes what it should on each layout, not that anything is learnt."""

import json
import re
from functools import cache

import pytest
import torch
from typer.testing import CliRunner

from tests.attribution_reference import clean_and_corrupted_runs, direct_scores
from tiny_families import D_MODEL, N_HEADS, SPECS, build

NAMES = list(SPECS)
EDGE_NAMES = [n for n in NAMES if n != "bert"]  # TransformerBridge splits no BERT heads (see below)
GQA_NAMES = [n for n in NAMES if SPECS[n].kv_heads != N_HEADS]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Models this small run fastest on one thread: a second only adds synchronisation, which costs ~20x on a
    loaded machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("families")
    return {n: str(build(n, root / n)) for n in NAMES}


@cache
def _edge_model(path: str):
    from interp.loading import load_model

    return load_model(path, hooks_for_edges=True)


@pytest.fixture(scope="session")
def cli():
    from interp.cli import app, register_all

    register_all()
    runner = CliRunner()
    return lambda *args: runner.invoke(app, [str(a) for a in args])


def prompt_ids(tok):
    return tok(["Calculate the result : 41 + 29 = 70"], return_tensors="pt")["input_ids"]


def hf_logits(path, ids):
    """The plain HF model's logits (a bridge takes over its model's modules, so this loads a copy without one)."""
    from interp.loading import load_model

    with torch.no_grad():
        return load_model(path, bridge=False).model(input_ids=ids).logits


# loading and hooks


@pytest.mark.parametrize("name", NAMES)
def test_adapter_and_bridge_hooks(tiny, name):
    from interp.families import family_of, heads, layer_list, parallel_residual
    from interp.loading import load_model

    spec, m = SPECS[name], load_model(tiny[name])
    assert family_of(m.model).name == spec.family and m.is_diffusion == spec.masked
    assert heads(m.model.config) == (N_HEADS, spec.kv_heads)
    assert parallel_residual(m.model.config) == spec.parallel
    assert len(layer_list(m.model)) == 2
    ids = prompt_ids(m.tokenizer)
    logits, cache_ = m.bridge.run_with_cache(ids)
    torch.testing.assert_close(logits, hf_logits(tiny[name], ids))  # the bridge computes the HF model
    for l in range(2):
        for hook in ("hook_resid_pre", "hook_resid_post", "hook_attn_out", "hook_mlp_out"):
            assert cache_[f"blocks.{l}.{hook}"].shape == (1, ids.shape[1], D_MODEL), hook


@pytest.mark.parametrize("name", EDGE_NAMES)
def test_edge_hooks_have_one_copy_per_query_or_key_value_head(tiny, name):
    m = _edge_model(tiny[name])
    ids = prompt_ids(m.tokenizer)
    logits, cache_ = m.bridge.run_with_cache(ids)
    torch.testing.assert_close(logits, hf_logits(tiny[name], ids))  # the split hooks change nothing
    T, kv = ids.shape[1], SPECS[name].kv_heads
    for l in range(2):
        assert cache_[f"blocks.{l}.attn.hook_result"].shape == (1, T, N_HEADS, D_MODEL)
        assert cache_[f"blocks.{l}.hook_q_input"].shape == (1, T, N_HEADS, D_MODEL)
        for x in "kv":
            assert cache_[f"blocks.{l}.hook_{x}_input"].shape == (1, T, kv, D_MODEL)
        assert cache_[f"blocks.{l}.hook_mlp_in"].shape == (1, T, D_MODEL)


def test_bert_edge_hooks_are_refused_in_one_line(tiny, cli, tmp_path):
    """TransformerLens 3.9 forks per-head inputs and results only in its joint-QKV and rotary attention bridges;
    BERT's plain AttentionBridge has neither, so circuits cannot run on BERT through the Bridge."""
    from interp.errors import InterpError
    from interp.loading import load_model

    with pytest.raises(InterpError, match="no per-head attention hooks for bert") as e:
        load_model(tiny["bert"], hooks_for_edges=True)
    assert "\n" not in str(e.value)
    r = cli("circuits", "discover", "--model", tiny["bert"], "--attribution", "eap", "--n", 8, "--out", tmp_path / "c")
    assert isinstance(r.exception, InterpError) and not (tmp_path / "c").exists()


def test_multimodal_gemma3_blocks_are_the_language_models():
    """Gemma3ForConditionalGeneration keeps its language model's blocks under `model.language_model`, beside a
    vision tower whose encoder also has `layers`."""
    import transformers

    from interp.families import block_prefix, heads, layer_list

    text = dict(vocab_size=64, num_hidden_layers=2, hidden_size=D_MODEL, num_attention_heads=N_HEADS,
                num_key_value_heads=2, head_dim=8, intermediate_size=64)
    vision = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=28,
                  patch_size=14)
    config = transformers.Gemma3Config(text_config=text, vision_config=vision, mm_tokens_per_image=4,
                                       image_token_index=5, boi_token_index=6, eoi_token_index=7)
    model = transformers.Gemma3ForConditionalGeneration(config)
    assert layer_list(model) is model.model.language_model.layers and heads(model.config) == (N_HEADS, 2)
    assert block_prefix(model, 1) + "mlp.down_proj.weight" in dict(model.named_parameters())
    from peft import get_peft_model

    from interp.finetune import FinetuneConfig, peft_config

    adapted = {n.rsplit(".lora_A", 1)[0] for n, _ in get_peft_model(model, peft_config(FinetuneConfig(method="lora"),
                                                                                        model)).named_parameters()
               if ".lora_A" in n}
    assert adapted and all(".language_model.layers." in n for n in adapted)  # never the vision tower's q_proj
    assert len(adapted) == 2 * 7  # every projection of both blocks


def test_masked_family_loads_as_a_diffusion_model(tmp_path):
    from interp.loading import load_model

    m = load_model(str(build("bert", tmp_path / "bert", is_causal=None)), bridge=False)  # a config as BERT's are
    assert m.kind == "diffusion" and type(m.model).__name__ == "BertForMaskedLM"


# eval and SAEs


@pytest.mark.parametrize("name", NAMES)
def test_eval_command(tiny, cli, name):
    r = cli("eval", "--model", tiny[name], "--task", "add_sub", "--n", 16)
    assert r.exit_code == 0, r.output
    acc = re.search(r"add_sub\s*│\s*test\s*│\s*16\s*│\s*([\d.]+)", r.output)
    assert acc and 0 <= float(acc.group(1)) <= 100, r.output


@pytest.mark.parametrize("name", NAMES)
def test_train_sae_command(tiny, cli, name, tmp_path):
    from sae_lens import SAE

    hook, out = "blocks.1.hook_resid_post", tmp_path / "sae"
    r = cli("train-sae", "--model", tiny[name], "--hook", hook, "--k", 4, "--expansion", 4, "--tokens", 2048,
            "--batch-size", 512, "--context-size", 32, "--out", out)
    assert r.exit_code == 0, (r.output, r.exception)
    m = json.loads((out / "metrics.json").read_text())[f"{hook}-k4"]
    assert m["l0"] == 4 and 0 <= m["dead_fraction"] <= 1 and m["explained_variance"] < 1
    assert m["ce_clean"] > 0 and m["kl"] >= 0
    sae = SAE.load_from_disk(str(out / "saes" / f"{hook}-k4"))
    assert (sae.cfg.d_in, sae.cfg.d_sae, sae.cfg.metadata.hook_name) == (D_MODEL, 4 * D_MODEL, hook)


# circuits


def test_grouped_graph_feeds_key_value_heads_to_their_query_groups():
    from circuits.circuit import Circuit, check_same_graph, prune
    from interp.errors import InterpError
    from circuits.graph import Graph
    from circuits.layout import Layout

    g, mha = Graph(2, 4, False, 2), Graph(2, 4, False)
    names = {e.name for e in g.edges}
    assert "input->a0.kv1<k>" in names and "m0->a1.kv0<v>" in names and "input->a0.h0<q>" in names
    assert "input->a0.h0<k>" not in names and not any(e.dst.startswith("a0.kv") and e.qkv == "q" for e in g.edges)
    # per layer, q edges into 4 heads and k, v edges into 2 key/value heads, not 3 x 4
    up = lambda l: 1 + l * 5
    assert len(mha.edges) - len(g.edges) == sum(2 * 2 * up(l) for l in range(2))
    assert g.fed("a1.kv1") == ["a1.h2", "a1.h3"] and g.fed("a1.h3") == ["a1.h3"]
    sites = {s.hook: s.heads for s in Layout(g).dests}
    assert (sites["blocks.1.hook_q_input"], sites["blocks.1.hook_k_input"], sites["blocks.1.hook_v_input"]) == (4, 2, 2)
    # a k edge into group 0 reaches query heads 0 and 1, not 2: pruning keeps a path through h1, none through h2
    keep = lambda *edges: torch.tensor([e.name in edges for e in g.edges])
    assert prune(g, keep("input->a1.kv0<k>", "a1.h1->logits")).sum() == 2
    assert prune(g, keep("input->a1.kv0<k>", "a1.h2->logits")).sum() == 0
    assert Graph.from_dict(g.to_dict()).to_dict() == g.to_dict() and "n_kv_heads" not in mha.to_dict()
    circuit = lambda graph: Circuit.from_scores(graph, torch.rand(len(graph.edges)), top_percent=20)
    assert Circuit.from_dict(circuit(g).to_dict()).graph.n_kv_heads == 2
    with pytest.raises(InterpError, match="different graphs"):
        check_same_graph(circuit(g), circuit(mha))


@pytest.mark.parametrize("name", EDGE_NAMES)
def test_eap_is_the_direct_gradient_and_patching_spans_clean_to_corrupted(tiny, name):
    from circuits.attribution import AttributionConfig, attribute
    from circuits.data import task_batches
    from circuits.graph import Graph
    from circuits.layout import Layout
    from circuits.runs import node_outputs, patched_logits

    m = _edge_model(tiny[name])
    graph = Graph.from_model(m.model)
    assert (graph.n_heads, graph.n_kv_heads, graph.parallel_attn_mlp) == (N_HEADS, SPECS[name].kv_heads,
                                                                         SPECS[name].parallel)
    layout = Layout(graph)
    batch = task_batches(m.tokenizer, "add_sub", n=8, batch_size=8)[0]
    clean, _ = node_outputs(m.bridge, layout, batch.clean)
    corrupted, corrupted_out = node_outputs(m.bridge, layout, batch.corrupted)
    assert (clean - corrupted).abs().max() > 1e-3  # the checks below mean something
    none = patched_logits(m.bridge, layout, batch.clean, corrupted_out, torch.zeros(layout.n_src, layout.n_dst))
    every = patched_logits(m.bridge, layout, batch.clean, corrupted_out, layout.valid.float())
    torch.testing.assert_close(none, clean, atol=1e-5, rtol=0)
    torch.testing.assert_close(every, corrupted, atol=1e-4, rtol=1e-4)
    scores = attribute(m.bridge, layout, [batch], AttributionConfig(method="eap", metric="logit_diff"))
    # the strongest edge into every input hook (each q, k, v, MLP input and the logits) and a random few
    sites = [[i for i in range(len(scores)) if s.start <= layout.dst[i] < s.stop] for s in layout.dests]
    edges = [max(ix, key=lambda i: scores[i].abs()) for ix in sites]
    edges += torch.randperm(len(scores), generator=torch.Generator().manual_seed(0))[:6].tolist()
    direct = direct_scores(m.bridge, layout, batch, clean_and_corrupted_runs(m.bridge, layout, batch), edges)
    assert direct.abs().max() > 1e-4
    torch.testing.assert_close(scores[edges], direct, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("name", GQA_NAMES)
def test_a_key_or_value_edge_changes_exactly_its_groups_query_heads(tiny, name):
    """Patching one edge into a key/value head's input, in the real model, moves the attention results of the
    query heads `Graph.fed` names and of no other head: the grouping the graph and pruning assume."""
    from circuits.data import task_batches
    from circuits.graph import Graph
    from circuits.layout import Layout
    from circuits.runs import node_outputs, patched_logits

    m = _edge_model(tiny[name])
    graph = Graph.from_model(m.model)
    layout = Layout(graph)
    batch = task_batches(m.tokenizer, "add_sub", n=4, batch_size=4)[0]
    _, corrupted_out = node_outputs(m.bridge, layout, batch.corrupted)
    index = {e.name: i for i, e in enumerate(graph.edges)}

    def result(edge=None):
        patch, seen = torch.zeros(layout.n_src, layout.n_dst), []
        if edge:
            patch[layout.src[index[edge]], layout.dst[index[edge]]] = 1.0
        with m.bridge.hooks(fwd_hooks=[("blocks.1.attn.hook_result", lambda x, hook: seen.append(x.detach()))]):
            patched_logits(m.bridge, layout, batch.clean, corrupted_out, patch)
        return seen[0]
    clean = result()
    for kv in graph.head_inputs(1, "k"):
        for x in ("k", "v"):
            # an unfed head's result is bit-identical; a fed one moves (by ~1e-7 in random Gemma 2)
            moved = (result(f"input->{kv}<{x}>") - clean).abs().amax(dim=(0, 1, 3)) > 0
            assert [f"a1.h{h}" for h in range(N_HEADS) if moved[h]] == graph.fed(kv), (kv, x)


@pytest.mark.parametrize("name", EDGE_NAMES)
def test_circuits_discover_command(tiny, cli, name, tmp_path):
    from circuits.circuit import Circuit, prune

    r = cli("circuits", "discover", "--model", tiny[name], "--attribution", "eap", "--n", 8, "--n-eval", 8,
            "--batch-size", 8, "--top-percent", 30, "--no-curve", "--out", tmp_path / "c")
    assert r.exit_code == 0, (r.output, r.exception)
    c = Circuit.load(tmp_path / "c")
    assert c.graph.n_kv_heads == SPECS[name].kv_heads and c.scores.abs().max() > 0
    assert torch.equal(prune(c.graph, c.in_graph), c.in_graph)  # what was read back is a pruned circuit
    assert all(n in c.graph.nodes for n in c.node_names)
    grouped = {e.dst for e in c.graph.edges if e.qkv in ("k", "v")}
    assert grouped == {f"a{l}.{'kv' if name in GQA_NAMES else 'h'}{h}" for l in range(2)
                       for h in range(SPECS[name].kv_heads)}
    assert (tmp_path / "c" / "circuit.html").stat().st_size > 0


# fine-tuning and unlearning


@pytest.mark.parametrize("name", NAMES)
def test_lora_adapts_exactly_the_familys_projections(tiny, name):
    from circuits.allocation import adapted_modules
    from interp.families import peft_targets
    from interp.finetune import FinetuneConfig, finetune
    from interp.loading import load_model

    spec = SPECS[name]
    loaded = load_model(tiny[name], bridge=False)
    expected = {f"{spec.blocks}.{l}.{s}": l for l in range(2) for s in spec.lora}
    assert adapted_modules(loaded.model, peft_targets(loaded.model)) == expected  # what CircuitLoRA gives ranks to
    before = {n: p.detach().clone() for n, p in loaded.model.named_parameters()}
    cfg = FinetuneConfig(model=tiny[name], method="lora", steps=2, batch_size=8, n_train=16, n_eval=4, eval_every=2)
    model = finetune(cfg, loaded).model
    adapted = {n.removeprefix("base_model.model.") for n, mod in model.named_modules() if hasattr(mod, "lora_A")}
    assert adapted == set(expected)
    trained = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trained and all(".lora_A." in n or ".lora_B." in n for n in trained)
    base = {n.removeprefix("base_model.model.").replace(".base_layer", ""): p
            for n, p in model.named_parameters() if "lora_" not in n}
    assert set(base) == set(before) and all(torch.equal(base[n], before[n]) for n in before)


@pytest.mark.parametrize("name", NAMES)
def test_unlearning_blocks_parameters_and_update(tiny, name):
    """What unlearning takes from the family: the block whose output is the residual stream, the MLP output
    parameters, and the subspace-constrained update (test_unlearn_runs_end_to_end runs the whole method on two
    families; on all eight it would cost over a minute)."""
    from transformers.pytorch_utils import Conv1D

    from interp.loading import load_model
    from saes.unlearning import Batches, Context, UnlearnConfig, get_method, loop, with_options
    from saes.unlearning.hooks import capture, param_names, resid
    from saes.unlearning.push import control_vector

    spec, m = SPECS[name], load_model(tiny[name])  # the bridge takes over m.model's modules: a plain copy too
    base, ids = load_model(tiny[name], bridge=False).model, prompt_ids(m.tokenizer)
    _, cache_ = m.bridge.run_with_cache(ids)
    with torch.no_grad(), capture(base, 1) as seen:
        base(input_ids=ids)
        stopped = resid(base, 1, ids)
    torch.testing.assert_close(seen[0], cache_["blocks.1.hook_resid_post"])  # the block's output is resid_post
    assert torch.equal(stopped, seen[0])
    out = f"{spec.blocks}.1.{spec.mlp_out}"
    names = param_names(base, [1], "mlp_out")
    assert names == [n for n, _ in base.named_parameters() if n.startswith(out + ".")] and f"{out}.weight" in names

    g = torch.Generator().manual_seed(0)
    tokens = lambda n: torch.randint(5, len(m.tokenizer), (n, 8), generator=g)
    zeros = torch.zeros(16, dtype=torch.long)  # answer targets: the pushes and the retain term never read them
    data = Batches((tokens(16), zeros), [(tokens(16), zeros)], tokens(8))
    relevant = torch.linalg.qr(torch.randn(D_MODEL, 4, generator=g))[0]
    cfg = UnlearnConfig(steps=3, lr=1e-2, batch_size=8, retain_weight=1.0, push_weight="uniform")
    fit = lambda method, reg: loop.train(get_method(method), Context(
        base, data, names, 1, with_options(cfg, reg_weight=reg), 20.0, control_vector(D_MODEL, 0, None), relevant))
    free, held = fit("rmu", 0.0), fit("sspu", 1000.0)
    start, weight = dict(base.named_parameters()), f"{out}.weight"
    for model in (free, held):
        for n, p in model.named_parameters():
            assert torch.equal(p, start[n]) == (n not in names), n
    conv1d = isinstance(dict(base.named_modules())[out], Conv1D)  # GPT-2 stores a weight as [in, out]

    def outside_share(model):
        delta = dict(model.named_parameters())[weight] - start[weight]
        delta = delta.T if conv1d else delta  # [d_model, d_mlp]: columns are what the update writes
        return ((torch.eye(D_MODEL) - relevant @ relevant.T) @ delta).norm() / delta.norm()
    held_share, free_share = outside_share(held), outside_share(free)
    assert held_share < 0.5 * free_share


@pytest.mark.parametrize("name", ["llama", "gpt2"])  # the layouts furthest from pythia-mini's: GQA + gated, Conv1D
def test_unlearn_runs_end_to_end(tiny, name, tmp_path):
    """A few steps of the whole method (an SAE, feature selection at layer 1, the three trained methods and
    clamping, every evaluation) on a tiny model."""
    from saes import SAETrainConfig, UnlearnConfig, train_sae, unlearn

    spec, sae = SPECS[name], tmp_path / "sae"
    train_sae(SAETrainConfig(model=tiny[name], hooks=["blocks.1.hook_resid_post"], k=[4], expansion=4, tokens=2048,
                             batch_size=512, context_size=32, eval_tokens=512, feature_tokens=512, out=str(sae)),
              show_progress=False)
    cfg = UnlearnConfig(model=tiny[name], sae=str(sae), layer=1, steps=3, n_eval=16, probe_examples=32,
                        relearn_steps=1, relearn_lrs="1e-3", features=4, control_draws=1, out=str(tmp_path / "run"))
    report = unlearn(cfg, show_progress=False)
    bias = ["bias"] if name == "gpt2" else []  # Llama's projections have none
    assert report["layer"] == 1  # the update spans layers 0 and 1, the MLP output projection of each
    assert report["params"] == [f"{spec.blocks}.{l}.{spec.mlp_out}.{p}" for l in range(2) for p in ["weight", *bias]]
    assert set(report["changed_params"]) <= set(report["params"])
    assert set(report["rows"]) == {"original", "sspu", "rmu", "gradient_ascent", "sae_clamping"}
    assert all(0 <= row["forget"] <= 1 for row in report["rows"].values())


def test_remote_code_diffusion_families_from_their_configs():
    """LLaDA and Dream load only with their own code (--trust-remote-code), which is not here: their adapters are
    checked on their config fields (LLaDA's are OLMo-style names)."""
    from types import SimpleNamespace

    from interp.families import family_of, heads, n_layers
    from interp.loading import family_mask_token, masked_family

    llada = SimpleNamespace(model_type="llada", n_heads=32, n_kv_heads=8, n_layers=32, d_model=4096)
    dream = SimpleNamespace(model_type="Dream", num_attention_heads=28, num_key_value_heads=4, num_hidden_layers=28)
    assert heads(llada) == (32, 8) and n_layers(llada) == 32 and heads(dream) == (28, 4)
    assert masked_family(llada) and masked_family(dream)  # both run as diffusion models
    assert family_mask_token(llada) == "<|mdm_mask|>" and family_mask_token(dream) is None
    assert family_of(llada).blocks == "model.transformer.blocks" and family_of(dream).blocks == "model.layers"
