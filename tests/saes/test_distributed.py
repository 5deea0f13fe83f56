"""train-sae under torchrun: two gloo processes on this CPU give the SAEs one process gives, data-parallel
and hook-parallel; a hook-parallel run stopped by Ctrl-C resumes under torchrun."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from saes import SAETrainConfig, train_sae

HOOKS = ["blocks.1.hook_resid_post", "blocks.2.hook_resid_post"]
# small model batches and buffer: the model runs on 24k tokens, not the 65k a default buffer fills
SMALL = dict(hooks=HOOKS, tokens=8 * 1024, batch_size=1024, width=256, eval_tokens=4096, feature_tokens=4096,
             checkpoint_every=4, model_batch=16, buffer_batches=2)


def argv(out, **extra) -> list[str]:
    args = ["--out", str(out)]
    for key, value in {**SMALL, **extra}.items():
        flag = "--" + ("hook" if key == "hooks" else key.replace("_", "-"))
        for v in value if isinstance(value, list) else [value]:
            args += [flag] if v is True else [flag, str(v)]
    return args


def torchrun(*args, **popen) -> subprocess.Popen:
    """`torchrun --standalone --nproc-per-node 2 -m interp train-sae ...`, one thread per process."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "interp", "train-sae", *args]
    return subprocess.Popen(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **popen)


def finish(proc: subprocess.Popen) -> str:
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]
    return out


def weights(run, name):
    return load_file(run / "saes" / name / "sae_weights.safetensors")


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist") / "one"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each torchrun process
    try:
        return train_sae(SAETrainConfig(out=str(out), **SMALL), show_progress=False).run_dir
    finally:
        torch.set_num_threads(threads)


def test_hook_parallel_equals_one_process(one_process, tmp_path):
    """Each rank trains one hook's SAE on the global batch of that hook: the same SAEs to float tolerance (the
    model runs on other batch shapes in each rank, which rounds its activations differently in the last bit)."""
    finish(torchrun(*argv(tmp_path / "hp", distribute_hooks=True)))
    for hook in HOOKS:
        a, b = weights(one_process, f"{hook}-k32"), weights(tmp_path / "hp", f"{hook}-k32")
        for key in a:
            torch.testing.assert_close(a[key], b[key], msg=lambda m: f"{hook} {key}: {m}")


def test_data_parallel_equals_one_process(one_process, tmp_path):
    """Each rank takes half of every batch and the gradients are averaged: the same SAEs to float tolerance.
    Summing two half-batch gradients rounds differently from one full-batch gradient, and now and then that
    flips a near-tie in a row's top k, which moves that latent's weights by a learning-rate step; so all but a
    few latents agree to 1e-4, every weight to 1e-2, and the evaluation to 1e-4."""
    finish(torchrun(*argv(tmp_path / "dp")))
    ours = json.loads((tmp_path / "dp" / "metrics.json").read_text())
    ref = json.loads((one_process / "metrics.json").read_text())
    for hook in HOOKS:
        name = f"{hook}-k32"
        a, b = weights(one_process, name), weights(tmp_path / "dp", name)
        for key in a:
            torch.testing.assert_close(a[key], b[key], atol=1e-2, rtol=0)
        row_diff = (a["W_dec"] - b["W_dec"]).abs().amax(1)
        assert (row_diff < 1e-4).float().mean() >= 0.95, row_diff
        assert abs(ours[name]["explained_variance"] - ref[name]["explained_variance"]) < 1e-4


def test_interrupted_torchrun_resumes(one_process, tmp_path):
    """Ctrl-C (SIGINT to the whole process group, as a terminal sends it) stops both ranks at the same step
    with a checkpoint and a non-zero exit; `--resume` under torchrun finishes the run."""
    out = tmp_path / "hp"
    proc = torchrun(*argv(out, distribute_hooks=True, checkpoint_every=1, tokens=64 * 1024),
                    start_new_session=True)
    checkpoint = out.with_name("hp.partial") / "checkpoint" / "progress.json"
    deadline = time.time() + 300
    while not checkpoint.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGINT)
    text, _ = proc.communicate(timeout=300)
    assert proc.returncode != 0, text[-2000:]
    step = json.loads(checkpoint.read_text())["step"]
    assert 1 <= step < 64, text[-2000:]
    saved = {p.parent.name for p in checkpoint.parent.glob("*/trainer_state.pt")}
    assert saved == {f"{h}-k32" for h in HOOKS}  # both ranks wrote their SAE
    finish(torchrun(*argv(out, distribute_hooks=True, checkpoint_every=1, tokens=64 * 1024), "--resume"))
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {f"{h}-k32" for h in HOOKS}
