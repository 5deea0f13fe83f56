"""SAE evaluation sized to the training run (`--eval-tokens`, default 1/16 of the training tokens within
[4,096, 65,536]), and checkpoints saved without the LM head a metric reads (`LoadedModel.head_loaded`):
SAE training and reconstruction metrics still work, CE/KL are skipped (null), `interp eval` and circuits
refuse in one line. Tiny BERT and GPT-2 models are built here with the zoo tokenizer."""

import json

import pytest
import torch
from safetensors import safe_open

from interp.errors import InterpError
from interp.loading import load_model
from saes import SAETrainConfig
from saes.feature_store import FeatureStore
from saes.run_eval import evaluate_run

CE_KEYS = ("ce_clean", "ce_spliced", "delta_ce", "kl")
EVAL_KEYS = ("explained_variance", "mse", "l0", "dead_fraction", *CE_KEYS)
SKIP_LINE = "CE, ΔCE and KL skipped"
# 2 steps; 512-token model batches and a 2-batch buffer keep the stream and the evaluation to seconds
SMALL = dict(tokens=2048, batch_size=1024, context_size=32, model_batch=16, buffer_batches=2)


@pytest.fixture(scope="module")
def models(tmp_path_factory, tok):
    """{name: directory} of tiny checkpoints, each saved with the zoo tokenizer beside it."""
    from transformers import BertConfig, BertForMaskedLM, BertModel, GPT2Config, GPT2LMHeadModel

    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    bert = BertConfig(vocab_size=len(tok), hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                      intermediate_size=128, max_position_embeddings=128)
    gpt2 = GPT2Config(vocab_size=len(tok), n_embd=64, n_layer=2, n_head=2, n_positions=128,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    built = {"bert_bare": BertModel(bert), "bert_mlm": BertForMaskedLM(bert), "gpt2": GPT2LMHeadModel(gpt2),
             # pythia-mini's body alone: its untied unembedding (embed_out) is not saved
             "neox_bare": load_model("pythia-mini", bridge=False).model.gpt_neox}
    out = {}
    for name, model in built.items():
        out[name] = root / name
        model.save_pretrained(out[name])
        tok.save_pretrained(out[name])
    return out


def metrics_of(run):
    return next(iter(json.loads((run / "metrics.json").read_text()).values()))


def test_eval_budget_is_a_fraction_of_training_with_a_floor_and_a_cap():
    assert SAETrainConfig(tokens=61_440).eval_budget() == 4_096  # a short run: one 64 x 64 batch
    assert SAETrainConfig(tokens=500_000).eval_budget() == 31_250
    assert SAETrainConfig().eval_budget() == 65_536  # the default 2M-token run keeps docs/results/sae.md's count
    assert SAETrainConfig(tokens=50_000_000).eval_budget() == 65_536
    assert SAETrainConfig(tokens=61_440, eval_tokens=10_000).eval_budget() == 10_000
    cfg = SAETrainConfig(tokens=500_000)
    assert cfg.feature_budget() == 31_250 and SAETrainConfig(feature_tokens=512).feature_budget() == 512
    # the run's config.json records the counts, so eval-sae repeats them
    assert (cfg.to_dict()["eval_tokens"], cfg.to_dict()["feature_tokens"]) == (31_250, 31_250)
    assert SAETrainConfig.from_dict(cfg.to_dict()).eval_budget() == 31_250
    with pytest.raises(InterpError, match="eval-tokens must be at least 1"):
        SAETrainConfig(eval_tokens=0).validate()


def test_resume_keeps_the_count_an_older_run_started_with(tmp_path):
    """A run started when the default was a fixed 65,536 resumes without --eval-tokens and keeps 65,536; an
    explicit other count is still a config difference."""
    from saes.train import _check_same_config

    (tmp_path / "config.json").write_text(json.dumps({**SAETrainConfig(tokens=61_440).to_dict(),
                                                      "eval_tokens": 65_536, "feature_tokens": 65_536}))
    cfg = SAETrainConfig(tokens=61_440)
    _check_same_config(tmp_path, cfg)
    assert cfg.eval_budget() == cfg.feature_budget() == 65_536
    with pytest.raises(InterpError, match="differs in eval_tokens"):
        _check_same_config(tmp_path, SAETrainConfig(tokens=61_440, eval_tokens=4096))


def test_eval_tokens_reach_every_metric_and_eval_sae_repeats_them(cli, tmp_path):
    from saes import train_sae

    code, _, err = cli("train-sae", "--eval-tokens", 0, "--out", tmp_path / "refused")  # the option reaches the config
    assert code == 2 and err.strip().splitlines() == ["error: --eval-tokens must be at least 1 (got 0)"]
    run = tmp_path / "run"
    train_sae(SAETrainConfig(out=str(run), eval_tokens=2048, **SMALL), show_progress=False)
    m = metrics_of(run)
    assert m["eval_tokens"] == 2048
    assert json.loads((run / "config.json").read_text())["eval_tokens"] == 2048
    assert FeatureStore(run / "saes" / "blocks.2.hook_resid_post-k32").summary["tokens"] == 2048
    again = next(iter(evaluate_run(run).values()))  # eval-sae's default: the count training used
    assert again["eval_tokens"] == 2048 and all(again[k] == m[k] for k in EVAL_KEYS)
    half = next(iter(evaluate_run(run, n_tokens=1024).values()))
    assert half["eval_tokens"] == 1024
    for key in ("explained_variance", "mse", "ce_clean", "ce_spliced", "kl"):
        assert half[key] != m[key], key
    # the 1,024 tokens are the first of the 2,048: fewer latents can have fired on them
    assert half["dead_fraction"] >= m["dead_fraction"]


def test_head_loaded_only_when_the_checkpoint_has_the_head(models, ar, dlm):
    assert load_model(str(models["bert_bare"]), bridge=False).head_loaded is False
    assert load_model(str(models["neox_bare"]), bridge=False).head_loaded is False
    assert load_model(str(models["bert_mlm"]), bridge=False).head_loaded is True
    # GPT-2's head is tied to the token embeddings and not saved: it still counts as loaded
    with safe_open(str(models["gpt2"] / "model.safetensors"), "pt") as f:
        assert not any(k.startswith("lm_head") for k in f.keys())
    gpt2 = load_model(str(models["gpt2"]), bridge=False)
    assert gpt2.head_loaded is True
    assert gpt2.model.lm_head.weight.data_ptr() == gpt2.model.transformer.wte.weight.data_ptr()
    assert ar.head_loaded is True and dlm.head_loaded is True


def test_sae_on_a_bare_encoder_trains_and_skips_ce_in_one_line(cli, models, tmp_path):
    from saes import train_sae

    runs = {name: tmp_path / name for name in ("bert_bare", "bert_mlm")}
    code, out, err = cli("train-sae", "--model", models["bert_bare"], "--tokens", 1024, "--batch-size", 1024,
                         "--context-size", 32, "--out", runs["bert_bare"])
    assert code == 0, err
    assert sum(SKIP_LINE in line for line in out.splitlines()) == 1
    train_sae(SAETrainConfig(model=str(models["bert_mlm"]), out=str(runs["bert_mlm"]), **SMALL), show_progress=False)
    bare, mlm = metrics_of(runs["bert_bare"]), metrics_of(runs["bert_mlm"])
    assert bare["eval_tokens"] == 4096  # the default budget's floor: 1/16 of 1,024 is less
    assert all(bare[k] is None for k in CE_KEYS) and "no trained LM head" in bare["ce_skipped"]
    assert 0 < bare["explained_variance"] <= 1 and bare["l0"] == 32
    assert all(isinstance(mlm[k], float) for k in CE_KEYS) and "ce_skipped" not in mlm
    # the decoder directions' logit effects go through the head: left out when it is random
    name = "blocks.1.hook_resid_post-k32"
    for run, has_logits in ((runs["bert_bare"], False), (runs["bert_mlm"], True)):
        store = FeatureStore(run / "saes" / name)
        assert ("logits" in store.latent(store.alive.index(True))) is has_logits
    code, out, err = cli("eval-sae", runs["bert_bare"], "--tokens", 5000)
    assert code == 0, err
    assert sum(SKIP_LINE in line for line in out.splitlines()) == 1
    again = metrics_of(runs["bert_bare"])
    assert again["ce_clean"] is None and again["eval_tokens"] == 3 * 64 * 32  # whole batches of 64 x 32 tokens


def test_headless_reconstruction_metrics_equal_the_full_models(models, tmp_path):
    """The same body with and without its head: the SAE's reconstruction metrics agree (the headless
    evaluation stops after the hooked block); CE appears once the head is there, and the skip note goes."""
    from saes import train_sae

    run = tmp_path / "run"
    headless = next(iter(train_sae(SAETrainConfig(model=str(models["neox_bare"]), out=str(run), **SMALL),
                                   show_progress=False).metrics.values()))
    assert headless["ce_clean"] is None
    full = next(iter(evaluate_run(run, model="pythia-mini").values()))
    for key in ("explained_variance", "mse", "l0", "dead_fraction"):
        assert full[key] == pytest.approx(headless[key], rel=1e-5), key
    assert full["delta_ce"] > 0 and "ce_skipped" not in metrics_of(run)


def test_interp_eval_and_circuits_refuse_a_headless_model(cli, models, tmp_path):
    code, _, err = cli("eval", "--model", models["neox_bare"], "--task", "add_sub", "--n", 10)
    assert code == 2
    assert err.strip().splitlines()[-1].startswith("error: exact-match accuracy needs the model's LM head")
    out = tmp_path / "circuit"
    code, _, err = cli("circuits", "discover", "--model", models["neox_bare"], "--task", "add_sub", "--out", out)
    assert code == 2 and "error: circuit discovery" in err.strip().splitlines()[-1]
    assert "needs the model's LM head" in err and not out.exists()
