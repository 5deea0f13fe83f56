"""Decoding order (`interp dlm order`): the sampler's remasking strategies against priorities computed here
from the model's own logits, the measures against hand-computed values, and the whole analysis against the plain
HF model's sampler."""

import json
import math

import numpy as np
import pytest
import torch

from interp.diffusion import REMASKING, sample
from saes.decoding_order import OrderConfig, compare, decoding_order, position_stats, predictiveness, verdict


def _reference_priority(logits, pred, strategy):
    probs = torch.softmax(logits.double(), -1)
    if strategy == "low_confidence":
        return probs.gather(-1, pred[..., None])[..., 0]
    if strategy == "margin":
        s = probs.sort(-1, descending=True).values
        return s[..., 0] - s[..., 1]
    return -torch.distributions.Categorical(probs=probs).entropy()


@pytest.mark.parametrize("strategy", ["low_confidence", "margin", "entropy"])
def test_each_step_commits_the_position_the_strategy_ranks_first(dlm, tok, strategy):
    prompt = tok(["Calculate the result of the following arithmetic expression and provide only the final answer. "
                  "12 + 7 ="], return_tensors="pt")["input_ids"]
    calls = []

    def model(input_ids):
        out = dlm.model(input_ids=input_ids)
        calls.append((input_ids.clone(), out.logits))
        return out

    out = sample(model, prompt, tok.mask_token_id, gen_length=5, denoise_steps=5, remasking=strategy)
    assert len(calls) == 5 and (out != tok.mask_token_id).all()
    for (x, logits), after in zip(calls, [c[0] for c in calls[1:]] + [out]):
        committed = (x == tok.mask_token_id) & (after != tok.mask_token_id)
        assert committed.sum() == 1  # one token per step
        pos = committed[0].nonzero()[0, 0]
        masked = (x[0] == tok.mask_token_id).nonzero()[:, 0]
        pred = logits[0].argmax(-1)
        prio = _reference_priority(logits[0], pred, strategy)
        assert pos == masked[prio[masked].argmax()]
        assert after[0, pos] == pred[pos]


def test_random_order_follows_its_generator(dlm, tok):
    prompt = tok(["Continue the sequence and give the next term. 3, 6, 9, 12,"], return_tensors="pt")["input_ids"]
    orders = []
    for seed in (0, 0, 1, 2):
        committed = []

        def model(input_ids):
            committed.append((input_ids[0] == tok.mask_token_id).nonzero()[:, 0].tolist())
            return dlm.model(input_ids=input_ids)

        sample(model, prompt, tok.mask_token_id, gen_length=6, denoise_steps=6, remasking="random",
               generator=torch.Generator().manual_seed(seed))
        orders.append([sorted(set(a) - set(b)) for a, b in zip(committed, committed[1:])])
    assert orders[0] == orders[1]
    assert orders[0] != orders[2] or orders[0] != orders[3]
    with pytest.raises(ValueError, match="remasking must be one of"):
        sample(dlm.model, prompt, tok.mask_token_id, remasking="lowest")


def test_measures_by_hand():
    a, b = torch.tensor([3.0, 2.0, 1.0, 0.0]), torch.tensor([0.0, 2.0, 1.0, 3.0])
    m = compare(a, b, top=2)  # top sets {0, 1} and {3, 1}
    assert m["jaccard"].item() == pytest.approx(1 / 3)
    assert m["weighted_jaccard"].item() == pytest.approx(2 / 8)  # min: 0+2+0+0, max: 3+2+0+3
    assert m["cosine"].item() == pytest.approx(5 / 14)
    assert m["top1_same"].item() == 0
    same = compare(a, a, top=3)
    assert all(v.item() == pytest.approx(1.0) for v in same.values())
    empty = compare(torch.zeros(4), torch.zeros(4), top=2)
    assert empty["jaccard"].item() == 1 and empty["weighted_jaccard"].item() == 1


def test_position_stats_by_hand():
    mask, p = 9, 1
    # one prompt, two generated positions, three reads: position 0 is committed at the first call, position 1 at
    # the second; the last read is the finished sequence
    inputs = [torch.tensor([[5, mask, mask]]), torch.tensor([[5, 4, mask]]), torch.tensor([[5, 4, 7]])]
    e = torch.eye(4)
    lat = torch.stack([torch.stack([e[0], e[1]]), torch.stack([e[2], e[1]]), torch.stack([e[3], e[2]])])[:, None]
    st = position_stats(inputs, lat, mask, p, top=1)
    s, c = st["curves"]["masked"]["jaccard"]
    assert c.tolist() == [1, 0] and s.tolist() == [1.0, 0.0]  # position 1 masked at reads 0 and 1: same latent
    s, c = st["curves"]["decoded"]["jaccard"]
    assert c.tolist() == [0, 1] and s.tolist() == [0.0, 0.0]  # position 0 visible at reads 1 and 2: changed
    assert st["per_prompt"].tolist() == [1.0]
    assert st["jump"].tolist() == [[0.0, 0.0]]  # both positions' latents change when they are committed
    assert st["drift"][0, 0].item() == 1.0 and math.isnan(st["drift"][0, 1].item())  # 1 is visible only at the end


def test_predictiveness_finds_a_planted_link_and_none_in_noise():
    rng = np.random.default_rng(0)
    strategy = np.repeat(["a", "b"], 40)
    correct = rng.random(80) < 0.5
    linked = correct + 0.3 * rng.random(80)
    found = predictiveness(linked, correct, strategy, np.random.default_rng(1), 300)
    assert found["pooled_r"] > 0.8 and found["pooled_p"] < 0.01 and found["within_p"] < 0.01
    noise = predictiveness(rng.random(80), correct, strategy, np.random.default_rng(1), 300)
    assert abs(noise["pooled_r"]) < 0.3 and noise["pooled_p"] > 0.05
    none = predictiveness(rng.random(80), np.zeros(80, bool), strategy, np.random.default_rng(1), 10)
    assert none["pooled_r"] is None and "cannot be told" in verdict(none, {"a": 0.0, "b": 0.0})


@pytest.fixture(scope="module")
def small_sae(tmp_path_factory):
    from saes import SAETrainConfig, train_sae

    out = tmp_path_factory.mktemp("sae") / "mdlm"
    train_sae(SAETrainConfig(model="mdlm-mini", hooks=["blocks.1.hook_resid_post", "blocks.3.hook_resid_post"], k=[8],
                             tokens=8192, batch_size=1024, eval_tokens=4096, feature_tokens=4096, out=str(out)),
              show_progress=False)
    return out


def test_order_matches_the_plain_sampler_and_writes_its_files(small_sae, tmp_path, dlm, tok):
    from interp.seeds import torch_generator
    from interp.tasks import make_examples

    cfg = OrderConfig(sae=str(small_sae), layers=[1, 3], n=6, gen_length=4, permutations=50, trajectories=2,
                      out=str(tmp_path / "order"))
    result = decoding_order(cfg, show_progress=False)
    examples = make_examples("add_sub", "test", 6, 0, at_most=True, tokenizer=tok)
    assert set(result["strategies"]) == set(REMASKING)
    for si, strategy in enumerate(cfg.strategies):
        got = result["strategies"][strategy]
        gen = torch_generator(0, "dlm-order/remasking", si)
        ids = tok([e.clean for e in examples])["input_ids"]
        by_len = {}
        for i, x in enumerate(ids):
            by_len.setdefault(len(x), []).append(i)
        right = []
        for p, idx in by_len.items():  # the same grouping, order and stream as the analysis
            out = sample(dlm.model, torch.tensor([ids[i] for i in idx]), tok.mask_token_id, gen_length=4,
                         denoise_steps=4, generator=gen, remasking=strategy)
            for j, i in enumerate(idx):
                assert got["generated"][i] == tok.decode(out[j, p:].tolist())
                right.append(out[j, p].item() == tok(f" {examples[i].label}", add_special_tokens=False)["input_ids"][0])
        assert got["accuracy"] == pytest.approx(np.mean(right))
        for h in result["hooks"]:
            layer = got["layers"][h]
            # 4 positions, one committed per step: 3 + 2 + 1 masked pairs and 0 + 1 + 2 + 3 decoded ones a prompt
            assert all(v is not None for v in layer["masked"]["jaccard"]["curve"][:3])
            assert layer["masked"]["jaccard"]["curve"][3] is None and layer["decoded"]["jaccard"]["curve"][0] is None
            assert 0 <= layer["masked"]["jaccard"]["mean"] <= 1 and 0 <= layer["drift"] <= 1
        traj = got["trajectories"]["0"]["reads"]
        assert len(traj) == 5 and traj[0]["tokens"] == ["▢"] * 4 and "▢" not in traj[-1]["tokens"]
    out = tmp_path / "order"
    saved = json.loads((out / "order.json").read_text())
    assert saved["prediction"]["verdict"] == result["prediction"]["verdict"]
    assert (out / "order.html").stat().st_size > 1000 and (out / "plotly.min.js").exists()
    assert "| random |" in (out / "order.md").read_text()


def test_order_refuses_bad_input(cli, small_sae, tmp_path):
    from tests.conftest import one_line_error

    out = tmp_path / "o"
    one_line_error(cli("dlm", "order", "--model", "pythia-mini", "--out", out), "autoregressive")
    one_line_error(cli("dlm", "order", "--strategy", "lowest", "--out", out), "unknown strategy 'lowest'")
    one_line_error(cli("dlm", "order", "--layer", "9", "--sae", small_sae, "--out", out), "layers 0..3")
    one_line_error(cli("dlm", "order", "--gen-length", "6", "--block-length", "4", "--out", out), "multiple")
    one_line_error(cli("dlm", "order", "--batch-size", "4096", "--gen-length", "64", "--sae", small_sae,
                       "--layer", "1,3", "--out", out), "lower --batch-size")
    one_line_error(cli("dlm", "order", "--layer", "0", "--sae", small_sae, "--out", out, "--resume"), "pass --layer")
    assert not (out / "order.json").exists()
    # the --layer 0 refusal came after the run directory was opened: it is a stopped run now, kept for --resume
    small = ["dlm", "order", "--layer", "1", "--sae", small_sae, "--n", "2", "--gen-length", "2", "--permutations",
             "5", "--out", out]
    one_line_error(cli(*small, "--strategy", "random"), "pass --resume")
    assert cli(*small, "--strategy", "random", "--resume").returncode == 0 and (out / "order.json").exists()
    again = cli(*small, "--strategy", "entropy", "--overwrite")  # replaced, as asked: the run is ours
    assert again.returncode == 0 and list(json.loads((out / "order.json").read_text())["strategies"]) == ["entropy"]
