"""What a command may do to a user's disk: nothing it did not make is deleted or overwritten, nothing read
back runs code, a second writer stops at once, Ctrl-C exits 130 and keeps a checkpoint. Through the real
command where a user would meet it."""

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict

import pytest
import torch

from interp.errors import InterpError
from interp.rundir import MANIFEST, RunDir, read_manifest

ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}


def interp(cwd, *args, timeout=300):
    return subprocess.run([sys.executable, "-m", "interp", *args], cwd=cwd, capture_output=True, text=True,
                          env=ENV, timeout=timeout)


def one_error_line(r, *needles):
    """Exit 2 and exactly one `error:` line that holds every needle."""
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert r.returncode == 2, r.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr[-2000:]
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


class Payload:
    """A pickle that runs a shell command when unpickled: what a hostile run directory would carry."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_crafted_finetune_checkpoint_is_refused_without_running_it(tmp_path):
    from interp.finetune import FinetuneConfig

    run, marker = tmp_path / "shared-run", tmp_path / "pwned"
    run.mkdir()
    (run / MANIFEST).write_text(json.dumps({"format": "interp.run/1", "kind": "finetune", "status": "running"}))
    (run / "config.json").write_text(json.dumps(asdict(FinetuneConfig(steps=2, out=str(run)))))
    torch.save({"step": 1, "model": Payload(marker), "optimizer": {}}, run / "state.pt")
    r = interp(tmp_path, "finetune", "--steps", "2", "--out", str(run))
    one_error_line(r, "refused to load", "state.pt")
    assert not marker.exists()
    assert (run / "state.pt").exists()  # left as it was


def test_crafted_sae_trainer_state_is_refused(tmp_path):
    from interp.checkpoint import safe_load

    marker = tmp_path / "pwned"
    torch.save({"optimizer": Payload(marker)}, tmp_path / "trainer_state.pt")
    with pytest.raises(InterpError, match="refused to load .*trainer_state.pt"):
        safe_load(tmp_path / "trainer_state.pt")
    assert not marker.exists()


def test_out_that_is_someone_elses_directory_is_refused_and_kept(tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "thesis.tex").write_text("x")
    for args in (["train-sae", "--tokens", "8192"], ["zoo", "train", "pythia-mini"],
                 ["circuit-lora", "--no-resume", "--model", "pythia-mini"], ["finetune", "--steps", "1"],
                 ["circuits", "discover", "--n", "4"]):
        r = interp(tmp_path, *args, "--out", str(victim))
        one_error_line(r, "not made by interp", str(victim))
        assert sorted(p.name for p in victim.iterdir()) == ["thesis.tex"]
        assert (victim / "thesis.tex").read_text() == "x"
    r = interp(tmp_path, "circuit-lora", "--no-resume", "--model", "no-such-model", "--out", str(victim))
    one_error_line(r)
    assert sorted(p.name for p in victim.iterdir()) == ["thesis.tex"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["victim"]  # no .partial, no lock left behind


def test_out_that_is_a_file_fails_before_any_work(tmp_path):
    (tmp_path / "notes").write_text("keep")
    r = interp(tmp_path, "train-sae", "--out", "notes")
    one_error_line(r, "notes", "not a directory")
    assert (tmp_path / "notes").read_text() == "keep"


def test_single_file_outputs_are_not_overwritten(tmp_path):
    (tmp_path / "mine.csv").write_text("keep")
    r = interp(tmp_path, "tasks", "write", "add_sub", "mine.csv")
    one_error_line(r, "mine.csv exists", "--overwrite")
    assert (tmp_path / "mine.csv").read_text() == "keep"
    assert interp(tmp_path, "tasks", "write", "add_sub", "mine.csv", "--overwrite", "--n", "3").returncode == 0
    assert (tmp_path / "mine.csv").read_text().startswith("clean,corrupted,label")


def test_unlearn_checks_sae_before_the_fine_tune(tmp_path):
    r = interp(tmp_path, "unlearn", "--sae", "/etc")
    one_error_line(r, "/etc", "not a train-sae run")
    assert not (tmp_path / "runs").exists()  # the default model's fine-tune never started


def test_finished_run_needs_overwrite_and_is_then_replaced(tmp_path):
    from saes import SAETrainConfig, train_sae

    cfg = SAETrainConfig(tokens=512, batch_size=256, buffer_batches=2, eval_tokens=512, feature_tokens=512,
                         context_size=16, out=str(tmp_path / "run"))
    first = train_sae(cfg, show_progress=False)
    assert read_manifest(first.run_dir)["status"] == "complete"
    with pytest.raises(InterpError, match="finished sae run; pass --overwrite"):
        train_sae(cfg, show_progress=False)
    (first.run_dir / "note.txt").write_text("made by the first run's owner, inside our run")
    second = train_sae(cfg, show_progress=False, overwrite=True)
    assert second.run_dir == first.run_dir and not (second.run_dir / "note.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_second_writer_stops_at_once_naming_the_first(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        lock = tmp_path / "run.lock"
        import socket

        lock.write_text(json.dumps({"pid": holder.pid, "host": socket.gethostname(), "command": "interp train-sae",
                                    "started": "then"}))
        r = interp(tmp_path, "train-sae", "--out", "run")
        one_error_line(r, f"pid {holder.pid}", "interp train-sae")
        assert not (tmp_path / "run").exists() and not (tmp_path / "run.partial").exists()
    finally:
        holder.kill()
        holder.wait()
    # the holder is gone: its lock is stale and the next run takes it over
    run = RunDir(tmp_path / "run", "sae")
    with run.writing(resume=False) as work:
        assert json.loads(lock.read_text())["pid"] == os.getpid() and work.name == "run.partial"
    assert not lock.exists() and read_manifest(tmp_path / "run")["status"] == "complete"


def test_stopped_run_needs_resume_or_overwrite(tmp_path):
    run = RunDir(tmp_path / "run", "sae")
    with pytest.raises(RuntimeError):
        with run.writing(resume=False):
            raise RuntimeError("killed")
    assert read_manifest(run.work)["status"] == "running" and not run.lock_path.exists()
    with pytest.raises(InterpError, match="stopped sae run .* --resume"):
        run.check(resume=False)
    assert run.check(resume=True) == "resume" and run.check(resume=False, overwrite=True) == "new"
    with pytest.raises(InterpError, match="holds a sae run, not a finetune run"):
        RunDir(tmp_path / "run.partial", "finetune", atomic=False).check(resume=True)


def test_ctrl_c_exits_130_and_keeps_a_checkpoint(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "interp", "train-sae", "--tokens", "2000000", "--batch-size", "512",
                             "--out", "run"], cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    ckpt = tmp_path / "run.partial" / "config.json"
    deadline = time.time() + 240
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.5)
    time.sleep(3)  # some steps in
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted; the last checkpoint is kept" in err
    progress = json.loads((tmp_path / "run.partial" / "checkpoint" / "progress.json").read_text())
    assert progress["step"] >= 1
    assert not (tmp_path / "run.lock").exists()
    r = interp(tmp_path, "train-sae", "--tokens", "2000000", "--batch-size", "512", "--out", "run")
    one_error_line(r, "stopped sae run", "--resume")


def test_config_changes_name_what_differs_and_treat_newer_options_as_their_default():
    from interp.rundir import config_changes

    defaults = {"lr": 1e-3, "hooks": ("a",), "dtype": "float32", "out": None}
    saved = {"lr": 1e-3, "hooks": ["a"], "out": "runs/x"}  # saved before `dtype` existed, as JSON
    assert config_changes(saved, defaults | {"out": "runs/y"}, defaults, ignore=("out",)) == []
    assert config_changes(saved, defaults | {"dtype": "bfloat16", "lr": 2e-3}, defaults, ignore=("out",)) == \
        ["dtype", "lr"]
