"""The one default device of every command (`model.device`): `eval`/`prefs`/`clone` and `prepare`/`ingest`
pick the same one when none is named; under torchrun a plain "cuda" is the rank's own GPU."""

import torch

from higgs_tune.model.device import default_device, process_device


def test_a_named_device_is_kept_and_none_is_cuda_if_any(monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert default_device("cpu") == process_device("cpu") == "cpu"
    assert default_device("cuda:3") == process_device("cuda:3") == "cuda:3"
    assert process_device("cuda") == "cuda:1"
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert default_device(None) == expected
    assert process_device(None) == ("cuda:1" if expected == "cuda" else "cpu")
