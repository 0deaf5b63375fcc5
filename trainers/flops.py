"""Model FLOPs per trained token (PaLM, appendix B) and model FLOPs utilisation on known GPUs."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

# Dense (no 2:4 sparsity) bf16 tensor-core peaks in TFLOP/s, keyed by a lowercase fragment of
# torch.cuda.get_device_name(). NVIDIA's data-centre datasheets quote bf16 "with sparsity": the
# dense peak is half of it. GeForce figures are the architecture whitepapers' "peak BF16 tensor
# TFLOPS with FP32 accumulate", dense.
PEAK_BF16_TFLOPS: dict[str, float] = {
    "b200": 2250.0,  # HGX B200: 36 PFLOPS with sparsity over 8 GPUs
    "gh200": 989.4,  # GH200 datasheet: 1,979 with sparsity
    "h200": 989.4,  # H200 SXM datasheet: 1,979 with sparsity
    "h200 nvl": 835.5,  # H200 NVL: 1,671 with sparsity
    "h100 sxm": 989.4,  # H100 SXM5 datasheet: 1,979 with sparsity
    "h100 80gb hbm3": 989.4,  # how the H100 SXM5 names itself
    "h100 pcie": 756.0,  # H100 PCIe datasheet: 1,513 with sparsity
    "h100 nvl": 835.5,  # H100 NVL datasheet: 1,671 with sparsity
    "a100": 312.0,  # A100 datasheet, SXM4 and PCIe: 624 with sparsity
    "a10": 125.0,  # A10 datasheet: 250 with sparsity
    "a10g": 125.0,  # AWS publishes no A10G datasheet; its A10 counterpart's figure
    "l4": 121.0,  # L4 datasheet: 242 with sparsity
    "l40": 181.05,  # L40 datasheet: 362.1 with sparsity
    "l40s": 362.05,  # L40S datasheet: 733 with sparsity
    "rtx 4090": 165.2,  # Ada (AD102) whitepaper, appendix A
    "rtx 5090": 209.5,  # Blackwell (GB202) whitepaper, appendix A
}

# Laptop parts share desktop names but run at far lower clocks and power: their peak is unknown.
_NOT_LISTED = ("laptop", "mobile", "max-q")

PALM_FORMULA = "6 N + 12 * layers * heads * head_dim * seq_len FLOPs per token (PaLM, appendix B)"


@dataclass(frozen=True)
class FlopsBasis:
    """What a run's MFU is computed from."""

    parameters: int
    """N: every parameter counted once (tied input/output embeddings once: the output projection
    is a real matmul, the input lookup costs nothing)."""
    seq_len: float
    """The attention context: mean length of the rows trained, weighted by their tokens."""
    per_token: float
    device_name: str
    """``torch.cuda.get_device_name()``, or the device type where there is no GPU."""
    devices: int
    """Processes (one device each) that shared the measured throughput."""


def _fragment_pattern(fragment: str) -> re.Pattern[str]:
    # Whole words only: "a10" must not match "a100", nor "l4" "l40s".
    return re.compile(rf"(?<![a-z0-9]){re.escape(fragment)}(?![a-z0-9])")


# Longest (most specific) fragment first, ties alphabetically: never dependent on dict order.
_LOOKUP = [
    (_fragment_pattern(fragment), PEAK_BF16_TFLOPS[fragment])
    for fragment in sorted(PEAK_BF16_TFLOPS, key=lambda f: (-len(f), f))
]


def peak_flops(device_name: str) -> float | None:
    """Dense bf16 peak FLOP/s of the GPU named ``device_name``; None for any not in the table."""
    name = device_name.lower()
    if any(word in name for word in _NOT_LISTED):
        return None
    return next((tflops * 1e12 for pattern, tflops in _LOOKUP if pattern.search(name)), None)


def flops_per_token(n_params: int, config: Any, seq_len: float) -> float:
    """Training FLOPs per token: ``6 N`` for the matmuls forward and backward, plus attention.

    ``n_params`` is N, every parameter once; ``config`` a transformers config (its
    ``num_hidden_layers``, ``num_attention_heads`` and ``head_dim``); ``seq_len`` the attention
    context T. PaLM counts the full T x T score matrix, not its causal half.
    """
    # Older configs leave head_dim out: their heads split hidden_size evenly.
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    attention = 12 * config.num_hidden_layers * config.num_attention_heads * head_dim * seq_len
    return 6 * n_params + attention


def mfu(tokens_per_s: float, flops_per_token: float, device_name: str) -> float | None:
    """Model FLOPs utilisation of one device; None when its peak is not known (never guessed)."""
    peak = peak_flops(device_name)
    return None if peak is None else tokens_per_s * flops_per_token / peak
