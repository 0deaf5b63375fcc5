"""LoRA and QLoRA on the torch backend through peft.

The base model is frozen and adapters are added to the projections the config names; only they
are trained. The checkpoint folder holds the merged model (each adapted weight plus
``alpha / rank`` times B·A), which transformers, evaluation and the frozen ZIP load like any
other, and the adapters themselves in ``adapter/`` (peft's layout). QLoRA holds the frozen
projections in 4 bits through bitsandbytes, on a CUDA GPU only.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import torch

from trainers.config import LoraConfig
from trainers.models import build_model_and_tokenizer
from trainers.protocol import TrainRequest

ADAPTER_DIR = "adapter"
QLORA_EXTRA = "pip install -e '.[torch,qlora]'"


def qlora_unavailable(device: str) -> str | None:
    """Why QLoRA cannot run on ``device`` here (it needs a CUDA GPU and bitsandbytes); else None."""
    if not device.startswith("cuda") or not torch.cuda.is_available():
        found = "available" if torch.cuda.is_available() else "not available"
        return (
            f"QLoRA (lora.quantize nf4) runs on a CUDA GPU through bitsandbytes; this run's "
            f"device is {device} and CUDA is {found} here"
        )
    if importlib.util.find_spec("bitsandbytes") is None:
        return f"QLoRA (lora.quantize nf4) needs bitsandbytes, not installed here ({QLORA_EXTRA})"
    return None


def quantized_loading(lora: LoraConfig | None, device: torch.device) -> dict[str, Any] | None:
    """``from_pretrained`` arguments that load the frozen projections in 4 bits onto ``device``
    (bf16 compute, nested quantization of the scales: the QLoRA paper's setting); None without
    QLoRA. Raises where QLoRA cannot run."""
    if lora is None or lora.quantize == "none":
        return None
    if reason := qlora_unavailable(str(device)):
        raise RuntimeError(reason)
    from transformers import BitsAndBytesConfig

    quantization = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=lora.quantize,
        bnb_4bit_compute_dtype=torch.bfloat16,
        bnb_4bit_use_double_quant=True,
    )
    index = device.index if device.index is not None else torch.cuda.current_device()
    return {"quantization_config": quantization, "device_map": {"": index}, "dtype": torch.bfloat16}


def peft_config(lora: LoraConfig) -> Any:
    """peft's LoraConfig for ``lora``: adapters on the named projections, biases left alone."""
    import peft

    return peft.LoraConfig(
        r=lora.rank,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=list(lora.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )


def with_adapters(model: Any, lora: LoraConfig) -> Any:
    """``model`` frozen, with trainable adapters. The adapters are float32 whatever the frozen
    weights' dtype (peft's ``autocast_adapter_dtype``): the trained state keeps every update, as
    fp32 master weights would. Under QLoRA the weights left unquantized (embeddings, norms) are
    upcast to float32 first, as peft's ``prepare_model_for_kbit_training`` does."""
    import peft

    if lora.quantize != "none":
        model = peft.prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    return peft.get_peft_model(model, peft_config(lora))


def is_adapted(model: Any) -> bool:
    return hasattr(model, "peft_config")


def save(model: Any, request: TrainRequest) -> None:
    """The adapters into ``adapter/``, then the merged model into the checkpoint folder itself."""
    folder = request.checkpoint_dir
    model.save_pretrained(folder / ADAPTER_DIR)
    # peft also writes a model card template whose every field says "[More Information Needed]".
    (folder / ADAPTER_DIR / "README.md").unlink(missing_ok=True)
    lora = request.config.lora
    assert lora is not None
    merged = model.merge_and_unload() if lora.quantize == "none" else _merged_again(request)
    merged.save_pretrained(folder)


def _merged_again(request: TrainRequest) -> Any:
    """QLoRA's merged model: the adapters merged into the base weights as published (bf16), not
    into their 4-bit copies, whose rounding is far coarser than the adapters' update. The base is
    loaded again, on the CPU."""
    from peft import PeftModel

    load = {"dtype": torch.bfloat16}
    base, _ = build_model_and_tokenizer(
        request.model_source, request.config.seed, request.hub_cache, load
    )
    adapted = PeftModel.from_pretrained(base, Path(request.checkpoint_dir) / ADAPTER_DIR)
    return adapted.merge_and_unload()


def trainable(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """The weights the optimizer updates: every one, or under LoRA the adapters only."""
    return [param for param in model.parameters() if param.requires_grad]
