"""`interp circuits discover | track | compare` as a user runs them (subprocesses, offline)."""

import json
import os
import subprocess
import sys

import pytest


def run(*args):
    return subprocess.run([sys.executable, "-c", "from interp.cli import main; main()", *args],
                          capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=600)


@pytest.fixture(scope="module")
def discovered(tmp_path_factory):
    out = tmp_path_factory.mktemp("circ") / "base"
    r = run("circuits", "discover", "--task", "add_sub", "--n", "40", "--n-eval", "40", "--batch-size", "20",
            "--splits", "2", "--out", str(out))
    assert r.returncode == 0, r.stderr
    return out, r.stdout


def test_discover_writes_circuit_and_picture(discovered):
    out, stdout = discovered
    d = json.loads((out / "circuit.json").read_text())
    assert d["model"] == "pythia-mini" and d["task"] == "add_sub" and d["metric"] == "kl" and d["method"] == "eap-ig"
    assert 0 < d["n_edges_kept"] <= 24 and d["share_kept"] == pytest.approx(d["n_edges_kept"] / 463)
    assert d["faithfulness"] == pytest.approx(d["evaluation"]["faithfulness"])
    assert [c["percent"] for c in d["faithfulness_curve"]] == list(range(1, 11))
    assert 0 <= d["robustness"]["edge_jaccard"] <= 1
    assert (out / "circuit.html").stat().st_size > 1000 and (out / "plotly.min.js").exists()
    assert "faithfulness" in stdout and "robustness over 2 disjoint splits" in stdout


def test_compare_two_circuits(discovered, tmp_path):
    out, _ = discovered
    other = tmp_path / "eap"
    assert run("circuits", "discover", "--attribution", "eap", "--n", "40", "--n-eval", "20", "--no-curve",
               "--out", str(other)).returncode == 0
    r = run("circuits", "compare", str(out), str(other), "--count-by", "target", "--json", str(tmp_path / "cmp.json"))
    assert r.returncode == 0, r.stderr
    cmp = json.loads((tmp_path / "cmp.json").read_text())[0]
    assert cmp["count_by"] == "target" and 0 <= cmp["edge_jaccard"] <= 1 and set(cmp["layer_change"]) == set("01234")


@pytest.mark.parametrize("args,msg", [
    (["discover", "--task", "nope"], "unknown task"),
    (["discover", "--attribution", "acdc"], "--attribution must be eap or eap-ig"),
    (["discover", "--metric", "mse"], "--metric must be kl, logit_diff or prob_diff"),
    (["discover", "--top-percent", "0"], "--top-percent must be in (0, 100]"),
    (["discover", "--splits", "1"], "--splits must be 0"),
    (["track", "--method", "qlora"], "--method must be full or lora"),
    (["track", "--count-by", "middle"], "--count-by must be"),
    (["compare", "one.json"], "at least two circuits"),
])
def test_bad_input_is_one_error_line(cli, args, msg, tmp_path):
    extra = [] if args[0] == "compare" else ["--out", str(tmp_path / "x")]
    r = cli("circuits", *args, *extra)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: ") and msg in lines[0], r.stderr
    assert not (tmp_path / "x").exists()


def test_compare_rejects_a_non_circuit(cli, tmp_path):
    (tmp_path / "a.json").write_text("{}")
    r = cli("circuits", "compare", str(tmp_path / "a.json"), str(tmp_path / "a.json"))
    assert r.returncode == 2 and "not a circuit file" in r.stderr


@pytest.mark.slow
def test_track_full_and_lora(cli, tmp_path):
    """Fine-tune briefly, discover at each checkpoint (LoRA merged), compare, resume without recomputing."""
    for method in ("full", "lora"):
        out = tmp_path / method
        args = ("circuits", "track", "--method", method, "--steps", "40", "--checkpoint-every", "20", "--n", "20", "--n-eval", "20",
                "--splits", "2", "--out", str(out))
        r = cli(*args)
        assert r.returncode == 0, r.stderr
        summary = json.loads((out / "track.json").read_text())
        assert [c["step"] for c in summary["checkpoints"]] == [0, 20, 40]
        assert [c["to"] for c in summary["consecutive"]] == [20, 40]
        assert all(0 <= c["node_jaccard"] <= 1 and 0 <= c["edge_jaccard"] <= 1 for c in summary["vs_base"])
        assert json.loads((out / "circuits/step-40/circuit.json").read_text())["config"]["n_eval"] == 20
        assert summary["checkpoints"][-1]["accuracy"] > summary["checkpoints"][0]["accuracy"]
    before = (out / "circuits/step-20/circuit.json").stat().st_mtime
    assert cli(*args).returncode == 0  # resumes: nothing recomputed
    assert (out / "circuits/step-20/circuit.json").stat().st_mtime == before
    r = cli("circuits", "compare", str(tmp_path / "lora"))
    assert r.returncode == 0 and "step-40" in r.stdout


def test_circuit_lora_end_to_end(tmp_path):
    """A tiny run: both circuits, the probe, the allocation, four trained methods, loadable adapters, a table."""
    from peft import PeftModel

    from interp.loading import load_model

    out = tmp_path / "cl"
    r = run("circuit-lora", "--probe-steps", "10", "--epochs", "0.2", "--n-circuit", "40", "--n-circuit-eval", "40", "--out", str(out))
    assert r.returncode == 0, r.stderr
    for method in ("lora", "adalora", "circuit_lora", "full"):
        assert method in r.stdout
    res = json.loads((out / "results.json").read_text())
    rows = {row["method"]: row for row in res["rows"]}
    assert rows["lora"]["trainable"] == rows["lora"]["formula"] == 16 * 128 * 8 * 4
    assert rows["circuit_lora"]["trainable"] == rows["circuit_lora"]["formula"] < rows["lora"]["trainable"]
    assert len(res["allocation"]["critical_layers"]) == 1
    for method in ("lora", "adalora", "circuit_lora"):
        ckpt = sorted((out / method / "checkpoints").glob("step-*"))[-1]
        PeftModel.from_pretrained(load_model("pythia-mini", bridge=False).model, ckpt)
    for when in ("before", "after"):
        assert json.loads((out / f"circuits/{when}.json").read_text())["config"]["n_eval"] == 40


@pytest.mark.parametrize("args,msg", [
    (["--task", "nope"], "unknown task"),
    (["--r-other", "0"], "ranks must be >= 1"),
    (["--critical-layers", "topk:0"], "selects nothing"),
    (["--critical-layers", "layers:4"], "layers must be integers in 0..3"),
    (["--count-by", "middle"], "--count-by must be"),
])
def test_circuit_lora_bad_input(cli, args, msg, tmp_path):
    r = cli("circuit-lora", *args, "--out", str(tmp_path / "x"))
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and msg in lines[0], r.stderr
    assert not (tmp_path / "x").exists()


def test_circuit_lora_compositional(tmp_path):
    """Union of the add_sub and mul_div circuits, cut to the direct circuit's size, drives one allocation."""
    out = tmp_path / "comp"
    r = run("circuit-lora", "--probe-steps", "5", "--epochs", "0.1", "--n-circuit", "20", "--n-circuit-eval", "20", "compositional", "--out", str(out))
    assert r.returncode == 0, r.stderr
    res = json.loads((out / "compositional.json").read_text())
    assert [row["method"] for row in res["rows"]] == ["lora", "circuit_lora_direct", "circuit_lora_union"]
    assert set(res["allocations"]) == {"direct", "union"}
    for when in ("before", "after"):
        direct = json.loads((out / f"circuits/compositional-{when}.json").read_text())["n_edges_kept"]
        assert 0 <= res["union_vs_direct"][when]["edge_jaccard"] <= 1 and direct > 0
