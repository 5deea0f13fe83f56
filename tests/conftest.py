import os
import sys
from typing import NamedTuple

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# the cores shared among the test workers (pytest-xdist), for torch here and the commands the tests launch
THREADS = max(1, min(2, (os.cpu_count() or 1) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))))
os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))
torch.set_num_threads(THREADS)


@pytest.fixture(scope="session")
def tok():
    from interp.tokenizer import load_tokenizer

    return load_tokenizer()


@pytest.fixture(scope="session")
def ar():
    from interp.loading import load_model

    return load_model("pythia-mini", bridge=False)


@pytest.fixture(scope="session")
def dlm():
    from interp.loading import load_model

    return load_model("mdlm-mini", bridge=False)


class Result(NamedTuple):
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(capsys, monkeypatch):
    """`interp ARGS` in this process (`interp.cli.main`, argv and all; no interpreter start-up): a Result."""
    import interp.cli

    if not interp.cli.app.registered_commands:
        interp.cli.register_all()
    monkeypatch.setattr(interp.cli, "register_all", lambda: None)  # main() would add every command again

    def call(*args):
        monkeypatch.setattr(sys, "argv", ["interp", *map(str, args)])
        capsys.readouterr()
        try:
            interp.cli.main()
            code = 0
        except SystemExit as e:
            code = e.code
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return call


def one_line_error(r, msg):
    """Exit code 2 and one stderr line, `error: ...` holding `msg`."""
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and msg in lines[0], r.stderr
