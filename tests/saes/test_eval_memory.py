"""SAE evaluation in bounded memory and without the sink: the chunked, sub-batched evaluation gives the
numbers of a direct whole-tensor computation; special positions are left out of reconstruction metrics and
of the splice unless kept; a 262,144-token vocabulary evaluates in a subprocess under a stated memory bound."""

import json
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F

from interp.activations import ordinary_positions, special_token_ids
from interp.datasets import token_batches
from saes import evaluate
from saes.config import SAETrainConfig
from saes.evaluate import evaluate_saes, spliced
from saes.trainer import make_states

HOOK = "blocks.1.hook_resid_post"


def random_sae(d_in: int, width: int = 256, k: int = 8):
    sae = make_states(SAETrainConfig(width=width, k=[k]), [HOOK], d_in, "test")[0].sae
    torch.nn.init.normal_(sae.b_enc, 0.0, 0.1)  # some latents fire on every position, some on few
    return sae


@pytest.fixture(scope="module")
def setup():
    from interp.loading import load_model

    loaded = load_model("pythia-mini")
    return loaded, random_sae(loaded.bridge.cfg.d_model)


@torch.no_grad()
def direct_metrics(loaded, sae, ids, keep_special: bool) -> dict:
    """CE, KL and EV of one batch from whole logits tensors: the reference the chunked code must match."""
    bridge = loaded.bridge
    logits, cache = bridge.run_with_cache(ids, names_filter=[HOOK])
    kept = torch.ones_like(ids, dtype=torch.bool) if keep_special else ordinary_positions(
        ids, special_token_ids(loaded.tokenizer), [cache[HOOK]])
    with spliced(bridge, HOOK, sae, None if keep_special else kept):
        spliced_logits = bridge(ids)
    lp, lq = logits[:, :-1].log_softmax(-1), spliced_logits[:, :-1].log_softmax(-1)
    target = ids[:, 1:].flatten()
    x = cache[HOOK][kept]
    recon = sae.decode(sae.encode(x))
    return {"ce_clean": F.nll_loss(lp.flatten(0, 1), target).item(),
            "ce_spliced": F.nll_loss(lq.flatten(0, 1), target).item(),
            "kl": F.kl_div(lq, lp, log_target=True, reduction="sum").item() / target.numel(),
            "explained_variance": 1 - ((recon - x) ** 2).sum().item() / ((x - x.mean(0)) ** 2).sum().item(),
            "eval_positions": int(kept.sum())}


@pytest.mark.parametrize("keep_special", [False, True])
def test_chunked_evaluation_equals_the_whole_tensor_one(setup, monkeypatch, keep_special):
    loaded, sae = setup
    ids = next(token_batches("corpus", loaded.tokenizer, 16, 32, 0, purpose="sae-eval", split="heldout"))
    want = direct_metrics(loaded, sae, ids, keep_special)
    run = lambda: evaluate_saes(loaded, {"s": (HOOK, sae)}, context_size=32, n_tokens=16 * 32, model_batch=16,  # noqa: E731
                                keep_special_positions=keep_special)["s"]
    whole = run()
    vocab = loaded.bridge.cfg.d_vocab
    # forward passes of 3 sequences (16 = 3 + 3 + ... + 1) and log-softmax chunks of 7 rows
    monkeypatch.setattr(evaluate, "LOGITS_BYTES", 3 * 32 * vocab * 4)
    monkeypatch.setattr(evaluate, "CHUNK_BYTES", 7 * vocab * 4)
    assert evaluate.forward_batch(loaded, 32, 16) == 3
    chunked = run()
    for key, value in want.items():
        assert whole[key] == pytest.approx(value, rel=1e-4, abs=1e-6), key
        assert chunked[key] == pytest.approx(value, rel=1e-4, abs=1e-6), key
    assert whole["eval_positions_all"] == 16 * 32
    if keep_special:
        assert whole["explained_variance_all"] == pytest.approx(whole["explained_variance"])
    else:  # the first position of each sequence and every BOS/EOS are left out, and only them
        special = torch.isin(ids, special_token_ids(loaded.tokenizer))
        special[:, 0] = True
        assert whole["eval_positions"] == 16 * 32 - int(special.sum()) < 16 * 32 - 16
        assert whole["explained_variance_all"] != pytest.approx(whole["explained_variance"])


def test_massive_activations_are_special_positions():
    """A position whose norm is more than SINK_NORM_RATIO x the median is left out, as position 0 and a
    special token are; one just under the ratio is kept."""
    from interp.activations import SINK_NORM_RATIO

    ids = torch.tensor([[5, 6, 7, 8, 9, 2, 10, 11]])
    acts = torch.ones(1, 8, 4)
    acts[0, 3] *= SINK_NORM_RATIO * 1.01
    acts[0, 4] *= SINK_NORM_RATIO * 0.99
    kept = ordinary_positions(ids, torch.tensor([2]), [acts])
    assert kept.tolist() == [[False, True, True, False, True, False, True, True]]


def test_the_splice_leaves_special_positions_alone(setup):
    """With special positions left out, the spliced run's activation there is the clean one."""
    loaded, sae = setup
    ids = next(token_batches("corpus", loaded.tokenizer, 4, 32, 0, purpose="sae-eval", split="heldout"))
    clean = loaded.bridge.run_with_cache(ids, names_filter=[HOOK])[1][HOOK]
    kept = ordinary_positions(ids, special_token_ids(loaded.tokenizer), [clean])
    seen = {}
    with spliced(loaded.bridge, HOOK, sae, kept):
        loaded.bridge.run_with_hooks(ids, fwd_hooks=[(HOOK, lambda a, hook: seen.setdefault("a", a.clone()))])
    torch.testing.assert_close(seen["a"][~kept], clean[~kept])
    assert not torch.allclose(seen["a"][kept], clean[kept])


BIG_VOCAB = 262_144
SCRIPT = """
import json, resource, sys
import torch
from interp.loading import load_model
from saes.evaluate import evaluate_saes, forward_batch
from tests.saes.test_eval_memory import HOOK, random_sae

loaded = load_model(sys.argv[1])
sae = random_sae(loaded.bridge.cfg.d_model)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
m = evaluate_saes(loaded, {"s": (HOOK, sae)}, context_size=32, n_tokens=64 * 32, model_batch=64)["s"]
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"growth": after - before, "vocab": loaded.bridge.cfg.d_vocab, "ce": m["ce_clean"],
                  "step": forward_batch(loaded, 32, 64)}))
"""
# one model batch of 64 x 32 positions: 2 GiB of float32 logits per tensor, a clean and a spliced one, and
# their log-softmax copies; the evaluation may grow the process's peak by at most this much (its logits
# budget is 512 MiB per tensor)
GROWTH_BOUND = 1.5 * 2**30


def test_a_262k_vocabulary_evaluates_under_the_memory_bound(tmp_path):
    from tests.tiny_families import build

    path = build("llama", tmp_path / "llama-262k", vocab_size=BIG_VOCAB)
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(SCRIPT), str(path)], capture_output=True,
                         text=True, timeout=600, cwd=str(__import__("pathlib").Path(__file__).parents[2]))
    assert out.returncode == 0, out.stderr[-2000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["vocab"] == BIG_VOCAB and r["step"] < 64 and r["ce"] > 0
    unbounded = 64 * 32 * BIG_VOCAB * 4
    assert r["growth"] < GROWTH_BOUND < unbounded, r
