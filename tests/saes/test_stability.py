"""`interp dlm stability`: latent profiles against a brute-force reference, their comparison by hand, and a short
run on both zoo models."""

import json

import numpy as np
import pytest
import torch

from saes.stability import StabilityConfig, compare_profiles, latent_profile, stability


def test_compare_profiles_by_hand():
    base = {"frequency": [0.5, 0.2, 0.0, 0.1], "token": [7, 3, -1, 5], "family": [0, 1, -1, 2]}
    now = {"frequency": [0.4, 0.0, 0.0, 0.3], "token": [7, -1, -1, 6], "family": [0, -1, -1, 2]}
    got = compare_profiles(base, now)
    assert got["frequency_correlation"] == pytest.approx(np.corrcoef([0.5, 0.2, 0.1], [0.4, 0.0, 0.3])[0, 1])
    assert got["token_kept"] == pytest.approx(1 / 3) and got["family_kept"] == pytest.approx(2 / 3)
    assert got["live_latents"] == 3
    same = compare_profiles(base, base)
    assert same["frequency_correlation"] == pytest.approx(1) and same["token_kept"] == same["family_kept"] == 1


def test_latent_profile_matches_brute_force(tok, tmp_path):
    from interp.loading import load_model
    from saes import SAETrainConfig, train_sae

    hook = "blocks.1.hook_resid_post"
    run = train_sae(SAETrainConfig(model="pythia-mini", hooks=[hook], k=[8], tokens=8192, batch_size=1024,
                                   eval_tokens=2048, feature_tokens=1024, out=str(tmp_path / "sae")),
                    show_progress=False)
    sae = run.saes[f"{hook}-k8"]
    loaded = load_model("pythia-mini")
    texts = [("12 plus 7 is 19 .", 0), ("the sum of 3 and 4 is 7 .", 1), ("LCM ( 4, 6 ) = 12", 2),
             ("30 minus 8 is 22", 0), ("5 times 6 is 30", 1)]
    got = latent_profile(loaded, hook, sae, texts, top=3)
    acts, toks, fams = [], [], []
    with torch.no_grad():
        for text, fam in texts:
            ids = tok(text, return_tensors="pt")["input_ids"]
            _, cache = loaded.bridge.run_with_cache(ids, names_filter=[hook])
            acts.append(sae.encode(cache[hook][0]))
            toks += ids[0].tolist()
            fams += [fam] * ids.shape[1]
    a = torch.cat(acts).numpy()
    assert got["frequency"] == pytest.approx((a > 0).mean(0).tolist())
    checked = 0
    for j in range(a.shape[1]):
        strongest = np.sort(a[:, j])[::-1][:4]
        if len(set(strongest[strongest > 0].tolist())) < (strongest > 0).sum():
            continue  # equal activations (the same <bos> opens every text) have no order to check
        if (a[:, j] > 0).any():
            checked += 1
            order = np.argsort(-a[:, j], kind="stable")[:3]
            order = [i for i in order if a[i, j] > 0]
            assert got["token"][j] == toks[order[0]]
            ranked = [fams[i] for i in order]
            most = max(ranked.count(f) for f in set(ranked))
            assert got["family"][j] == next(f for f in ranked if ranked.count(f) == most)  # ties: the stronger
        else:
            assert got["token"][j] == got["family"][j] == -1
    assert checked > 50


def test_short_run_on_both_models(tmp_path):
    cfg = StabilityConfig(steps=4, checkpoint_every=2, sae_tokens=4096, eval_tokens=1024, prompts=2, top=3, n_eval=16,
                          out=str(tmp_path / "s"))
    result = stability(cfg, show_progress=False)
    assert list(result["models"]) == ["mdlm-mini", "pythia-mini"]
    for model, rows in result["models"].items():
        assert [r["step"] for r in rows] == [0, 2, 4]
        base = rows[0]
        assert base["frequency_correlation"] == pytest.approx(1) and base["token_kept"] == base["family_kept"] == 1
        assert all(0 <= r["explained_variance"] <= 1 and r["l0"] > 0 and r["live_latents"] > 0 for r in rows)
        assert all(r["accuracy"] is not None for r in rows)
        assert (tmp_path / "s" / model / "finetune" / "checkpoints" / "step-4").is_dir()
    saved = json.loads((tmp_path / "s" / "stability.json").read_text())
    assert saved["models"]["pythia-mini"][2]["token_kept"] == result["models"]["pythia-mini"][2]["token_kept"]
    assert (tmp_path / "s" / "stability.html").stat().st_size > 1000
    assert "| mdlm-mini | 4 |" in (tmp_path / "s" / "stability.md").read_text()
    # a finished run is reused (its SAEs and checkpoints): only the results are written again
    assert stability(cfg, show_progress=False)["models"] == result["models"]


def test_stability_refuses_bad_input(cli, tmp_path):
    from tests.conftest import one_line_error

    one_line_error(cli("dlm", "stability", "--model", "pythia-mini,pythia-mini", "--out", tmp_path), "once")
    one_line_error(cli("dlm", "stability", "--layer", 7, "--out", tmp_path / "s"), "layers 0..3")
    one_line_error(cli("dlm", "stability", "--task", "nope", "--out", tmp_path / "t"), "nope")
