"""Typed run configuration: the settings of a fine-tuning run, loaded from YAML with ``key=value`` overrides.

A fine-tuning run is described by one :class:`TrainConfig`. It comes from an optional YAML file plus
command-line overrides (``learning_rate=2e-4 lora.r=32``), and every checkpoint records it with
:func:`higgs_tune.typed_config.save_config`, so a result can always be traced back to the exact settings that
produced it. The loading itself (types, bounds, every problem reported at once with its fix) is the generic
engine in :mod:`higgs_tune.typed_config`; this module only declares what there is to set.

Decisions worth knowing:

* ``model``, ``data`` and ``output_dir`` may be None here. Commands need different subsets of them, and a
  config must load whatever it is used for; the command that needs one calls
  :func:`higgs_tune.typed_config.require`, which reports every missing one at once, in the same error format.
* Training length is ``max_steps`` *or* ``num_train_epochs``: setting both is an error rather than one
  silently winning, so train by epochs with ``max_steps=null num_train_epochs=3``.
* ``bf16`` is ``true``, ``false`` or ``"auto"`` (bf16 where the hardware supports it), so the same file
  works on GPUs with and without bf16.
* ``codebook_weights`` length is checked against the model (:func:`resolve_codebook_weights`), not here:
  Higgs Audio v2 has 8 codebooks but small test models have fewer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from higgs_tune.typed_config import ConfigError, bounded

TextNormalisation = Literal["none", "whitespace", "arabic", "arabic_no_diacritics", "arabic_spoken"]
"""How transcripts are normalised before they are prompted; the rules are `data.text_normalisation`'s."""


@dataclass(frozen=True)
class PromptConfig:
    """How training examples are prompted; saved with every checkpoint so inference prompts the same way."""

    system_prompt: str = "Generate audio following instruction."
    """System message of every example. The default is the base model's own (the original implementation's
    voice-cloning prompt), so a fine-tune starts from the prompt the model was trained on."""
    scene: str | None = "Audio is recorded from a quiet room."
    """Scene description for samples that carry none of their own (the base model's default scene);
    None means no scene block."""
    text_normalisation: TextNormalisation | None = None
    """How the reference transcript and the target text are normalised (`data.text_normalisation`). null
    takes what the prepared data records (`prepare --text-normalisation`); a checkpoint records the value its
    run trained with, so `clone` and `eval` normalise the texts they are given the same way."""


@dataclass(frozen=True)
class LoraConfig:
    """LoRA adapter settings (peft); ignored when ``full`` fine-tuning is on."""

    r: int = bounded(16, ge=1)
    """Adapter rank: capacity of the update, and its size on disk."""
    alpha: int = bounded(32, ge=1)
    """peft's ``lora_alpha``; the update is scaled by alpha / r."""
    dropout: float = bounded(0.05, ge=0, lt=1)
    """Dropout on the adapter input, against overfitting small voice sets."""
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )
    """Module names to adapt. Each HiggsAudioV2 decoder layer has a text ``mlp`` and an ``audio_mlp``, both
    with gate/up/down_proj, so the default covers attention and both MLPs."""
    train_audio_head: bool = False
    """Also train ``audio_lm_head`` fully (peft ``modules_to_save``): more capacity for new voices or
    languages, at the cost of saving the whole head with the adapter."""

    @staticmethod
    def _checks(values: Mapping[str, Any], prefix: str) -> list[str]:
        """Checks beyond per-field types and bounds; ``values`` holds only the fields that passed those."""
        if "target_modules" in values and not values["target_modules"]:
            return [f"{prefix}target_modules must name at least one module, e.g. [q_proj, v_proj]"]
        return []


@dataclass(frozen=True)
class DpoConfig:
    """Direct preference optimisation settings (`objective: dpo`; `training.dpo`)."""

    beta: float = bounded(0.1, gt=0)
    """How strongly the model is held to the reference (the starting model): the implicit reward is beta times
    the log-probability gained over it; a larger beta keeps the model closer. 0.1 is the usual start."""
    sft_weight: float = bounded(0.0, ge=0)
    """Weight of an SFT term, the chosen clips' per-frame cross-entropy, added to the DPO loss so that the
    chosen speech stays likely rather than only more likely than the rejected one; 0 is plain DPO."""
    disable_dropout: bool = True
    """Train with every dropout off (trl's `disable_dropout`), an `init_adapter`'s LoRA dropout included:
    the reference is scored without dropout, so only then does the first step score the reference itself
    (loss ln 2, margin 0) and the rewards measure what training changed, not dropout noise."""


@dataclass(frozen=True)
class TrainConfig:
    """One fine-tuning run. Names follow transformers' TrainingArguments where the two overlap."""

    model: str | None = None
    """Hub id or local path of a HiggsAudioV2ForConditionalGeneration checkpoint (required to train)."""
    data: str | None = None
    """Training data location (required to train)."""
    output_dir: str | None = None
    """Where checkpoints, logs and the saved config go (required to train)."""
    objective: Literal["sft", "dpo"] = "sft"
    """sft imitates the prepared data (`data`); dpo raises chosen over rejected clips of a preference folder
    (`prefs`, from `higgs-tune prefs`), held to the starting model (`training.dpo`)."""
    prefs: str | None = None
    """Preference folder from `higgs-tune prefs` (objective dpo only)."""
    init_adapter: str | None = None
    """Start LoRA from this run's (best) or checkpoint's adapter instead of fresh adapters: the SFT run
    before DPO, or the previous DPO round. Its own LoRA shape is used (the lora section is ignored)."""
    full: bool = False
    """Full fine-tuning of every weight instead of LoRA adapters."""
    max_steps: int | None = bounded(200, ge=1)
    """Optimizer steps to train for; null to train for ``num_train_epochs`` instead."""
    num_train_epochs: float | None = bounded(None, gt=0)
    """Passes over the data; only with ``max_steps=null``."""
    learning_rate: float = bounded(1e-4, gt=0)
    """Peak learning rate, reached after warm-up."""
    weight_decay: float = bounded(0.0, ge=0)
    """AdamW decoupled weight decay."""
    adam_beta1: float = bounded(0.9, ge=0, lt=1)
    """AdamW first-moment decay."""
    adam_beta2: float = bounded(0.95, ge=0, lt=1)
    """AdamW second-moment decay; 0.95 reacts faster than 0.999 to the shift from pretraining data."""
    warmup_steps: int = bounded(10, ge=0)
    """Steps of linear warm-up from 0 to ``learning_rate``."""
    lr_scheduler_type: Literal["cosine", "constant", "linear"] = "cosine"
    """Learning-rate decay after warm-up."""
    min_lr_ratio: float = bounded(0.1, ge=0, le=1)
    """Final learning rate of cosine and linear decay, as a fraction of ``learning_rate``."""
    per_device_train_batch_size: int = bounded(4, ge=1)
    """Examples per micro-batch on each GPU (unless ``max_tokens_per_batch`` is set)."""
    gradient_accumulation_steps: int = bounded(1, ge=1)
    """Micro-batches per optimizer step."""
    max_grad_norm: float = bounded(1.0, ge=0)
    """Gradient clipping threshold; 0 turns clipping off."""
    logging_steps: int = bounded(10, ge=1)
    """Log training metrics every this many steps."""
    save_steps: int = bounded(100, ge=1)
    """Save a checkpoint every this many steps (and at the end)."""
    save_total_limit: int | None = bounded(2, ge=1)
    """Checkpoints to keep, oldest deleted first; null keeps all."""
    eval_steps: int = bounded(50, ge=1)
    """Compute held-out loss every this many steps."""
    eval_fraction: float = bounded(0.05, ge=0, lt=1)
    """Share of the data held out for evaluation; 0 turns the held-out split off."""
    metric_for_best_model: str = "eval_loss"
    """Held-out metric that picks the best checkpoint (one of ``BEST_MODEL_METRICS``); `clone`, `eval` and
    `merge` load the best checkpoint of a run unless told ``--checkpoint last``."""
    greater_is_better: bool | None = None
    """Whether a larger ``metric_for_best_model`` is better; null decides from the metric (see
    :func:`metric_greater_is_better`)."""
    early_stopping_patience: int | None = bounded(None, ge=1)
    """Stop after this many held-out evaluations without an improvement of the metric; null never stops
    early."""
    early_stopping_threshold: float = bounded(0.0, ge=0)
    """How much the metric must improve to reset the patience count."""
    seed: int = bounded(42, ge=0, lt=2**32)
    """Seed for the data split, shuffling and initialisation (below 2**32, numpy's limit)."""
    bf16: bool | Literal["auto"] = "auto"
    """bf16 mixed precision: true, false, or "auto" (on where the hardware supports it)."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: less memory for about a third more compute."""
    text_loss_weight: float = bounded(0.0, ge=0)
    """Weight of the text-token loss; 0 means no text head and an audio-only loss."""
    codebook_weights: list[float] | None = None
    """Loss weight per audio codebook, one per codebook of the model; null weighs all equally (1.0)."""
    max_tokens_per_batch: int | None = bounded(None, ge=1)
    """Token budget per micro-batch (sequences grouped by length); null for fixed-size micro-batches of
    ``per_device_train_batch_size`` examples."""
    max_seq_len: int = bounded(4096, ge=1)
    """Longest example in tokens; longer ones are skipped."""
    dataloader_num_workers: int = bounded(0, ge=0)
    """Background processes loading batches; 0 loads them in the training process."""
    optim: Literal["adamw_torch", "adamw_8bit", "paged_adamw_8bit"] = "adamw_torch"
    """Optimizer; adamw_8bit (bitsandbytes) keeps its state in 8 bits, for full fine-tuning on less memory;
    paged_adamw_8bit also pages that state to CPU memory when the GPU runs short (on CUDA only)."""
    quantization: Literal["none", "nf4", "int8"] = "none"
    """QLoRA: load the frozen base's Linear weights in 4-bit NF4 or 8 bits (bitsandbytes) and train LoRA
    adapters on it; the adapters merge onto the unquantised base (`merge`). LoRA only."""
    fast_dual_ffn: bool = True
    """Route text and audio positions through the decoder layers by index, without a host-device sync per
    layer (`model.fast_dual_ffn`); same weights and outputs as transformers' layer, which false restores."""
    preview_steps: int = bounded(0, ge=0)
    """Clone a few held-out prompts every this many steps and log audio + speech checks; 0 turns it off."""
    num_preview_prompts: int = bounded(2, ge=1)
    """How many held-out prompts `preview_steps` clones."""
    attn_implementation: str = "sdpa"
    """transformers attention backend, e.g. sdpa, eager or flash_attention_2."""
    report_to: list[str] = field(default_factory=lambda: ["tensorboard"])
    """Experiment trackers that get the metrics, the run config and the previews' audio: any of
    tensorboard (RUN/tensorboard/), wandb, trackio; [none] for metrics.jsonl only."""
    prompt: PromptConfig = field(default_factory=PromptConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    dpo: DpoConfig = field(default_factory=DpoConfig)

    @staticmethod
    def _checks(values: Mapping[str, Any], prefix: str) -> list[str]:
        """Cross-field checks; ``values`` holds only the fields that passed their own type and bounds."""
        problems = []
        steps, epochs = values.get("max_steps"), values.get("num_train_epochs")
        if "max_steps" in values and "num_train_epochs" in values and steps is None and epochs is None:
            problems.append(f"set {prefix}max_steps or {prefix}num_train_epochs to say how long to train")
        elif steps is not None and epochs is not None:
            problems.append(
                f"{prefix}max_steps ({steps}) and {prefix}num_train_epochs ({epochs}) are both set; "
                f"set {prefix}max_steps=null to train by epochs, or drop {prefix}num_train_epochs"
            )
        warmup = values.get("warmup_steps")
        if steps is not None and warmup is not None and warmup > steps:
            problems.append(
                f"{prefix}warmup_steps ({warmup}) must be <= {prefix}max_steps ({steps}); "
                f"lower {prefix}warmup_steps or raise {prefix}max_steps"
            )
        budget, seq_len = values.get("max_tokens_per_batch"), values.get("max_seq_len")
        if budget is not None and seq_len is not None and budget < seq_len:
            problems.append(
                f"{prefix}max_tokens_per_batch ({budget}) must be >= {prefix}max_seq_len ({seq_len}) "
                f"so the longest allowed example fits in a batch; raise it or lower {prefix}max_seq_len"
            )
        problems.extend(_best_model_checks(values, prefix))
        problems.extend(_objective_checks(values, prefix))
        problems.extend(_report_to_checks(values.get("report_to"), prefix))
        if values.get("full") and values.get("quantization", "none") != "none":
            problems.append(
                f"{prefix}quantization={values['quantization']} quantises the frozen base for LoRA (QLoRA), "
                f"but {prefix}full=true trains every weight; set {prefix}full=false or "
                f"{prefix}quantization=none"
            )
        weights = values.get("codebook_weights")
        if weights is not None:
            negative = [f"{w!r} at index {i}" for i, w in enumerate(weights) if not w >= 0]
            if not weights:
                problems.append(f"{prefix}codebook_weights is empty; use null to weigh all codebooks equally")
            elif negative:
                problems.append(f"{prefix}codebook_weights must all be >= 0, got {', '.join(negative)}")
            elif not any(weights):
                problems.append(f"{prefix}codebook_weights are all 0, so nothing would be trained")
        return problems


BEST_MODEL_METRICS = (
    "eval_loss",
    "eval_accuracy",
    "eval_eos_prob",
    "eval_early_stop_risk",
    "eval_accuracy_codebook_<k>",
    "eval_eos_prob_codebook_<k>",
    "eval_reward_accuracy",
    "eval_reward_margin",
)
"""Held-out metrics a run can pick its best checkpoint by (the keys of the held-out rows of metrics.jsonl;
`<k>` is a codebook index)."""
_BEST_MODEL_METRIC = re.compile(
    r"eval_(loss|accuracy|eos_prob|early_stop_risk|(accuracy|eos_prob)_codebook_\d+|reward_accuracy|reward_margin)"
)


def _best_model_checks(values: Mapping[str, Any], prefix: str) -> list[str]:
    """The metric for the best model is a held-out metric, and early stopping has evaluations to watch."""
    problems = []
    metric = values.get("metric_for_best_model")
    if metric is not None and not _BEST_MODEL_METRIC.fullmatch(metric):
        problems.append(
            f"{prefix}metric_for_best_model: unknown metric {metric!r}; "
            f"valid metrics: {', '.join(BEST_MODEL_METRICS)}"
        )
    if values.get("early_stopping_patience") is not None and values.get("eval_fraction") == 0:
        problems.append(
            f"{prefix}early_stopping_patience needs held-out evaluations, but {prefix}eval_fraction is 0; "
            f"set {prefix}eval_fraction > 0 or {prefix}early_stopping_patience=null"
        )
    return problems


def _objective_checks(values: Mapping[str, Any], prefix: str) -> list[str]:
    """What each objective trains on, and the settings DPO has no use for."""
    p, problems = prefix, []
    if values.get("init_adapter") is not None and values.get("full"):
        problems.append(f"{p}init_adapter starts LoRA from an adapter, but {p}full=true; drop one of them")
    if values.get("objective") != "dpo":
        if values.get("prefs") is not None:
            problems.append(f"{p}prefs is read by {p}objective=dpo only; set it, or drop {p}prefs")
        if str(values.get("metric_for_best_model")).startswith("eval_reward_"):
            problems.append(
                f"{p}metric_for_best_model={values['metric_for_best_model']} is measured by "
                f"{p}objective=dpo only; use eval_loss"
            )
        return problems
    if values.get("data") is not None:
        problems.append(f"{p}objective=dpo trains on {p}prefs, not {p}data; drop {p}data")
    if values.get("max_tokens_per_batch") is not None:
        problems.append(
            f"{p}objective=dpo batches pairs by {p}per_device_train_batch_size; "
            f"set {p}max_tokens_per_batch=null"
        )
    if values.get("text_loss_weight"):
        problems.append(f"{p}objective=dpo scores audio only; set {p}text_loss_weight=0")
    return problems


REPORT_TO = ("tensorboard", "wandb", "trackio", "none")
"""The trackers `report_to` can name (accelerate's trackers of those names); none means no tracker."""


def _report_to_checks(report_to: list[str] | None, prefix: str) -> list[str]:
    """Every tracker is one we know, and `none` stands alone."""
    if report_to is None:
        return []
    problems = [
        f"{prefix}report_to: unknown tracker {name!r}; choose from {', '.join(REPORT_TO)}"
        for name in report_to
        if name not in REPORT_TO
    ]
    if "none" in report_to and len(report_to) > 1:
        problems.append(f"{prefix}report_to: 'none' cannot be combined with other trackers; drop it")
    return problems


def metric_greater_is_better(cfg: TrainConfig) -> bool:
    """Whether a larger ``metric_for_best_model`` is better: ``greater_is_better`` if set, else from the
    metric (loss and early-stop risk fall as the model improves; accuracy and EOS probability rise)."""
    if cfg.greater_is_better is not None:
        return cfg.greater_is_better
    return cfg.metric_for_best_model not in ("eval_loss", "eval_early_stop_risk")


def resolve_codebook_weights(weights: Sequence[float] | None, num_codebooks: int) -> list[float]:
    """The per-codebook loss weights for a model with ``num_codebooks`` codebooks.

    Done at model-load time rather than in the loader because only the model knows its codebook count.
    """
    if weights is None:
        return [1.0] * num_codebooks
    if len(weights) != num_codebooks:
        raise ConfigError(
            [
                f"codebook_weights has {len(weights)} values but the model has {num_codebooks} codebooks; "
                f"give {num_codebooks} values, or null to weigh all equally"
            ]
        )
    return [float(w) for w in weights]
