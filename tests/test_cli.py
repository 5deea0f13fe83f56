"""The `interp` command as a user runs it: a subprocess, offline."""

import os
import subprocess
import sys

import pytest

ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}


def run(*args):
    return subprocess.run([sys.executable, "-c", "from interp.cli import main; main()", *args],
                          capture_output=True, text=True, env=ENV, timeout=300)


def test_help_lists_every_command():
    r = run("--help")
    assert r.returncode == 0
    for cmd in ["models", "eval", "finetune", "tasks", "zoo"]:
        assert cmd in r.stdout


def test_models_and_eval():
    r = run("models")
    assert r.returncode == 0 and "pythia-mini" in r.stdout and "mdlm-mini" in r.stdout
    r = run("eval", "--model", "pythia-mini", "--task", "add_sub", "--n", "50")
    assert r.returncode == 0 and "add_sub" in r.stdout


def test_tasks_show_write_check(tmp_path):
    assert "LCM" in run("tasks", "show", "lcm", "--n", "2").stdout
    out = tmp_path / "t.csv"
    assert run("tasks", "write", "add_sub", str(out), "--n", "10").returncode == 0
    assert "10 valid rows" in run("tasks", "check", str(out)).stdout


@pytest.mark.parametrize("args,msg", [
    (["eval", "--model", "pythia-mini", "--task", "nope"], "unknown task"),
    (["eval", "--model", "no/such-model", "--task", "add_sub"], "not available offline"),
    (["eval", "--model", "./missing-dir", "--task", "add_sub"], "does not exist"),
    (["eval", "--model", "pythia-mini", "--task", "add_sub", "--split", "dev"], "unknown split"),
    (["zoo", "train", "nope"], "unknown zoo model"),
    (["finetune", "--method", "lora", "--lora-r", "0", "--steps", "1"], "rank must be >= 1"),
])
def test_bad_input_one_line_nonzero(cli, args, msg, tmp_path):
    r = cli(*args, *(["--out", str(tmp_path / "o")] if args[0] == "finetune" else []))
    assert r.returncode != 0
    lines = [l for l in r.stderr.strip().splitlines() if l.strip()]
    assert len(lines) == 1 and msg in lines[0], r.stderr
