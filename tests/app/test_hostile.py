"""The app against a hostile caller: long texts, long generations, cancelled runs, NUL bytes, FIFOs and links
in the runs directory, and HTML in error messages. Each one gets one clear line, or is skipped, promptly."""

import os
import shutil
import threading
import time

import httpx
import pytest
from gradio_client import Client

from .conftest import SAE
from .test_app import AR, DLM

PROMPT = "12 plus 7 is"


@pytest.fixture(scope="module")
def client(served):
    return Client(served[0], verbose=False)


def steer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "interp-steer"]


def test_the_ui_states_the_caps(served):
    props = [c.get("props", {}) for c in httpx.get(served[0] + "config").json()["components"]]
    infos = [p.get("info") or "" for p in props]
    assert sum("at most 2000 characters" in i and "context length" in i for i in infos) == 3
    assert any(p.get("label") == "tokens (1 to 64)" for p in props)


def test_long_texts_are_refused(client):
    with pytest.raises(Exception, match=r"the text is 3000 characters; the app takes at most 2000$"):
        client.predict(AR, 1, "x " * 1500, api_name="/test_text")
    with pytest.raises(Exception, match=r"the text is 2001 characters; the app takes at most 2000$"):
        client.predict(AR, "y" * 2001, api_name="/search")
    # under the character cap, over the model's context length (128 tokens)
    with pytest.raises(Exception, match=r"the text is 3\d\d tokens; the model reads at most 128 tokens \(its context"):
        client.predict(AR, 1, " 7" * 300, api_name="/test_text")
    with pytest.raises(Exception, match=r"the text is 3\d\d tokens; the model reads at most 128 tokens"):
        client.predict(AR, " 7" * 300, api_name="/search")
    with pytest.raises(Exception, match=r"the prompt is 10\d tokens and 64 more were asked for; the model reads at"):
        client.predict(DLM, 1, " 7" * 100, 0, 2, "all", 64, api_name="/steer")


def test_generation_length_is_capped(client):
    job = client.submit(AR, 1, PROMPT, 8, 2, "all", 1_000_000, api_name="/steer")
    with pytest.raises(Exception, match=r"tokens must be 1 to 64 in the app, got 1000000$"):
        job.result(timeout=60)


def test_steering_streams_one_model_call_at_a_time(client):
    job = client.submit(AR, 1, PROMPT, 8, 0, "all", 4, api_name="/steer")
    final = job.result(timeout=60)
    outputs = job.outputs()
    assert len(outputs) == 8 and outputs[-1] == final  # 4 default tokens, then 4 steered
    assert outputs[0].count("<i></i>") == 1 and outputs[3].count("<i></i>") == 1 and "<i></i>" not in final


def test_a_cancelled_steer_stops(client):
    job = client.submit(DLM, 1, PROMPT, 0, 8, "all", 64, api_name="/steer")
    deadline = time.monotonic() + 60
    while not job.outputs() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert steer_threads(), "the denoising run is not paced by the client"
    job.cancel()
    while steer_threads() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not steer_threads(), "the denoising run went on after the client cancelled"
    assert len(job.outputs()) < 2 * 65  # stopped before the end: 64 steps and a result, twice


def test_a_closed_steer_makes_no_more_model_calls(runs_dir):
    from apps.features import FeatureBrowser
    from apps.runs import RunsDir

    browser = FeatureBrowser(RunsDir(runs_dir))
    for rel in (AR, DLM):
        model = browser._loaded(rel)[0].model
        calls = []
        handle = model.register_forward_hook(lambda *_: calls.append(1))
        try:
            steps = browser.steer(rel, 1, PROMPT, 8, 2, "all", 64)
            next(steps), next(steps)
            made = len(calls)
            steps.close()
            time.sleep(0.2)
            assert 1 <= made <= 2 and len(calls) == made and not steer_threads(), rel
        finally:
            handle.remove()


@pytest.mark.parametrize("api, args", [("/allocation", ()), ("/unlearn_features", ()), ("/feature_page", (1,)),
                                       ("/circuit", (5, 0, ["v"]))])
def test_a_nul_byte_in_a_path_is_one_line(client, api, args):
    with pytest.raises(Exception, match=r"^a run path cannot contain a NUL byte$"):
        client.predict("circuit-lora/\x00allocation.json", *args, api_name=api)


def test_error_messages_are_escaped(client):
    with pytest.raises(Exception) as e:
        client.predict('"><img src=x onerror=alert(1)>.json', api_name="/allocation")
    assert "<img" not in str(e.value)
    assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;.json is not an allocation.json" in str(e.value)


def _release(fifos):
    """Open each FIFO for writing, so a reader blocked on it (the old scan) gets end of file."""
    for fifo in fifos:
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass  # no reader waiting


def test_fifos_and_links_out_are_skipped(runs_dir, tmp_path):
    from apps.runs import RunsDir

    root = tmp_path / "runs"
    shutil.copytree(runs_dir, root)
    (tmp_path / "outside").mkdir()
    shutil.copy(root / "circuits" / "add_sub-eap" / "circuit.json", tmp_path / "outside" / "circuit.json")
    fake_sae = root / "fifo" / "saes" / SAE
    fake_sae.mkdir(parents=True)
    (fake_sae / "features.json").write_text("{}")
    fifos = [root / "pipe.json", root / "fifo" / "allocation.json", fake_sae / "cfg.json"]
    for fifo in fifos:
        os.mkfifo(fifo)
    (root / "leak.json").symlink_to(tmp_path / "outside" / "circuit.json")
    (root / "zero.json").symlink_to("/dev/zero")
    (root / "loop.json").symlink_to("loop.json")

    found = []
    scan = threading.Thread(target=lambda: found.append(RunsDir(root).scan()), daemon=True)
    start = time.monotonic()
    scan.start()
    scan.join(timeout=10)
    _release(fifos)
    assert found, "the scan hung on a FIFO or failed on a link"
    assert time.monotonic() - start < 5
    assert found[0] == RunsDir(runs_dir).scan()  # the real runs, and nothing else
    with pytest.raises(Exception, match=r"^fifo/allocation.json is not a regular file or a directory$"):
        RunsDir(root).path("fifo/allocation.json")
