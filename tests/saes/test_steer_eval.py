"""`interp dlm steer-eval`: generation against `transformers` and the plain sampler, the fluency scores against
cross-entropy computed here, and a short run of the whole comparison."""

import json

import pytest
import torch
import torch.nn.functional as F

from saes.steer_eval import SteerEvalConfig, concept_tokens, generate, log_perplexity, steer_eval

PROMPTS = ["Calculate the result of the following arithmetic expression and provide only the final answer. 12 + 7 =",
           "Calculate the result of the following arithmetic expression and provide only the final answer. 30 - 8 ="]


@pytest.fixture(scope="module")
def models():
    from interp.loading import load_model

    return load_model("pythia-mini"), load_model("mdlm-mini")


def test_concepts_on_the_zoo_tokenizer(tok):
    c = concept_tokens(tok)
    ids = lambda w: tok.convert_tokens_to_ids(w)
    assert c["digits 0-9"][ids("7")] and not c["digits 0-9"][ids("12")]
    assert c["numbers 10-99"][ids("12")] and c["numbers 100-999"][ids("999")]
    assert c["operators"][ids("plus")] and c["operators"][ids("+")] and not c["operators"][ids("is")]
    assert sum(int(v.sum()) for v in c.values()) == 1000 + 7  # every number 0..999 once, and the operators


def test_unsteered_generation_is_the_plain_one(models, tok):
    from interp.diffusion import sample

    ar, dlm = models
    ids = torch.tensor(tok(PROMPTS)["input_ids"])
    got = generate(ar, "blocks.2.hook_resid_post", None, ids, 0, 0.0, 5, "all")
    want = ar.model.generate(ids, max_new_tokens=5, do_sample=False, pad_token_id=0)[:, ids.shape[1]:]
    for g, w in zip(got.tolist(), want.tolist()):  # generate stops a row at <eos> (padding after it); ours goes on
        n = w.index(tok.eos_token_id) + 1 if tok.eos_token_id in w else len(w)
        assert g[:n] == w[:n]
    got = generate(dlm, "blocks.2.hook_resid_post", None, ids, 0, 0.0, 5, "all")
    assert torch.equal(got, sample(dlm.model, ids, tok.mask_token_id, 5, 5)[:, ids.shape[1]:])


def test_log_perplexity_by_hand(models, tok):
    ar, dlm = models
    ids = torch.tensor(tok(PROMPTS)["input_ids"])
    gen = torch.tensor([tok.convert_tokens_to_ids(["19", ".", "<eos>"]), tok.convert_tokens_to_ids(["22", ".", "<eos>"])])
    full = torch.cat([ids, gen], 1)
    p = ids.shape[1]
    with torch.no_grad():
        logits = ar.model(input_ids=full).logits
        want = torch.stack([F.cross_entropy(logits[:, p - 1 + i], gen[:, i], reduction="none") for i in range(3)]).mean(0)
        assert log_perplexity(ar, ids, gen) == pytest.approx(want.tolist(), abs=1e-5)
        nll = []
        for i in range(3):
            x = full.clone()
            x[:, p + i] = tok.mask_token_id
            nll.append(F.cross_entropy(dlm.model(input_ids=x).logits[:, p + i], gen[:, i], reduction="none"))
        assert log_perplexity(dlm, ids, gen) == pytest.approx(torch.stack(nll).mean(0).tolist(), abs=1e-5)


def test_short_comparison_writes_its_curves(tmp_path):
    cfg = SteerEvalConfig(sae_tokens=4096, per_concept=1, prompts=2, n_tokens=4, ar_strengths=[0.0, 32.0],
                          diffusion_amps=[0.0, 64.0], out=str(tmp_path / "s"))
    result = steer_eval(cfg, show_progress=False)
    for method in ("diffusion", "autoregressive"):
        m = result["methods"][method]
        assert len(m["latents"]) == 4 and len(m["rows"]) == 8 and [c["strength"] for c in m["curve"]][0] == 0
        assert m["curve"][0]["concept_gain"] == m["curve"][0]["fluency_loss"] == 0
        assert set(m["matched"]) == {"0.5", "1.0", "2.0", "4.0", "8.0"}
    saved = json.loads((tmp_path / "s" / "steering.json").read_text())
    assert saved["verdict"] == result["verdict"] and "nats" in result["verdict"]
    assert (tmp_path / "s" / "steering.html").stat().st_size > 1000


def test_steer_eval_refuses_bad_input(cli, tmp_path):
    from tests.conftest import one_line_error

    one_line_error(cli("dlm", "steer-eval", "--ar-strength", "4,8", "--out", tmp_path), "must start at 0")
    one_line_error(cli("dlm", "steer-eval", "--ar-model", "mdlm-mini", "--out", tmp_path), "autoregressive one")
