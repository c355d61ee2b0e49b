"""What is trained and how: the model inside its loss wrapper (LoRA or full), the optimizer, the schedule.

`build_model` loads a checkpoint and hands it to `prepare_for_training`, which does everything else
(gradient checkpointing, LoRA adapters, the loss wrapper, freezing what cannot reach the loss). The
benchmark prepares a model it builds from a config with random weights through the same function, so
what it measures is what training runs.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from pathlib import Path

import torch

from higgs_tune.config import TrainSettings
from higgs_tune.errors import UserError
from higgs_tune.model.fingerprint import base_fingerprint
from higgs_tune.model.loading import load_model
from higgs_tune.model.lora import lora_without_bitsandbytes
from higgs_tune.training.loss import CloningLossModel

log = logging.getLogger(__name__)


def lr_lambda(cfg: TrainSettings, total_steps: int) -> Callable[[int], float]:
    """Linear warm-up to the peak, then cosine / linear decay to `min_lr_ratio` of it (or constant)."""

    def factor(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / (cfg.warmup_steps + 1)
        if cfg.lr_scheduler_type == "constant":
            return 1.0
        progress = min(1.0, (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps))
        if cfg.lr_scheduler_type == "linear":
            shape = 1.0 - progress
        else:
            shape = 0.5 * (1.0 + math.cos(math.pi * progress))
        return cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * shape

    return factor


def freeze_unreachable(model: torch.nn.Module, text_head: bool) -> list[str]:
    """Freeze the trainable parameters whose output can never reach the loss; returns their names.

    Without a text head only audio positions are scored, and in the last decoder layer the text MLP (and
    its norm) update only text positions, which nothing after them reads. Their gradient is exactly zero
    every step, so freezing them changes no update (Adam moves a parameter with zero gradient by zero),
    saves their gradients and optimizer state (about 75M parameters' worth in full fine-tuning of the 3B
    model), keeps weight decay from shrinking them for nothing, and means DDP never waits on them.
    """
    if text_head:
        return []
    last = len(model.higgs.model.layers) - 1
    prefixes = (f"layers.{last}.mlp.", f"layers.{last}.post_attention_layernorm.")
    frozen = []
    for name, p in model.named_parameters():
        if p.requires_grad and any(prefix in name for prefix in prefixes):
            p.requires_grad_(False)
            frozen.append(name)
    return frozen


def prepare_for_training(
    model: torch.nn.Module, cfg: TrainSettings, base: dict | None = None
) -> CloningLossModel:
    """A loaded (or freshly built) model made ready to train as `cfg` says, inside the loss wrapper.

    No cache, gradient checkpointing if asked for, LoRA adapters unless `full` (with the audio head
    trained whole if asked for), and the parameters that cannot reach the loss frozen. An `init_adapter`
    is checked against `base`, the model's fingerprint as loaded (`build_model` records it in the run's
    checkpoints), or one taken here before anything changes the model's config (`use_cache`): the same
    thing as recorded, so the same base is never reported as another.
    """
    if cfg.init_adapter is not None and base is None:
        base = base_fingerprint(model, cfg.model)
    model.config.use_cache = False
    if cfg.gradient_checkpointing:
        # Non-reentrant checkpointing needs no input gradients, so it works with frozen embeddings (LoRA).
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    if cfg.init_adapter is not None:
        model = _from_adapter(model, cfg, base)
    elif not cfg.full:
        import peft

        lora = peft.LoraConfig(
            r=cfg.lora.r,
            lora_alpha=cfg.lora.alpha,
            lora_dropout=cfg.lora.dropout,
            target_modules=list(cfg.lora.target_modules),
            modules_to_save=["audio_lm_head"] if cfg.lora.train_audio_head else None,
        )
        with lora_without_bitsandbytes(model):
            model = peft.get_peft_model(model, lora)
    wrapped = CloningLossModel(model)
    frozen = freeze_unreachable(wrapped, text_head=cfg.text_loss_weight > 0)
    if frozen:
        log.info("froze %d tensors that cannot reach an audio-only loss (last layer's text MLP)", len(frozen))
    if cfg.torch_compile:
        log.info("torch.compile: %d decoder layers", compile_decoder_layers(wrapped))
    return wrapped


def compile_decoder_layers(model: torch.nn.Module) -> int:
    """Compile the forward of every decoder layer of `model` in place (`nn.Module.compile`); returns how many.

    Why the layers and nothing else: they are where the time goes (28 identical blocks), and with
    inbuilt-module inlining (torch's default) their parameters are graph inputs, so all layers share one
    compiled graph. `nn.Module.compile` keeps each module where it is, so parameter names, `state_dict`,
    peft's saving and loading, checkpoints and DDP / FSDP wrapping see the same model as without it. It
    runs after peft has put its LoRA Linear layers into the layers (so they are traced with the base
    matmuls) and after gradient checkpointing is enabled. The loss wrapper and the heads stay eager: they
    gather at a different number of labelled positions every micro-batch, which would recompile for
    little gain. Each micro-batch's length varies too; after the first change torch marks the lengths
    dynamic instead of compiling again for each one.
    """
    from transformers.models.higgs_audio_v2.modeling_higgs_audio_v2 import HiggsAudioV2DecoderLayer

    layers = [m for m in model.modules() if isinstance(m, HiggsAudioV2DecoderLayer)]
    for layer in layers:
        layer.compile()
    return len(layers)


def _from_adapter(model: torch.nn.Module, cfg: TrainSettings, base: dict) -> torch.nn.Module:
    """`model` with the trainable LoRA adapter of `cfg.init_adapter` (a run's best checkpoint, or a
    checkpoint folder): its own LoRA shape and targets, checked against this base (`base`: its
    fingerprint as loaded)."""
    from peft import PeftModel

    from higgs_tune import checkpoint
    from higgs_tune.model.fingerprint import check_base

    ckpt = checkpoint.resolve_checkpoint(Path(cfg.init_adapter))
    state = checkpoint.read_trainer_state(ckpt)
    if state["mode"] != "lora":
        raise UserError(f"init_adapter={cfg.init_adapter}: {ckpt} holds a full fine-tune, not a LoRA adapter")
    check_base(state.get("base"), base, ckpt)
    log.info("LoRA starts from the adapter of %s (step %d)", ckpt, state["step"])
    with lora_without_bitsandbytes(model):
        return PeftModel.from_pretrained(model, str(checkpoint.weights_dir(ckpt, "lora")), is_trainable=True)


def build_model(cfg: TrainSettings, use_bf16: bool, uniform_dtype: bool = False) -> CloningLossModel:
    """The base model of `cfg.model`, prepared for training (`prepare_for_training`).

    LoRA keeps the frozen base in bf16 when training in bf16 (peft keeps the adapters in float32), except
    with `uniform_dtype` (FSDP: a flat parameter holds one dtype; FSDP's mixed precision then computes
    in bf16). Full fine-tuning keeps float32 master weights under autocast.
    """
    dtype = torch.bfloat16 if use_bf16 and not cfg.full and not uniform_dtype else torch.float32
    quantization = quantization_config(cfg, dtype)
    model = load_model(
        cfg.model,
        use_text_head=cfg.text_loss_weight > 0,
        dtype=dtype,
        attn_implementation=cfg.attn_implementation,
        fast_dual_ffn=cfg.fast_dual_ffn,
        quantization_config=quantization,
        # bitsandbytes quantises while placing the weights, so a quantised base is loaded onto its GPU.
        device=_local_cuda_device() if quantization is not None else None,
    )
    base = base_fingerprint(model, cfg.model)
    wrapped = prepare_for_training(model, cfg, base)
    wrapped.base_fingerprint = base  # recorded in every checkpoint (`checkpoint.trainer_state`)
    return wrapped


def quantization_config(cfg: TrainSettings, compute_dtype: torch.dtype):
    """transformers' `BitsAndBytesConfig` for `cfg.quantization` (None for none): the decoder's Linear
    weights in NF4 (double-quantised) or int8; the heads stay unquantised (the audio head is small and may be
    trained whole), as do embeddings and norms, kept in `compute_dtype`."""
    if cfg.quantization == "none":
        return None
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as e:
        raise RuntimeError(
            f"quantization={cfg.quantization} needs bitsandbytes: pip install bitsandbytes"
        ) from e
    from transformers import BitsAndBytesConfig

    skip = ["audio_lm_head", "text_lm_head"]
    if cfg.quantization == "int8":
        return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=skip)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype,
        llm_int8_skip_modules=skip,
    )


def _local_cuda_device() -> str | None:
    """This process's GPU (LOCAL_RANK under a launcher), or None on a machine without CUDA."""
    if not torch.cuda.is_available():
        return None
    return f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"


def build_optimizer(cfg: TrainSettings, model: torch.nn.Module) -> torch.optim.Optimizer:
    """AdamW over the trainable parameters; no weight decay on biases and norms."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    kwargs = {"lr": cfg.learning_rate, "betas": (cfg.adam_beta1, cfg.adam_beta2)}
    if cfg.optim in ("adamw_8bit", "paged_adamw_8bit"):
        try:
            import bitsandbytes as bnb
        except ImportError as e:
            raise RuntimeError(f"optim={cfg.optim} needs bitsandbytes: pip install bitsandbytes") from e
        paged = cfg.optim == "paged_adamw_8bit"
        return (bnb.optim.PagedAdamW8bit if paged else bnb.optim.AdamW8bit)(groups, **kwargs)
    return torch.optim.AdamW(groups, **kwargs)


def parameter_counts(model: torch.nn.Module) -> tuple[int, int]:
    """(trainable, total) parameters; under ZeRO-3 parameters are partitioned and ds_numel is their size."""
    trainable = sum(getattr(p, "ds_numel", p.numel()) for p in model.parameters() if p.requires_grad)
    total = sum(getattr(p, "ds_numel", p.numel()) for p in model.parameters())
    return trainable, total
