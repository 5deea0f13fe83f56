"""Top-K SAE training on the zoo models: real short runs, sae-lens loading, resume, the diffusion stream."""

import json
from dataclasses import replace

import pytest
import torch
from sae_lens import SAE

from interp.errors import InterpError
from saes import SAETrainConfig, train_sae
from saes.evaluate import spliced
from saes.feature_store import FeatureStore

SHORT = dict(tokens=40 * 1024, batch_size=1024, lr=3e-3, eval_tokens=8192, feature_tokens=4096, checkpoint_every=4)


@pytest.fixture(scope="module")
def ar_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("sae") / "ar"
    return train_sae(SAETrainConfig(k=[8, 32], out=str(out), **SHORT), show_progress=False)


def test_ar_run_quality(ar_run):
    """40k activations reach a useful SAE: EV >= 0.85 at k=32, L0 exactly k, and splicing costs CE."""
    m = ar_run.metrics["blocks.2.hook_resid_post-k32"]
    assert m["explained_variance"] >= 0.85
    assert m["l0"] == 32
    assert m["delta_ce"] > 0 and m["kl"] > 0
    assert ar_run.metrics["blocks.2.hook_resid_post-k8"]["l0"] == 8
    # a wider code reconstructs better
    assert m["explained_variance"] > ar_run.metrics["blocks.2.hook_resid_post-k8"]["explained_variance"]


def test_cache_reproduces_streaming_quality(ar_run, tmp_path):
    """The same 40k activations through a cache instead of the live stream: the same quality (the order
    differs: the cache is shuffled shard-wise, the stream model-batch-wise)."""
    from saes.activation_cache import CacheConfig, cache_activations

    cache = cache_activations(CacheConfig(tokens=SHORT["tokens"], shard_mb=4, out=str(tmp_path / "cache")),
                              show_progress=False)
    cached = train_sae(SAETrainConfig(k=[32], activations=str(cache), out=str(tmp_path / "run"), **SHORT),
                       show_progress=False)
    name = "blocks.2.hook_resid_post-k32"
    ours, ref = cached.metrics[name], ar_run.metrics[name]
    assert abs(ours["explained_variance"] - ref["explained_variance"]) < 0.02, (ours, ref)
    assert abs(ours["delta_ce"] - ref["delta_ce"]) < 0.25 * ref["delta_ce"], (ours, ref)


def test_run_directory_is_sae_lens_format(ar_run):
    run = ar_run.run_dir
    assert not run.with_name(run.name + ".partial").exists()
    assert not (run / "checkpoint").exists()
    assert json.loads((run / "config.json").read_text())["k"] == [8, 32]
    curves = json.loads((run / "curves.json").read_text())
    assert curves[-1]["step"] == 40 and "blocks.2.hook_resid_post-k32" in curves[-1]
    sae = SAE.load_from_disk(str(run / "saes" / "blocks.2.hook_resid_post-k32"))
    assert sae.cfg.k == 32 and sae.cfg.d_in == 128 and sae.cfg.d_sae == 2048
    assert sae.cfg.metadata.hook_name == "blocks.2.hook_resid_post"
    store = FeatureStore(run / "saes" / "blocks.2.hook_resid_post-k32")
    assert len(store.summary["density"]) == 2048 and len(store.table()) == 2048
    some = store.latent(store.alive.index(True))
    assert some["max_act"] == store.summary["max_act"][store.alive.index(True)]
    assert some["top"] and some["logits"]["positive"] and some["quantiles"]
    assert sum(some["histogram"]["counts"]) > 0


def test_every_latent_vector_has_k_nonzeros_and_splicing_changes_logits(ar_run):
    from interp.corpus import packed_corpus_batch
    from interp.loading import load_model

    m = load_model("pythia-mini")
    sae = SAE.load_from_disk(str(ar_run.run_dir / "saes" / "blocks.2.hook_resid_post-k32"))
    ids = packed_corpus_batch(m.tokenizer, 4, 32, "test")
    _, cache = m.bridge.run_with_cache(ids, names_filter=["blocks.2.hook_resid_post"])
    feats = sae.encode(cache["blocks.2.hook_resid_post"])
    assert ((feats != 0).sum(-1) == 32).all()
    clean = m.bridge(ids)
    with spliced(m.bridge, "blocks.2.hook_resid_post", sae):
        with_sae = m.bridge(ids)
    assert not torch.allclose(clean, with_sae)
    torch.testing.assert_close(m.bridge(ids), clean)  # the splice is gone afterwards


def test_resume_continues_from_checkpoint(tmp_path, monkeypatch):
    import saes.trainer as trainer

    cfg = SAETrainConfig(out=str(tmp_path / "r"), **{**SHORT, "tokens": 10 * 1024, "checkpoint_every": 3})
    calls = {"n": 0}
    real = trainer.train_step

    def dying(*a, **k):
        calls["n"] += 1
        if calls["n"] == 8:
            raise KeyboardInterrupt  # a kill during step 8; the last checkpoint is at step 6
        return real(*a, **k)

    monkeypatch.setattr(trainer, "train_step", dying)
    with pytest.raises(KeyboardInterrupt):
        train_sae(cfg, show_progress=False)
    partial = tmp_path / "r.partial"
    assert json.loads((partial / "checkpoint" / "progress.json").read_text())["step"] == 6
    with pytest.raises(InterpError, match="--resume"):
        train_sae(cfg, show_progress=False)
    with pytest.raises(InterpError, match="differs in lr"):
        train_sae(replace(cfg, lr=2e-3), resume=True, show_progress=False)
    monkeypatch.setattr(trainer, "train_step", lambda *a, **k: (calls.__setitem__("n", calls["n"] + 1), real(*a, **k))[1])
    calls["n"] = 0
    result = train_sae(cfg, resume=True, show_progress=False)
    assert calls["n"] == 4  # steps 7..10 only, never from zero
    assert json.loads((result.run_dir / "curves.json").read_text())[-1]["step"] == 10
    with pytest.raises(InterpError, match="holds a finished sae run; pass --overwrite"):
        train_sae(cfg, show_progress=False)


def test_diffusion_run(tmp_path):
    r = train_sae(SAETrainConfig(model="mdlm-mini", k=[32], out=str(tmp_path / "d"), **SHORT), show_progress=False)
    m = r.metrics["blocks.2.hook_resid_post-k32"]
    assert m["l0"] == 32 and m["explained_variance"] >= 0.6
    assert m["ce_kind"].startswith("masked-token")
    for key in ("ce_clean_unmasked", "delta_ce_unmasked", "kl"):
        assert key in m


def test_compare_layers_table(tmp_path):
    from saes.compare import compare_layers, markdown_table

    base = SAETrainConfig(tokens=2048, batch_size=1024, buffer_batches=2, eval_tokens=2048, feature_tokens=1024)
    table = compare_layers(("pythia-mini", "mdlm-mini"), base, tmp_path)
    assert sorted(table) == ["mdlm-mini", "pythia-mini"]
    assert all(sorted(t) == [0, 1, 2, 3] for t in table.values())
    assert table["mdlm-mini"][0]["hook"] == "blocks.0.hook_resid_post"
    md = (tmp_path / "comparison.md").read_text()
    assert md == markdown_table(table) and len(md.strip().splitlines()) == 6
    assert "mdlm-mini ΔCE visible" in md


def test_decoder_overlap_by_hand():
    from types import SimpleNamespace

    from saes.compare import decoder_overlap

    e = torch.eye(4)
    same = decoder_overlap(SimpleNamespace(W_dec=3 * e), SimpleNamespace(W_dec=e[[2, 0, 3, 1]]))
    assert same == {"mean_max_cosine": pytest.approx(1.0), "shared_0.9": 1.0}
    # a's latent 0 is b's latent 0; a's latent 1 lies between b's 1 and 2 (cos 0.707); b's latent 3 matches nothing
    a = torch.tensor([[1.0, 0, 0, 0], [0, 1, 1, 0]])
    b = torch.tensor([[1.0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    got = decoder_overlap(SimpleNamespace(W_dec=a), SimpleNamespace(W_dec=b))
    r = 2 ** -0.5
    assert got["mean_max_cosine"] == pytest.approx((1 + r + 1 + r + r + 0) / 6)
    assert got["shared_0.9"] == pytest.approx(2 / 6)
    live = decoder_overlap(SimpleNamespace(W_dec=a), SimpleNamespace(W_dec=b), [True, False], [True, True, True, False])
    assert live == {"mean_max_cosine": pytest.approx((1 + 1 + 0 + 0) / 4), "shared_0.9": 0.5}


def test_compare_policies_table(tmp_path, cli):
    from saes.compare import compare_policies, policies_table

    base = SAETrainConfig(tokens=2048, batch_size=1024, buffer_batches=2, eval_tokens=2048, feature_tokens=1024)
    table = compare_policies("mdlm-mini", ("mask", "unmask"), base, tmp_path / "p")
    assert sorted(table["policies"]) == ["mask", "unmask"] and sorted(table["overlap"]) == [0, 1, 2, 3]
    for policy, runs in table["policies"].items():
        cfg = json.loads((tmp_path / "p" / policy / "config.json").read_text())
        assert cfg["mask_policy"] == policy and len(runs) == 4
    assert all(0 < o["mean_max_cosine"] <= 1 for o in table["overlap"].values())
    md = (tmp_path / "p" / "policies.md").read_text()
    assert md == policies_table(table) and len(md.strip().splitlines()) == 6 and "unmask ΔCE visible" in md
    # a second call reuses both finished runs: the same numbers, no training
    again = cli("dlm", "policies", "--tokens", 2048, "--out", tmp_path / "p")
    assert again.returncode == 0 and json.loads((tmp_path / "p" / "policies.json").read_text())["overlap"]["0"] == \
        pytest.approx(table["overlap"][0])
