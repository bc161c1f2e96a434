"""The one place where the compute device is chosen.

Order: the ``LUCID_DEVICE`` environment variable if set (``cpu``, ``cuda``, ``cuda:1``, ``mps``),
else CUDA when available, then Apple MPS, else the CPU.

Precision is chosen here too: float16 on CUDA; bfloat16 on CPUs with native bfloat16 instructions
(AVX-512 BF16: AMD Zen 4 and later, Intel Cooper Lake and Xeon Sapphire Rapids and later, whose AMX
tiles go further), where matrix products and convolutions run several times faster than in float32;
float32 elsewhere. ``LUCID_PRECISION`` (``auto``, ``fp32``, ``bf16``,
``fp16``) overrides it. Model weights stay in float32; only the computation runs in the lower precision
(autocast), and outputs come back as float32.

Example:
    >>> from lucid.core.device import resolve_device, inference_dtype, autocast
    >>> device = resolve_device()
    >>> with torch.inference_mode(), autocast(device, inference_dtype(device)):
    ...     logits = model(x.to(device)).float()
"""

from __future__ import annotations

import contextlib
import os
import platform
from dataclasses import dataclass

import torch

from lucid.core.errors import InvalidInputError

ENV_VAR = "LUCID_DEVICE"
PRECISION_VAR = "LUCID_PRECISION"
PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
PRECISION_NAMES = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}


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


def cpu_has_native_bf16() -> bool:
    """True on CPUs with native bfloat16 dot products (AVX-512 BF16; CPUs with AMX have them too).

    Measured on 2 cores of each kind, the review-sentiment model scored 211-217 texts/s in bfloat16
    against 68-75 in float32 on an AMD EPYC with AVX-512 BF16 and no AMX, and 298-336 against about 110-120
    on an Intel Xeon with AMX. Without these instructions bfloat16 is emulated and slower than float32.
    """
    bf16 = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    try:
        return bool(bf16 is not None and bf16())
    except (RuntimeError, AttributeError):  # very old builds without the probes
        return False


def _auto_dtype(device: torch.device) -> torch.dtype:
    if device.type == "cuda":
        return torch.float16
    if device.type == "cpu" and cpu_has_native_bf16():
        return torch.bfloat16
    return torch.float32  # MPS float16 is unreliable; emulated CPU bfloat16 is slower than float32


def inference_dtype(device: torch.device, requested: str | None = None) -> torch.dtype:
    """The precision models compute in on ``device``.

    Args:
        device: where the model runs.
        requested: ``"auto"``, ``"fp32"``, ``"bf16"`` or ``"fp16"``; ``None`` reads ``LUCID_PRECISION``
            and falls back to ``"auto"`` (float16 on CUDA, bfloat16 on CPUs with AVX-512 BF16, else float32).

    Raises:
        InvalidInputError: an unknown precision, or one the device cannot run (fp16 off CUDA, any
            reduced precision on MPS).
    """
    choice = (requested or os.environ.get(PRECISION_VAR) or "auto").strip().lower()
    if choice == "auto":
        return _auto_dtype(device)
    if choice not in PRECISIONS:
        raise InvalidInputError(f"Unknown precision '{choice}'. Use auto, fp32, bf16 or fp16.")
    dtype = PRECISIONS[choice]
    if dtype == torch.float16 and device.type != "cuda":
        raise InvalidInputError("Precision fp16 needs a CUDA GPU; use bf16 or fp32 on this device.")
    if dtype != torch.float32 and device.type == "mps":
        raise InvalidInputError("Only fp32 is supported on Apple MPS.")
    return dtype


def training_dtype(device: torch.device, requested: str | None = None) -> torch.dtype:
    """The autocast precision for training: as for inference (mixed precision: weights stay float32)."""
    return inference_dtype(device, requested)


def needs_grad_scaler(dtype: torch.dtype) -> bool:
    """float16 gradients underflow without loss scaling; bfloat16 has float32's range and needs none."""
    return dtype == torch.float16


def autocast(device: torch.device, dtype: torch.dtype) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for ``dtype`` on ``device``, or a no-op for float32."""
    if dtype == torch.float32 or device.type not in ("cpu", "cuda"):
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def precision_name(dtype: torch.dtype) -> str:
    """``"float32"``, ``"bfloat16"`` or ``"float16"``."""
    return PRECISION_NAMES.get(dtype, str(dtype).replace("torch.", ""))


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
    precision: str
    threads: int


def describe_device(device: torch.device | None = None) -> DeviceInfo:
    """A plain description of the device: GPU name and memory, or the CPU."""
    device = device or resolve_device()
    precision = precision_name(inference_dtype(device))
    if device.type == "cuda":
        index = device.index or 0
        props = torch.cuda.get_device_properties(index)
        return DeviceInfo(
            "cuda", props.name, round(props.total_memory / 1e9, 1), precision, torch.get_num_threads()
        )
    if device.type == "mps":
        return DeviceInfo("mps", "Apple GPU (MPS)", None, precision, torch.get_num_threads())
    name = platform.processor() or platform.machine() or "CPU"
    if cpu_has_native_bf16():
        name += ", bfloat16 instructions"
    return DeviceInfo(
        "cpu", f"CPU ({name}, {os.cpu_count()} cores)", None, precision, torch.get_num_threads()
    )


def available_devices() -> list[str]:
    """Devices present here, for parametrising tests: always ``cpu``, plus ``cuda``/``mps`` if present."""
    devices = ["cpu"]
    if torch.cuda.is_available():
        devices.append("cuda")
    if _mps_available():
        devices.append("mps")
    return devices
