"""The shipped zoo models: loading, the Bridge, bidirectionality, sampler, shipped accuracy."""

import json

import pytest
import torch

from interp.diffusion import sample
from interp.evaluate import task_accuracy
from interp.loading import load_model
from interp.tasks import ARITHMETIC as TASKS
from interp.zoo import ZOO

# accuracy is measured on the same 200 fixed test examples; only float/thread noise can move it
TOLERANCE = 0.02


def test_zoo_files_small_and_complete():
    for entry in ZOO.values():
        assert (entry.path / "config.json").exists() and (entry.path / "recipe.json").exists()
        for f in entry.path.iterdir():
            assert f.stat().st_size <= 16 * 2**20, f


@pytest.mark.parametrize("name", list(ZOO))
def test_bridge_logits_equal_hf(name, tok):
    ref = load_model(name, bridge=False).model
    loaded = load_model(name, hooks_for_edges=True)
    x = tok(["Calculate the result of the following arithmetic expression and provide only the final answer. 41 + 29 ="],
            return_tensors="pt")["input_ids"]
    with torch.no_grad():
        hf_logits = ref(input_ids=x).logits
        logits, cache = loaded.bridge.run_with_cache(x)
    assert torch.allclose(hf_logits, logits, atol=1e-4)
    n_layers = ref.config.num_hidden_layers
    for hook in [f"blocks.{n_layers - 1}.hook_resid_post", "blocks.0.attn.hook_result", "blocks.0.hook_q_input",
                 "blocks.1.hook_mlp_in", "blocks.0.attn.hook_pattern"]:
        assert hook in cache, hook
    # backward through the bridge reaches the embeddings
    out = loaded.bridge(x)
    out[0, -1].logsumexp(-1).backward()
    assert ref is not loaded.model
    assert loaded.model.get_input_embeddings().weight.grad.abs().sum() > 0


def test_diffusion_model_is_bidirectional(dlm, tok):
    x = tok(["41 plus 29 is 70.", "41 plus 29 is 71."], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        logits = dlm.model(input_ids=x).logits
    assert (logits[0, 1] - logits[1, 1]).abs().max() > 1e-3  # a later token changed position 1's logits
    loaded = load_model("mdlm-mini")
    with torch.no_grad():
        b = loaded.bridge(x)
    assert torch.allclose(b, logits, atol=1e-4)


def test_ar_model_is_causal(ar, tok):
    x = tok(["41 plus 29 is 70.", "41 plus 29 is 71."], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        logits = ar.model(input_ids=x).logits
    assert torch.allclose(logits[0, :-2], logits[1, :-2])


def test_sampler_fills_every_mask(dlm, tok):
    x = tok(["the sum of 41 and 29 is", "the sum of 40 and 20 is"], return_tensors="pt")["input_ids"]
    out = sample(dlm.model, x, tok.mask_token_id, gen_length=8, denoise_steps=8, block_length=4)
    assert out.shape == (2, x.shape[1] + 8)
    assert not (out == tok.mask_token_id).any()
    assert torch.equal(out[:, : x.shape[1]], x)


@pytest.mark.parametrize("name", list(ZOO))
def test_shipped_accuracy_matches_report(name, tok):
    loaded = load_model(name, bridge=False)
    report = json.loads((ZOO[name].path / "report.json").read_text())
    for task in TASKS:
        acc = task_accuracy(loaded.model, tok, task, "test", report["eval"]["n"], diffusion=loaded.is_diffusion)
        assert abs(acc - report["accuracy"][task]) <= TOLERANCE, (task, acc, report["accuracy"][task])


def readme_zoo_accuracy(name):
    """The accuracy row docs/models.md's zoo table gives for `name` (percent per task, in TASKS order)."""
    from pathlib import Path

    readme = (Path(__file__).parents[1] / "docs" / "models.md").read_text()
    row = next(l for l in readme.splitlines() if l.startswith(f"| `{name}` |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    return dict(zip(TASKS, map(float, cells[-len(TASKS):])))


@pytest.mark.parametrize("name", list(ZOO))
def test_readme_reports_the_shipped_accuracy(name):
    report = json.loads((ZOO[name].path / "report.json").read_text())["accuracy"]
    for task, pct in readme_zoo_accuracy(name).items():
        assert abs(pct - 100 * report[task]) < 0.06, (task, pct, report[task])


def test_ar_model_weak_but_not_zero():
    acc = json.loads((ZOO["pythia-mini"].path / "report.json").read_text())["accuracy"]
    assert all(0 < a < 0.5 for a in acc.values()), acc
