import pytest
import torch

from services.device import describe_device, inference_dtype, resolve_device, xgboost_device
from services.errors import InvalidInputError


def test_env_var_forces_cpu(monkeypatch):
    monkeypatch.setenv("LUCID_DEVICE", "cpu")
    assert resolve_device() == torch.device("cpu")
    assert xgboost_device() == "cpu"


def test_auto_prefers_cuda_then_mps_then_cpu(monkeypatch):
    monkeypatch.delenv("LUCID_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr("services.device._mps_available", lambda: False)
    assert resolve_device() == torch.device("cpu")
    monkeypatch.setattr("services.device._mps_available", lambda: True)
    assert resolve_device() == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device() == torch.device("cuda")


def test_explicit_argument_beats_env(monkeypatch):
    monkeypatch.setenv("LUCID_DEVICE", "cuda")
    assert resolve_device("cpu").type == "cpu"


@pytest.mark.parametrize("bad", ["tpu", "gpu0", "cuda:x"])
def test_unknown_device_is_a_clear_error(bad):
    with pytest.raises(InvalidInputError, match="device"):
        resolve_device(bad)


def test_missing_cuda_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(InvalidInputError, match="no CUDA GPU"):
        resolve_device("cuda")


def test_half_precision_only_on_cuda():
    assert inference_dtype(torch.device("cuda")) == torch.float16
    assert inference_dtype(torch.device("cpu")) == torch.float32
    assert inference_dtype(torch.device("mps")) == torch.float32


def test_describe_device(device):
    info = describe_device(torch.device(device))
    assert info.type == device
    assert info.name
    assert info.half_precision == (device == "cuda")
