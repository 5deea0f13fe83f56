"""The diffusion activation stream keeps exactly the positions its policy names; bad input fails cleanly."""

import shutil

import pytest
import torch

from interp.activations import ActivationStream, StreamConfig, mask_batch
from interp.corpus import packed_corpus_batch


@pytest.fixture(scope="module")
def dlm_bridge():
    from interp.loading import load_model

    return load_model("mdlm-mini")


@pytest.mark.parametrize("policy", ["mask", "unmask", "all", "clean"])
def test_diffusion_stream_keeps_policy_positions(dlm_bridge, policy):
    m = dlm_bridge
    hook = "blocks.1.hook_resid_post"
    cfg = StreamConfig(hooks=[hook], diffusion=True, mask_policy=policy, model_batch=8, context_size=32, seed=3)
    stream = ActivationStream(m.bridge, m.tokenizer, cfg)
    ids = packed_corpus_batch(m.tokenizer, 8, 32, "stream-test")
    acts, inputs, keep = stream.model_batch(ids)
    mask_id = m.tokenizer.mask_token_id
    masked = inputs == mask_id
    assert not masked[:, 0].any()  # the first token is never masked
    expected = {"mask": masked, "unmask": ~masked, "all": torch.ones_like(masked), "clean": torch.ones_like(masked)}
    special = torch.isin(ids, torch.tensor(m.tokenizer.all_special_ids))
    assert special.any()  # the packed corpus has BOS / EOS tokens: the filter below has something to drop
    expected = expected[policy] & ~special
    expected[:, 0] = False  # position 0 and special tokens are left out by default
    assert torch.equal(keep, expected)
    if policy == "clean":
        assert torch.equal(inputs, ids)
    else:
        assert masked.any() and torch.equal(inputs[~masked], ids[~masked])
    _, cache = m.bridge.run_with_cache(inputs, names_filter=[hook])
    torch.testing.assert_close(acts[:, 0], cache[hook][keep])


def test_mask_ratio_range():
    g = torch.Generator().manual_seed(0)
    ids = torch.arange(200 * 1024).view(200, 1024) % 50 + 10  # long rows: each row's share is close to its p
    ratios = [(mask_batch(ids[i:i + 1], 4, (0.05, 0.5), "mask", g)[0] == 4).float().mean().item() for i in range(200)]
    assert 0.02 < min(ratios) and max(ratios) < 0.6
    assert 0.24 < sum(ratios) / len(ratios) < 0.31  # E[p] = 0.275


@pytest.mark.parametrize("args,msg", [
    (["--hook", "blocks.9.hook_resid_post"], "unknown hook 'blocks.9.hook_resid_post'; valid hooks: "),
    (["--width", "16", "--k", "32"], "k = 32 is larger than the width 16"),
    (["--width", "0"], "width must be at least 1"),
    (["--model", "./no-such-dir"], "model directory ./no-such-dir does not exist"),
    (["--k", "4096"], "k = 4096 is larger than the width 2048"),
    (["--mask-policy", "half"], "unknown mask policy 'half'"),
    (["--device", "gpu"], "unknown device 'gpu'"),
    *([(["--device", "cuda"], "sees no CUDA GPU")] if not torch.cuda.is_available() else []),
])
def test_train_sae_bad_input(cli, tmp_path, args, msg):
    out = tmp_path / "run"
    r = cli("train-sae", "--out", str(out), "--tokens", "4096", *args)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [r.stderr.strip()]  # one line
    assert msg in r.stderr
    assert not out.exists() and not out.with_name("run.partial").exists()


def test_eval_sae_bad_files(cli, tmp_path):
    from saes import SAETrainConfig, train_sae

    run_dir = tmp_path / "ok"
    train_sae(SAETrainConfig(tokens=2048, batch_size=1024, out=str(run_dir), eval_tokens=2048, feature_tokens=1024),
              show_progress=False)
    sae_dir = run_dir / "saes" / "blocks.2.hook_resid_post-k32"
    r = cli("eval-sae", str(sae_dir), "--tokens", "1024")
    assert r.returncode == 0, r.stderr
    assert "blocks.2.hook_resid_post-k32" in r.stdout

    wrong = tmp_path / "wrong"
    shutil.copytree(sae_dir, wrong)
    cfg = (wrong / "cfg.json").read_text().replace("blocks.2.hook_resid_post", "blocks.2.mlp.hook_post")
    (wrong / "cfg.json").write_text(cfg)
    r = cli("eval-sae", str(wrong))
    assert r.returncode == 2 and "the SAE's d_in is 128 but hook 'blocks.2.mlp.hook_post' has width 512" in r.stderr

    corrupt = tmp_path / "corrupt"
    shutil.copytree(sae_dir, corrupt)
    (corrupt / "sae_weights.safetensors").write_bytes(b"not a safetensors file")
    r = cli("eval-sae", str(corrupt))
    assert r.returncode == 2 and r.stderr.startswith(f"error: cannot load the SAE at {corrupt}")
    assert len(r.stderr.strip().splitlines()) == 1

    r = cli("eval-sae", str(tmp_path / "missing"))
    assert r.returncode == 2 and "does not exist" in r.stderr


def test_file_datasets(tmp_path, tok):
    from interp.corpus import corpus_lines
    from interp.datasets import token_batches
    from interp.errors import InterpError

    lines = [line for line, _ in zip(corpus_lines(5), range(300))]
    txt = tmp_path / "d.txt"
    txt.write_text("\n".join(lines))
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text("\n".join('{"text": "%s"}' % line for line in lines))
    a = next(token_batches(str(txt), tok, 4, 16, seed=1))
    b = next(token_batches(str(jsonl), tok, 4, 16, seed=1))
    assert a.shape == (4, 16) and (a[:, 0] == tok.bos_token_id).all()
    assert torch.equal(a, b)  # the same texts give the same batches, whatever the file format
    third = list(zip(range(3), token_batches(str(txt), tok, 4, 16, seed=1)))[2][1]
    assert torch.equal(next(token_batches(str(txt), tok, 4, 16, seed=1, start=2)), third)  # resumable
    # evaluation reads only the file's held-out tail, which training never reads
    rows = lambda split: {tuple(r) for _, b in zip(range(40), token_batches(str(txt), tok, 4, 16, split=split))
                          for r in b.tolist()}
    train, heldout = rows("train"), rows("heldout")
    assert train and heldout and not train & heldout
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "1 plus 2 is 3."}\n{"txt": "oops"}\n')
    with pytest.raises(InterpError, match="line 2: expected a JSON object with a 'text' field"):
        token_batches(str(bad), tok, 4, 16)
    with pytest.raises(InterpError, match="too short"):
        token_batches(str(tmp_path / "d.txt"), tok, 4, 10_000)
    with pytest.raises(InterpError, match="not reachable offline"):
        token_batches("some-org/some-dataset", tok, 4, 16)
