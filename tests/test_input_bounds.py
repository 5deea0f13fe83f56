"""Bad input fails early with one line, a non-zero exit and nothing written: task sizes, model weights,
context size against the model's positions, dataset files, and non-finite or non-positive floats."""

import math
import os
import random
import shutil
import subprocess
import sys

import pytest

from interp.errors import InterpError
from tests.conftest import one_line_error
from interp.zoo import get_entry

ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-c", "from interp.cli import main; main()", *args],
                          capture_output=True, text=True, env=ENV, timeout=300, cwd=cwd)


# task sizes


def test_eval_refuses_more_examples_than_the_split_holds():
    r = run("eval", "--model", "pythia-mini", "--task", "add_sub", "--n", "100000000")
    one_line_error(r, "task 'add_sub' split 'test' holds 924 distinct examples; n must be at most 924 "
                      "(got 100000000)")


def test_make_examples_bounds():
    from interp.tasks import make_examples, split_count

    assert len(make_examples("function", "test", split_count("function", "test"))) == 210  # the whole split
    with pytest.raises(InterpError, match="holds 210 distinct examples; n must be at most 210"):
        make_examples("function", "test", 211)
    assert len(make_examples("function", "test", 10**9, at_most=True)) == 210  # clamped, and it returns


@pytest.mark.parametrize("task", ["add_sub", "mul_div", "sequence", "lcm", "function", "compositional"])
def test_prompt_spaces_cover_the_samplers(task):
    """The counted prompts must include everything a sampler draws, or a split's size would be wrong."""
    from interp.tasks import PROMPTS, TASKS

    rng = random.Random(0)
    missing = {TASKS[task].sample(rng).clean for _ in range(3000)}
    for prompt in PROMPTS[task]():  # streamed: lcm has 2M prompts
        missing.discard(prompt)
    assert not missing, sorted(missing)[:3]


# model weights


@pytest.fixture
def model_copy(tmp_path):
    path = tmp_path / "model"
    shutil.copytree(get_entry("pythia-mini").path, path)
    return path


def damage(model_dir, how):
    weights = model_dir / "model.safetensors"
    data = weights.read_bytes()
    if how == "missing":
        weights.unlink()
        return "holds no weights; a model directory needs model.safetensors or pytorch_model.bin"
    weights.write_bytes({"garbage": b"not a safetensors file" * 10, "truncated": data[: len(data) // 2],
                         "empty": b""}[how])
    return f"cannot load the weights in {model_dir}, corrupt or incomplete"


@pytest.mark.parametrize("how", ["garbage", "missing"])
def test_bad_weights_cli_one_line(cli, model_copy, how):
    msg = damage(model_copy, how)
    one_line_error(cli("eval", "--model", str(model_copy), "--task", "add_sub", "--n", "5"), msg)


@pytest.mark.parametrize("how", ["garbage", "truncated", "empty", "missing"])
def test_bad_weights(model_copy, how):
    from interp.loading import load_model

    msg = damage(model_copy, how)
    with pytest.raises(InterpError, match=msg.replace("(", r"\(")) as e:
        load_model(str(model_copy), bridge=False)
    assert len(str(e.value).splitlines()) == 1


# context size


@pytest.mark.parametrize("name", ["pythia-mini", "mdlm-mini"])
def test_context_above_the_model_limit(name):
    from interp.activations import ActivationStream, StreamConfig
    from interp.loading import load_model, max_context

    loaded = load_model(name)
    assert max_context(loaded) == max_context(loaded.bridge) == max_context(loaded.model) == 128
    cfg = StreamConfig(hooks=["blocks.1.hook_resid_post"], context_size=129, model_batch=2)
    with pytest.raises(InterpError, match=r"context size 129 is above the model's limit of 128 tokens "
                                          r"\(max_position_embeddings in its config\)"):
        ActivationStream(loaded.bridge, loaded.tokenizer, cfg)
    ActivationStream(loaded.bridge, loaded.tokenizer, StreamConfig(hooks=cfg.hooks, context_size=128, model_batch=2))


# dataset files


@pytest.mark.parametrize("name,content,msg", [
    ("empty.txt", b"", "is empty"),
    ("blank.txt", b"\n  \n\n", "is empty"),
    ("empty.jsonl", b"", "is empty"),
    ("binary.txt", bytes(range(256)) * 8, "is not UTF-8 text"),
    ("nul.jsonl", b'{"text": "1 plus 2 is 3."}\x00\x00\n', "is binary"),
], ids=["empty.txt", "blank.txt", "empty.jsonl", "binary.txt", "nul.jsonl"])
def test_bad_dataset_files(tmp_path, tok, name, content, msg):
    from interp.datasets import check_dataset, token_batches

    path = tmp_path / name
    path.write_bytes(content)
    for check in (lambda: check_dataset(str(path)), lambda: token_batches(str(path), tok, 4, 16)):
        with pytest.raises(InterpError, match=f"dataset file {path} {msg}"):
            check()


def test_dataset_with_no_text(tmp_path, tok):
    from interp.datasets import check_dataset

    path = tmp_path / "d.jsonl"
    path.write_text("\n\n")
    with pytest.raises(InterpError, match="is empty"):
        check_dataset(str(path))
    check_dataset("corpus")
    check_dataset("some-org/some-dataset")  # a hub name: checked when it is streamed
    with pytest.raises(InterpError, match="does not exist"):
        check_dataset(str(tmp_path / "missing.txt"))


# non-finite and non-positive floats


NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize("field,value,msg", [
    ("lr", NAN, "lr must be a finite number > 0 (got nan)"),
    ("lr", INF, "lr must be a finite number > 0 (got inf)"),
    ("lr", -1e-3, "lr must be a finite number > 0"),
    ("lora", "nan-critical", "lr-critical must be a finite number > 0"),
    ("weight_decay", NAN, "weight-decay must be a finite number >= 0"),
    ("weight_decay", -0.1, "weight-decay must be a finite number >= 0"),
])
def test_finetune_config_floats(field, value, msg):
    from interp.finetune import FinetuneConfig, LoRAOptions

    if value == "nan-critical":
        value = LoRAOptions(lr_critical=NAN)
    with pytest.raises(InterpError, match=msg.replace("(", r"\(").replace(")", r"\)")):
        FinetuneConfig(**{field: value}).validate()
    FinetuneConfig(weight_decay=0.0).validate()


def test_finetune_cli_nan_lr_writes_nothing(cli, tmp_path):
    out = tmp_path / "ft"
    r = cli("finetune", "--lr", "nan", "--steps", "1", "--out", str(out))
    one_line_error(r, "lr must be a finite number > 0 (got nan)")
    assert not out.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("field,value,msg", [
    ("lr", NAN, "--lr must be a finite number > 0"),
    ("steering_coef", NAN, "--steering-coef must be a finite number > 0"),
    ("steering_coef", 0.0, "--steering-coef must be a finite number > 0"),
    ("retain_weight", INF, "--retain-weight must be a finite number >= 0"),
    ("reg_weight", NAN, "--reg-weight must be a finite number >= 0"),
    ("clamp", -1.0, "--clamp must be a finite number >= 0"),
    ("relearn_lrs", "1e-4,nan", "every rate > 0"),
    ("relearn_lrs", "inf", "every rate > 0"),
])
def test_unlearn_config_floats(field, value, msg):
    from saes.unlearning import from_options

    with pytest.raises(InterpError, match=msg):
        from_options(**{field: value}).validate()
    from_options(reg_weight=0.0).validate()  # 0 switches the penalty off: a valid ablation


@pytest.mark.parametrize("field,value,msg", [
    ("epochs", NAN, "--epochs must be a finite number > 0"),
    ("epochs", INF, "--epochs must be a finite number > 0"),
    ("lr", NAN, "--lr must be a finite number > 0"),
    ("lr_critical", -1.0, "--lr-critical must be a finite number > 0"),
])
def test_circuit_lora_config_floats(field, value, msg):
    from circuits.circuit_lora import CircuitLoRAConfig

    with pytest.raises(InterpError, match=msg):
        CircuitLoRAConfig(**{field: value}).validate()


def test_check_number():
    from interp.errors import check_number

    check_number("x", 1e-9)
    check_number("x", 0.0, inclusive=True)
    for bad in (0.0, -1.0, math.nan, math.inf, -math.inf):
        with pytest.raises(InterpError, match="x must be a finite number > 0"):
            check_number("x", bad)
