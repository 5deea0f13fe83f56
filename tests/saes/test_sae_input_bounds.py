"""train-sae and eval-sae refuse bad input with one line, exit 2 and nothing written or rewritten: a context
size above the model's positions, non-finite floats, empty or binary dataset files, non-positive
--tokens, and an SAE whose cfg.json names another hook than its directory and run."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from interp.errors import InterpError
from tests.conftest import one_line_error

ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}
SAE = "blocks.2.hook_resid_post-k32"


def run(*args):
    return subprocess.run([sys.executable, "-c", "from interp.cli import main; main()", *args],
                          capture_output=True, text=True, env=ENV, timeout=300)


def snapshot(path):
    """Every file under `path` with its bytes and mtime: an unchanged snapshot means nothing was written."""
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def sae_run(tmp_path_factory):
    from saes import SAETrainConfig, train_sae

    out = tmp_path_factory.mktemp("bounds") / "run"
    train_sae(SAETrainConfig(tokens=2048, batch_size=1024, out=str(out), eval_tokens=2048, feature_tokens=1024),
              show_progress=False)
    return out


@pytest.fixture
def run_copy(sae_run, tmp_path):
    path = tmp_path / "run"
    shutil.copytree(sae_run, path)
    return path


def dataset(tmp_path, name, content: bytes):
    path = tmp_path / name
    path.write_bytes(content)
    return str(path)


@pytest.mark.parametrize("args,msg", [
    (["--context-size", "4096"], "context size 4096 is above the model's limit of 128 tokens "
                                 "(max_position_embeddings in its config); use a context size of at most 128"),
    (["--context-size", "256"], "context size 256 is above the model's limit of 128 tokens"),
    (["--model", "mdlm-mini", "--context-size", "129"], "context size 129 is above the model's limit of 128"),
    (["--lr", "nan"], "lr must be a finite number > 0 (got nan)"),
    (["--lr", "inf"], "lr must be a finite number > 0 (got inf)"),
    (["--dataset", "{tmp}/empty.txt"], "empty.txt is empty; it needs one text per line (.txt)"),
    (["--dataset", "{tmp}/binary.jsonl"], "binary.jsonl is not UTF-8 text"),
])
def test_train_sae_refuses(cli, tmp_path, args, msg):
    dataset(tmp_path, "empty.txt", b"")
    dataset(tmp_path, "binary.jsonl", bytes(range(128, 256)) * 64)
    out = tmp_path / "out" / "run"
    r = cli("train-sae", "--out", str(out), "--tokens", "4096", *[a.format(tmp=tmp_path) for a in args])
    one_line_error(r, msg)
    assert not (tmp_path / "out").exists()


def test_train_sae_context_in_a_process(tmp_path):
    """The OOM-killed case as a user runs it: exit 2 and one line before any training or writing."""
    out = tmp_path / "out" / "run"
    r = run("train-sae", "--out", str(out), "--context-size", "4096", "--tokens", "4096")
    one_line_error(r, "context size 4096 is above the model's limit of 128 tokens")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("tokens", ["0", "-5"])
def test_eval_sae_refuses_non_positive_tokens(cli, run_copy, tokens):
    before = snapshot(run_copy)
    one_line_error(cli("eval-sae", str(run_copy), "--tokens", tokens), f"--tokens must be at least 1 (got {tokens})")
    assert snapshot(run_copy) == before


def test_eval_sae_refuses_an_edited_hook_name(cli, run_copy):
    """blocks.1 has blocks.2's width, so the old code evaluated at blocks.1 and filed it under blocks.2."""
    cfg = run_copy / "saes" / SAE / "cfg.json"
    cfg.write_text(cfg.read_text().replace("blocks.2.hook_resid_post", "blocks.1.hook_resid_post"))
    before = snapshot(run_copy)
    one_line_error(cli("eval-sae", str(run_copy), "--tokens", "1024"),
                   f"SAE {SAE}: cfg.json says hook_name 'blocks.1.hook_resid_post' but the directory name says "
                   "'blocks.2.hook_resid_post'")
    assert snapshot(run_copy) == before


def test_eval_sae_refuses_a_hook_the_run_did_not_train(cli, run_copy):
    renamed = run_copy / "saes" / "blocks.1.hook_resid_post-k32"
    (run_copy / "saes" / SAE).rename(renamed)
    cfg = renamed / "cfg.json"
    cfg.write_text(cfg.read_text().replace("blocks.2.hook_resid_post", "blocks.1.hook_resid_post"))
    before = snapshot(run_copy)
    one_line_error(cli("eval-sae", str(run_copy), "--tokens", "1024"),
                   "cfg.json says hook_name 'blocks.1.hook_resid_post' but the run's config.json trained "
                   "blocks.2.hook_resid_post")
    assert snapshot(run_copy) == before


def test_eval_sae_refuses_a_run_context_above_the_model(cli, run_copy):
    config = run_copy / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "context_size": 4096}))
    before = snapshot(run_copy)
    one_line_error(cli("eval-sae", str(run_copy), "--tokens", "1024"),
                   "context size 4096 is above the model's limit of 128 tokens")
    assert snapshot(run_copy) == before


def test_evaluation_paths_check_the_context(sae_run):
    from interp.loading import load_model
    from saes.evaluate import evaluate_saes
    from saes.features import feature_stats
    from saes.train import load_sae

    loaded = load_model("pythia-mini")
    sae = load_sae(sae_run / "saes" / SAE)
    with pytest.raises(InterpError, match="context size 256 is above the model's limit of 128"):
        evaluate_saes(loaded, {SAE: ("blocks.2.hook_resid_post", sae)}, context_size=256, n_tokens=256)
    with pytest.raises(InterpError, match="context size 256 is above the model's limit of 128"):
        feature_stats(loaded, "blocks.2.hook_resid_post", sae, context_size=256, n_tokens=256)


@pytest.mark.parametrize("field,value,msg", [
    ("lr", float("nan"), "lr must be a finite number > 0"),
    ("aux_coefficient", float("inf"), "aux-coefficient must be a finite number >= 0"),
    ("warmup_fraction", float("nan"), "warmup-fraction must be between 0 and 1"),
    ("decay_start", 1.5, "decay-start must be between 0 and 1"),
])
def test_sae_config_floats(field, value, msg):
    from saes import SAETrainConfig

    with pytest.raises(InterpError, match=msg):
        SAETrainConfig(**{field: value}).validate()
