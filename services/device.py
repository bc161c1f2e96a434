"""The one place where the compute device is chosen.

Order: the ``LUCID_DEVICE`` environment variable if set (``cpu``, ``cuda``, ``cuda:1``, ``mps``),
else CUDA when available, then Apple MPS, else the CPU. Half precision is used on CUDA only.

Example:
    >>> from services.device import resolve_device, inference_dtype
    >>> device = resolve_device()
    >>> dtype = inference_dtype(device)
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass

import torch

from services.errors import InvalidInputError

ENV_VAR = "LUCID_DEVICE"


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(requested: str | None = None) -> torch.device:
    """Return the device to run models on.

    Args:
        requested: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``. ``None`` reads
            ``LUCID_DEVICE`` and falls back to ``"auto"``.

    Raises:
        InvalidInputError: the requested device is unknown or not present on this machine.
    """
    choice = (requested or os.environ.get(ENV_VAR) or "auto").strip().lower()
    if choice == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(choice)
    except RuntimeError as exc:
        raise InvalidInputError(f"Unknown device '{choice}'. Use auto, cpu, cuda, cuda:N or mps.") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InvalidInputError(f"Device '{choice}' was requested but no CUDA GPU is available.")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise InvalidInputError(
            f"Device '{choice}' was requested but only {torch.cuda.device_count()} GPU(s) exist."
        )
    if device.type == "mps" and not _mps_available():
        raise InvalidInputError("Device 'mps' was requested but Apple MPS is not available.")
    if device.type not in {"cpu", "cuda", "mps"}:
        raise InvalidInputError(f"Unsupported device '{choice}'. Use auto, cpu, cuda, cuda:N or mps.")
    return device


def inference_dtype(device: torch.device) -> torch.dtype:
    """Half precision on CUDA, full precision elsewhere (CPU fp16 is slow and MPS fp16 is unreliable)."""
    return torch.float16 if device.type == "cuda" else torch.float32


def xgboost_device(device: torch.device | None = None) -> str:
    """The ``device`` argument for XGBoost: ``"cuda"`` on a GPU, ``"cpu"`` otherwise."""
    device = device or resolve_device()
    return "cuda" if device.type == "cuda" else "cpu"


@dataclass(frozen=True)
class DeviceInfo:
    """What the Home page shows about the compute device."""

    type: str
    name: str
    memory_gb: float | None
    half_precision: bool
    threads: int


def describe_device(device: torch.device | None = None) -> DeviceInfo:
    """A plain description of the device: GPU name and memory, or the CPU."""
    device = device or resolve_device()
    if device.type == "cuda":
        index = device.index or 0
        props = torch.cuda.get_device_properties(index)
        return DeviceInfo(
            "cuda", props.name, round(props.total_memory / 1e9, 1), True, torch.get_num_threads()
        )
    if device.type == "mps":
        return DeviceInfo("mps", "Apple GPU (MPS)", None, False, torch.get_num_threads())
    name = platform.processor() or platform.machine() or "CPU"
    return DeviceInfo("cpu", f"CPU ({name}, {os.cpu_count()} cores)", None, False, torch.get_num_threads())


def available_devices() -> list[str]:
    """Devices present here, for parametrising tests: always ``cpu``, plus ``cuda``/``mps`` if present."""
    devices = ["cpu"]
    if torch.cuda.is_available():
        devices.append("cuda")
    if _mps_available():
        devices.append("mps")
    return devices
