"""The shape of a Gemma-family decoder as the memory guard needs it: its numbers, and the shapes of
its weights and LoRA adapters as each backend holds them (transformers and peft on torch, Tunix and
qwix on jax)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from trainers.config import JAX_LORA_MODULES, LoraConfig

FP32, BF16 = 4, 2
# RMSNorms in each decoder layer, by model_type: the Gemma families the estimate models.
LAYER_NORMS = {"gemma": 2, "gemma2": 4, "gemma3_text": 4}
QK_NORM_TYPES = ("gemma3_text",)
# Bytes per token per vocabulary entry at the loss's peak, in any precision: the trainer holds
# the last micro-batch's output until the next forward returns, so two sets of logits and fp32
# log-softmax are alive (2 x (4 + 4); with bf16 logits, 2 x (2 + 4) plus the loss's fp32 copy).
# The backward needs less: logits, log-softmax and its gradient in and out (act + 12).
LOSS_BYTES_PER_ENTRY = 16
Shape = tuple[int, ...]


class NoEstimate(Exception):
    """The model's shape is not known here: no config at hand, or an architecture not modelled."""


@dataclass(frozen=True)
class ModelShape:
    """The numbers of a Gemma-family decoder config that training memory depends on."""

    model_type: str
    vocab: int
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    tied_embeddings: bool
    logit_softcapping: bool

    @classmethod
    def from_config(cls, config: Any) -> ModelShape:
        """Read a transformers config (its defaults fill what a ``config.json`` leaves out)."""
        if config.model_type not in LAYER_NORMS:
            known = ", ".join(LAYER_NORMS)
            raise NoEstimate(f"model_type {config.model_type!r} is not modelled (known: {known})")
        return cls(
            model_type=config.model_type,
            vocab=config.vocab_size,
            hidden=config.hidden_size,
            intermediate=config.intermediate_size,
            layers=config.num_hidden_layers,
            heads=config.num_attention_heads,
            kv_heads=config.num_key_value_heads,
            head_dim=config.head_dim,
            tied_embeddings=config.tie_word_embeddings,
            logit_softcapping=getattr(config, "final_logit_softcapping", None) is not None,
        )

    def projections(self) -> dict[str, tuple[int, int]]:
        """A decoder layer's projections by their transformers names: (inputs, outputs)."""
        h, i = self.hidden, self.intermediate
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        return {
            "q_proj": (h, q),
            "k_proj": (h, kv),
            "v_proj": (h, kv),
            "o_proj": (q, h),
            "gate_proj": (h, i),
            "up_proj": (h, i),
            "down_proj": (i, h),
        }

    @property
    def layer_matmul_parameters(self) -> int:
        """Weights of one decoder layer's projections: q, k, v, o and the GeGLU gate, up, down."""
        return sum(inputs * outputs for inputs, outputs in self.projections().values())

    def layer_vectors(self) -> list[Shape]:
        """A decoder layer's RMSNorm weights (Gemma 3 also normalises queries and keys)."""
        qk = [(self.head_dim,)] * 2 if self.model_type in QK_NORM_TYPES else []
        return [(self.hidden,)] * LAYER_NORMS[self.model_type] + qk

    @property
    def layer_parameters(self) -> int:
        return self.layer_matmul_parameters + sum(shape[0] for shape in self.layer_vectors())

    @property
    def parameters(self) -> int:
        """Every weight: embeddings (shared with the output head when tied), layers, final norm."""
        embeddings = self.vocab * self.hidden * (1 if self.tied_embeddings else 2)
        return embeddings + self.layers * self.layer_parameters + self.hidden

    @property
    def matmul_parameters(self) -> int:
        """The weights autocast casts to bf16: every projection and the output head."""
        return self.layers * self.layer_matmul_parameters + self.vocab * self.hidden

    def torch_weight_shapes(self) -> list[Shape]:
        """Every weight of the transformers model: ``(outputs, inputs)`` per projection."""
        embeddings = [(self.vocab, self.hidden)] * (1 if self.tied_embeddings else 2)
        layer = [(outputs, inputs) for inputs, outputs in self.projections().values()]
        return embeddings + (layer + self.layer_vectors()) * self.layers + [(self.hidden,)]

    def jax_weight_shapes(self) -> list[Shape]:
        """Every weight of Tunix's Gemma: einsum weights keep heads as an axis of their own, and
        q, k and v are one weight where the heads match."""
        h, n, k, d, i = self.hidden, self.heads, self.kv_heads, self.head_dim, self.intermediate
        attention = [(3, n, h, d)] if n == k else [(n, h, d), (2, k, h, d)]
        layer = [*attention, (n, d, h), (h, i), (h, i), (i, h)]
        return [(self.vocab, h)] + (layer + self.layer_vectors()) * self.layers + [(h,)]

    def torch_adapter_shapes(self, lora: LoraConfig) -> list[Shape]:
        """peft's adapters: ``A`` of ``(rank, inputs)`` and ``B`` of ``(outputs, rank)`` on each
        targeted projection of every layer."""
        r, projections = lora.rank, self.projections()
        layer = []
        for name in lora.target_modules:
            inputs, outputs = projections[name]
            layer += [(r, inputs), (outputs, r)]
        return layer * self.layers

    def jax_adapter_shapes(self, lora: LoraConfig) -> list[Shape]:
        """qwix's adapters on Tunix's weights (``JAX_LORA_MODULES``): ``A`` over the axes the
        input shares with the weight, ``B`` over the others. k and v, which share one weight, share
        one adapter; q, k and v too where the heads match."""
        h, n, k, d, i, r = (
            self.hidden, self.heads, self.kv_heads, self.head_dim, self.intermediate, lora.rank
        )  # fmt: skip
        adapters = {
            "q_einsum": [(h, r), (r, n, d)],
            "kv_einsum": [(h, r), (r, 2, k, d)],
            "qkv_einsum": [(h, r), (r, 3, n, d)],
            "attn_vec_einsum": [(n, d, r), (r, h)],
            "gate_proj": [(h, r), (r, i)],
            "up_proj": [(h, r), (r, i)],
            "down_proj": [(i, r), (r, h)],
        }
        # The model has either q and kv weights or, where the heads match, one qkv weight.
        absent = {"q_einsum", "kv_einsum"} if n == k else {"qkv_einsum"}
        layer = [
            shape
            for module in sorted(jax_lora_modules(lora) - absent)
            for shape in adapters[module]
        ]
        return layer * self.layers

    def layer_activation_bytes(self, precision: str) -> int:
        """Bytes per token a decoder layer keeps for backward when training in ``precision``."""
        h, q, kv = self.hidden, self.heads * self.head_dim, self.kv_heads * self.head_dim
        act = FP32 if precision == "fp32" else BF16
        # Each RMSNorm computes in fp32 and keeps its input and the normalised value.
        norms = LAYER_NORMS[self.model_type] * 2 * h * FP32
        if self.model_type in QK_NORM_TYPES:
            norms += 2 * (q + kv) * FP32
        # The projections' inputs: the two pre-norm outputs in the weights' dtype, or under
        # autocast one bf16 copy per projection that reads them (q, k, v; gate, up).
        inputs = 5 * h * BF16 if precision == "bf16" else 2 * h * act
        # SDPA keeps queries, keys and values (repeated to every head once padding masks the
        # batch) and its output; o_proj keeps a contiguous copy of that output.
        attention = 5 * q * act
        # GeGLU keeps the gate and up projections, the gate's activation and their product.
        mlp = 4 * self.intermediate * act
        return norms + inputs + attention + mlp

    def head_activation_bytes(self, act: int) -> int:
        """Bytes per token of the final norm, the logits and the fp32 loss over the vocabulary."""
        norm = 2 * self.hidden * FP32 + self.hidden * act
        softcapping = self.vocab * act if self.logit_softcapping else 0  # its tanh is kept
        return norm + softcapping + LOSS_BYTES_PER_ENTRY * self.vocab

    def lora_activation_bytes(self, lora: LoraConfig, precision: str) -> int:
        """Bytes per token a decoder layer's adapters keep for backward (peft, float32 adapters):
        the input ``A`` reads where it is a tensor of its own (dropout's output, peft's float32
        copy of a bf16 input, or autocast's bf16 copy), dropout's mask, and ``A``'s output."""
        total = 0
        for name in lora.target_modules:
            inputs, _ = self.projections()[name]
            kept = BF16 if precision == "bf16" else FP32  # what A's matmul reads
            if lora.dropout > 0:
                # The mask, in the float32 input's dtype (on the CPU; a byte per value on CUDA).
                total += inputs * FP32 + inputs * kept
            elif precision != "fp32":
                total += inputs * kept
            total += lora.rank * kept
        return total


def jax_lora_modules(lora: LoraConfig) -> set[str]:
    """The Tunix modules qwix adapts for ``lora.target_modules``."""
    return {JAX_LORA_MODULES[name] for name in lora.target_modules} | (
        {"qkv_einsum"} if {"q_proj", "k_proj", "v_proj"} <= set(lora.target_modules) else set()
    )
