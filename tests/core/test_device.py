import pytest
import torch

from lucid.core.device import (
    autocast,
    cpu_has_native_bf16,
    describe_device,
    inference_dtype,
    needs_grad_scaler,
    resolve_device,
    xgboost_device,
)
from lucid.core.errors import InvalidInputError


def test_env_var_forces_cpu(monkeypatch):
    monkeypatch.setenv("LUCID_DEVICE", "cpu")
    assert resolve_device() == torch.device("cpu")
    assert xgboost_device() == "cpu"


def test_auto_prefers_cuda_then_mps_then_cpu(monkeypatch):
    monkeypatch.delenv("LUCID_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr("lucid.core.device._mps_available", lambda: False)
    assert resolve_device() == torch.device("cpu")
    monkeypatch.setattr("lucid.core.device._mps_available", lambda: True)
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


def test_auto_precision_per_device(monkeypatch):
    monkeypatch.delenv("LUCID_PRECISION", raising=False)
    assert inference_dtype(torch.device("cuda")) == torch.float16
    assert inference_dtype(torch.device("mps")) == torch.float32
    monkeypatch.setattr("lucid.core.device.cpu_has_native_bf16", lambda: True)
    assert inference_dtype(torch.device("cpu")) == torch.bfloat16
    monkeypatch.setattr("lucid.core.device.cpu_has_native_bf16", lambda: False)
    assert inference_dtype(torch.device("cpu")) == torch.float32


def test_precision_forced_by_env_and_argument(monkeypatch):
    monkeypatch.setenv("LUCID_PRECISION", "fp32")
    assert inference_dtype(torch.device("cuda")) == torch.float32
    assert inference_dtype(torch.device("cpu"), "bf16") == torch.bfloat16
    monkeypatch.setenv("LUCID_PRECISION", "bf16")
    assert inference_dtype(torch.device("cpu")) == torch.bfloat16


@pytest.mark.parametrize(("kind", "bad"), [("cpu", "fp16"), ("cpu", "int4"), ("mps", "bf16")])
def test_impossible_precision_is_a_clear_error(kind, bad):
    with pytest.raises(InvalidInputError, match="precision|fp32|fp16"):
        inference_dtype(torch.device(kind), bad)


def test_grad_scaler_only_for_float16():
    assert needs_grad_scaler(torch.float16)
    assert not needs_grad_scaler(torch.bfloat16)
    assert not needs_grad_scaler(torch.float32)


def test_autocast_runs_linear_layers_in_the_chosen_precision():
    layer = torch.nn.Linear(8, 4)
    x = torch.randn(3, 8)
    with autocast(torch.device("cpu"), torch.bfloat16):
        assert layer(x).dtype == torch.bfloat16
    with autocast(torch.device("cpu"), torch.float32):
        assert layer(x).dtype == torch.float32


def test_bfloat16_is_chosen_only_where_the_cpu_has_matrix_units(monkeypatch):
    monkeypatch.delenv("LUCID_PRECISION", raising=False)
    expected = torch.bfloat16 if cpu_has_native_bf16() else torch.float32
    assert inference_dtype(torch.device("cpu")) == expected


def test_describe_device(device, monkeypatch):
    monkeypatch.delenv("LUCID_PRECISION", raising=False)
    info = describe_device(torch.device(device))
    assert info.type == device
    assert info.name
    expected = {"cuda": "float16", "mps": "float32"}.get(
        device, "bfloat16" if cpu_has_native_bf16() else "float32"
    )
    assert info.precision == expected
