"""Where and in which precision a model runs: the resolved device and dtype, and the bitsandbytes
quantization config (8-bit, or 4-bit nf4). torch and transformers are imported lazily."""

from __future__ import annotations

import os
import sys
from typing import Any

from llmbt.errors import ConfigError, require


def resolve_device_dtype(device: str, dtype: str) -> tuple[str, str]:
    """Resolved (device, dtype): auto is cuda when present; float32 on CPU, else bf16/fp16.

    Raises:
        ConfigError: ``device`` is cuda and there is no CUDA GPU.
    """
    cuda = cuda_available()
    if device == "cuda" and not cuda:
        raise ConfigError("--device cuda: no CUDA GPU is available here; use --device cpu.")
    device = ("cuda" if cuda else "cpu") if device == "auto" else device
    if dtype != "auto" or device == "cpu":
        return device, "float32" if dtype == "auto" else dtype
    import torch

    return device, "bfloat16" if torch.cuda.is_bf16_supported() else "float16"


#: Device nodes without which no CUDA (or ROCm) device can exist on Linux (WSL2: /dev/dxg).
GPU_NODES = ("/dev/nvidiactl", "/dev/nvidia0", "/dev/kfd", "/dev/dxg")


def cuda_available() -> bool:
    """``torch.cuda.is_available()``, without importing torch (seconds) where no GPU can exist:
    macOS, or Linux without any GPU device node."""
    if "torch" not in sys.modules:
        if sys.platform == "darwin":
            return False
        if sys.platform.startswith("linux") and not any(os.path.exists(p) for p in GPU_NODES):
            return False
    import torch

    return torch.cuda.is_available()


def bnb_config(quantization: str, device: str, dtype: str) -> Any:
    """bitsandbytes config (4bit: nf4 with double quantization), or None for ``none``.

    Raises:
        ConfigError: 8-bit asked for on the CPU.
    """
    if quantization == "none":
        return None
    if quantization == "8bit" and device == "cpu":
        raise ConfigError("--quantization 8bit needs a CUDA GPU; use 4bit or none on CPU.")
    require("bitsandbytes", "gpu", f"--quantization {quantization}")
    import torch
    from transformers import BitsAndBytesConfig

    if quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    nf4 = {"bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": True}
    compute = torch.float32 if device == "cpu" else getattr(torch, dtype)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=compute, **nf4)
