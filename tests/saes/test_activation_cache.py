"""The activation cache: what it stores, resuming a killed cache, refusing a cache that does not fit the run,
and training from it (the quality comparison with streaming is in test_train.py, beside the streaming run)."""

import json

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import one_line_error
from interp import rundir
from interp.activations import ActivationStream, StreamConfig
from saes import activation_cache
from saes.activation_cache import CacheConfig, cache_activations, read_cache

HOOKS = ["blocks.1.hook_resid_post", "blocks.2.hook_resid_post"]
SMALL = dict(hooks=HOOKS, tokens=3 * 4096, shard_mb=2)  # one 64 x 64 model batch (< 2 MiB for two hooks) per shard


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return cache_activations(CacheConfig(out=str(tmp_path_factory.mktemp("cache") / "c"), **SMALL),
                             show_progress=False)


def test_cache_holds_the_stream_in_order(cache):
    """Shard i holds model batch i of the stream train-sae reads, every hook, unshuffled."""
    from interp.loading import load_model

    ar = load_model("pythia-mini")
    manifest = read_cache(cache)
    assert manifest["hooks"] == HOOKS and manifest["model"] == "pythia-mini" and manifest["d_in"] == 128
    firsts = [s["first_batch"] for s in manifest["shards"]]
    assert firsts == list(range(len(firsts))) and manifest["rows"] >= 3 * 4096
    assert all(s["rows"] <= 64 * 63 for s in manifest["shards"])  # position 0 of the 64 sequences left out
    assert manifest["keep_special_positions"] is False
    stream = ActivationStream(ar.bridge, ar.tokenizer, StreamConfig(hooks=HOOKS))
    second = stream.model_batch(next(activation_cache._tokens(stream, 1)), 1)[0]
    torch.testing.assert_close(load_file(cache / "shard-00001.safetensors")["activations"], second)


def test_killed_cache_resumes_at_the_next_shard(cache, tmp_path, monkeypatch):
    """A cache killed after two shards continues with the third, and ends equal to one written at once."""
    write = activation_cache._write_shard

    def dies_after_two(work, manifest, *args):  # the real writer; a kill stands in before the third shard
        if len(manifest["shards"]) == 2:
            raise KeyboardInterrupt
        write(work, manifest, *args)

    cfg = CacheConfig(out=str(tmp_path / "c"), **SMALL)
    monkeypatch.setattr(activation_cache, "_write_shard", dies_after_two)
    with pytest.raises(KeyboardInterrupt):
        cache_activations(cfg, show_progress=False)
    partial = tmp_path / "c.partial"
    assert len(json.loads((partial / "cache.json").read_text())["shards"]) == 2
    monkeypatch.setattr(activation_cache, "_write_shard", write)
    out = cache_activations(CacheConfig(out=str(tmp_path / "c"), **SMALL), resume=True, show_progress=False)
    for i in range(3):
        name = f"shard-{i:05d}.safetensors"
        assert torch.equal(load_file(out / name)["activations"], load_file(cache / name)["activations"])


def test_cache_refusals(cache, cli, tmp_path):
    """A cache from another model or without the hook, too few activations, not a cache, or one the disk cannot
    hold: one line each, nothing written."""
    base = ["train-sae", "--activations", cache, "--out", tmp_path / "run"]
    one_line_error(cli(*base, "--model", "mdlm-mini"), "holds model 'pythia-mini', not 'mdlm-mini'")
    one_line_error(cli(*base, "--hook", "blocks.0.hook_resid_post"), "has no hook blocks.0.hook_resid_post")
    one_line_error(cli(*base, "--tokens", 5 * 4096), "need --epochs 2")
    one_line_error(cli("train-sae", "--activations", tmp_path, "--out", tmp_path / "run"), "is not an activation cache")
    partial = tmp_path / "p"
    (partial).mkdir()
    manifest = {"format": rundir.FORMAT, "kind": "activations", "status": "running"}
    (partial / rundir.MANIFEST).write_text(json.dumps(manifest))
    one_line_error(cli("train-sae", "--activations", partial), "is not complete")
    one_line_error(cli("cache-activations", "--tokens", 10**15, "--out", tmp_path / "huge"), "GiB free")
    for name in ("run", "run.partial", "huge", "huge.partial"):
        assert not (tmp_path / name).exists()


def test_train_from_cache_reads_no_model_until_evaluation(cache, tmp_path, monkeypatch):
    """Training from a cache, two epochs over it, one hook of two: the LM loads once, after training, for the
    evaluation; the run records the cache's model and hook."""
    import interp.loading
    from saes import SAETrainConfig, train_sae

    loads = []
    real = interp.loading.load_model
    # counts the calls and loads the real model each time
    monkeypatch.setattr(interp.loading, "load_model", lambda *a, **k: loads.append(a) or real(*a, **k))
    cfg = SAETrainConfig(activations=str(cache), hooks=[HOOKS[1]], epochs=2, tokens=5 * 4096, batch_size=1024,
                         width=256, eval_tokens=4096, out=str(tmp_path / "run"))
    result = train_sae(cfg, show_progress=False)
    assert len(loads) == 1
    saved = json.loads((result.run_dir / "config.json").read_text())
    assert saved["model"] == "pythia-mini" and saved["hooks"] == [HOOKS[1]] and saved["activations"] == str(cache)
    assert list(result.metrics) == [f"{HOOKS[1]}-k32"] and result.metrics[f"{HOOKS[1]}-k32"]["l0"] == 32
