import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


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
