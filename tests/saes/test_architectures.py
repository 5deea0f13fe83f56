"""SAE architectures (saes/architectures/): batchtopk trains end to end, its checkpoint round-trips, the
trainer's firing bookkeeping reads sparse and dense codes alike, and an unknown architecture is refused."""

import json

import pytest
import torch

from interp.errors import InterpError
from saes import SAETrainConfig, load_sae, train_sae
from saes.architectures import ARCHITECTURES, fired, trained_k
from saes.feature_store import FeatureStore

NAME = "blocks.2.hook_resid_post-k32"


def test_batchtopk_run_trains_evaluates_and_reloads(tmp_path):
    from saes.run_eval import check_labels

    # 160 small steps: sae-lens's threshold (a moving average at rate 0.01) has caught up; 40 leave it far low
    cfg = SAETrainConfig(architecture="batchtopk", k=[32], out=str(tmp_path / "b"), tokens=20 * 1024,
                         batch_size=128, eval_tokens=2048, feature_tokens=2048, model_batch=32,
                         checkpoint_every=1000)
    run = train_sae(cfg, show_progress=False)
    m = run.metrics[NAME]
    assert m["k"] == 32 and m["explained_variance"] >= 0.9 and m["delta_ce"] < 0.2
    assert 16 <= m["l0"] <= 64  # k on average over held-out tokens, not exactly k per token
    # during training the batch keeps exactly k * batch latents
    assert json.loads((run.run_dir / "curves.json").read_text())[-1][NAME]["l0"] == 32
    sae = load_sae(run.run_dir / "saes" / NAME)
    assert type(sae).__name__ == "JumpReLUSAE" and trained_k(sae) == 32  # sae-lens's inference form
    assert (sae.threshold > 0).all()
    store = FeatureStore(run.run_dir / "saes" / NAME)
    assert len(store.summary["density"]) == 2048 and any(store.alive)
    check_labels(NAME, sae, ["blocks.2.hook_resid_post"])  # eval-sae's check reads k from the metadata
    with pytest.raises(InterpError, match="says k 32 but the directory name says 16"):
        check_labels("blocks.2.hook_resid_post-k16", sae, [])


def test_batchtopk_checkpoint_keeps_threshold_and_firing_counts(tmp_path):
    from saes.trainer import load_checkpoint, make_states, save_checkpoint, train_step

    cfg = SAETrainConfig(architecture="batchtopk", k=[8], width=256, lr=1e-3, tokens=256, batch_size=64)
    states = make_states(cfg, ["blocks.0.hook_resid_post"], 32, "random")
    torch.manual_seed(0)
    for _ in range(3):
        log = train_step(states[0], torch.randn(64, 32) * 3, dead_tokens=10_000)
    assert log["l0"] == 8 and int(states[0].fired.sum()) == 3 * 64 * 8
    threshold = states[0].sae.topk_threshold.clone()
    assert threshold > 0
    save_checkpoint(tmp_path, states, {"step": 3})
    fresh = make_states(cfg, ["blocks.0.hook_resid_post"], 32, "random")
    assert load_checkpoint(tmp_path, fresh) == {"step": 3}
    assert fresh[0].sae.topk_threshold == threshold and torch.equal(fresh[0].fired, states[0].fired)


def test_fired_reads_sparse_and_dense_codes_alike():
    idx = torch.tensor([[3, 1, 4], [0, 2, 3]])
    acts = torch.tensor([[1.0, 0.0, 2.0], [0.5, 0.25, 0.0]])
    dense = torch.zeros(2, 6).scatter_(-1, idx, acts)
    hit_s, l0_s = fired({"indices": idx, "acts": acts})
    hit_d, l0_d = fired({"feature_acts": dense})
    assert sorted(hit_s.tolist()) == sorted(hit_d.tolist()) == [0, 2, 3, 4]
    assert l0_s.tolist() == l0_d.tolist() == [2, 2]


def test_unknown_architecture_is_refused_in_one_line():
    with pytest.raises(InterpError) as e:
        SAETrainConfig(architecture="gated").validate()
    assert str(e.value) == f"unknown SAE architecture 'gated'; known: {', '.join(ARCHITECTURES)}"
    assert set(ARCHITECTURES) >= {"topk", "batchtopk"}
    assert all(a.name == key for key, a in ARCHITECTURES.items())
