import json

import pytest

from interp.finetune import FinetuneConfig, LoRAOptions, batch_indices, finetune
from interp.loading import load_model


def test_batch_indices_cover_each_epoch():
    idx = [batch_indices(100, 32, 0, s) for s in range(4)]
    first_epoch = [int(i) for b in idx for i in b][:100]
    assert sorted(first_epoch) == list(range(100))


def test_short_full_finetune_raises_add_sub_accuracy(tmp_path):
    cfg = FinetuneConfig(task="add_sub", method="full", steps=120, eval_every=60, checkpoint_every=60, out=str(tmp_path))
    r = finetune(cfg)
    assert r.accuracy_after >= r.accuracy_before + 0.10, (r.accuracy_before, r.accuracy_after)
    assert (tmp_path / "checkpoints" / "step-120" / "config.json").exists()
    assert json.loads((tmp_path / "metrics.json").read_text())["accuracy_after"] == r.accuracy_after


def test_lora_finetune_resumes_from_checkpoint(tmp_path):
    from peft import PeftModel

    cfg = FinetuneConfig(task="lcm", method="lora", steps=40, eval_every=20, checkpoint_every=20, out=str(tmp_path))
    finetune(cfg)
    # a longer run on the same directory starts at step 40, not 0
    cfg.steps = 60
    r = finetune(cfg)
    assert [h["step"] for h in r.history] == [20, 40, 60]
    base = load_model("pythia-mini", bridge=False).model
    PeftModel.from_pretrained(base, tmp_path / "checkpoints" / "step-60")
    # resuming a directory that holds another run is refused, not silently mixed
    from interp.errors import InterpError

    with pytest.raises(InterpError, match="different fine-tuning run"):
        finetune(FinetuneConfig(task="add_sub", method="lora", steps=60, out=str(tmp_path)))


def test_bad_rank_is_refused(tmp_path):
    from interp.errors import InterpError

    with pytest.raises(InterpError, match="rank"):
        finetune(FinetuneConfig(method="lora", lora=LoRAOptions(r=0), steps=1, out=str(tmp_path)))
