"""Typed run configuration: the settings of a fine-tuning run, loaded from YAML with ``key=value`` overrides.

A fine-tuning run is described by one :class:`TrainSettings`. It comes from an optional YAML file plus
command-line overrides (``learning_rate=2e-4 lora.r=32``), and every checkpoint records it with
:func:`higgs_tune.config_files.save_config`, so a result can always be traced back to the exact settings
that produced it. The settings are frozen pydantic dataclasses: each field's type and bounds beside it, the
rules between fields as validators; :mod:`higgs_tune.config_files` reads them from YAML and ``key=value``
and reports every problem at once with its fix. Dataclasses rather than ``BaseModel``, so that
``dataclasses.replace`` (which validates again) and ``asdict`` work on them as on the rest of the package's
records.

Decisions worth knowing:

* ``model``, ``data`` and ``output_dir`` may be None here. Commands need different subsets of them, and a
  config must load whatever it is used for; the command that needs one calls
  :func:`higgs_tune.config_files.require`, which reports every missing one at once, in the same error format.
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
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic.dataclasses import dataclass

from higgs_tune.config_files import SETTINGS, ConfigError, Problems, unchecked

TextNormalisation = Literal["none", "whitespace", "arabic", "arabic_no_diacritics", "arabic_spoken"]
"""How transcripts are normalised before they are prompted; the rules are `data.text_normalisation`'s."""

PromptPreset = Literal["original", "vllm-omni"]
"""Whose cloning prompt a run is trained and cloned with: the original implementation's, or vLLM-Omni's."""
BASE_SYSTEM_PROMPT = "Generate audio following instruction."
"""The base model's system prompt, which the original implementation and vLLM-Omni both send."""


@dataclass(frozen=True, config=SETTINGS)
class PromptSettings:
    """How training examples are prompted; saved with every checkpoint so inference prompts the same way."""

    system_prompt: str = BASE_SYSTEM_PROMPT
    """System message of every example. The default is the base model's own (the original implementation's
    voice-cloning prompt), so a fine-tune starts from the prompt the model was trained on."""
    scene: str | None = "Audio is recorded from a quiet room."
    """Scene description for samples that carry none of their own (the base model's default scene);
    None means no scene block."""
    text_normalisation: TextNormalisation | None = None
    """How the reference transcript and the target text are normalised (`data.text_normalisation`). null
    takes what the prepared data records (`prepare --text-normalisation`); a checkpoint records the value its
    run trained with, so `clone` and `eval` normalise the texts they are given the same way."""

    preset: PromptPreset = "original"
    """original: the prompt of the original implementation, with the scene above. vllm-omni: the prompt
    vLLM-Omni builds when it clones (docs/vllm-omni.md): the base system prompt and no scene block, so a
    fine-tune served there meets the prompt it was trained with; under it `scene` defaults to null, and a
    scene or another system prompt is refused. Samples that carry their own scene keep it either way."""

    @model_validator(mode="before")
    @classmethod
    def _preset_scene(cls, values: Any) -> Any:
        """Under the vllm-omni preset the scene not given is none, vLLM-Omni sending no scene block."""
        kwargs = getattr(values, "kwargs", values)
        if isinstance(kwargs, dict) and kwargs.get("preset") == "vllm-omni" and "scene" not in kwargs:
            kwargs["scene"] = None
        return values

    @model_validator(mode="after")
    def _preset_rules(self) -> PromptSettings:
        """A vllm-omni prompt is vLLM-Omni's: its system prompt, no scene block."""
        if self.preset != "vllm-omni":
            return self
        problems = []
        if self.scene is not None:
            problems.append("scene must be null under preset=vllm-omni (vLLM-Omni sends no scene block)")
        if self.system_prompt != BASE_SYSTEM_PROMPT:
            problems.append(
                f"system_prompt must be {BASE_SYSTEM_PROMPT!r} under preset=vllm-omni (vLLM-Omni's)"
            )
        if problems:
            raise Problems(problems)
        return self


@dataclass(frozen=True, config=SETTINGS)
class LoraSettings:
    """LoRA adapter settings (peft); ignored when ``full`` fine-tuning is on."""

    r: int = Field(16, ge=1)
    """Adapter rank: capacity of the update, and its size on disk."""
    alpha: int = Field(32, ge=1)
    """peft's ``lora_alpha``; the update is scaled by alpha / r."""
    dropout: float = Field(0.05, ge=0, lt=1)
    """Dropout on the adapter input, against overfitting small voice sets."""
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )
    """Module names to adapt. Each HiggsAudioV2 decoder layer has a text ``mlp`` and an ``audio_mlp``, both
    with gate/up/down_proj, so the default covers attention and both MLPs."""
    train_audio_head: bool = False
    """Also train ``audio_lm_head`` fully (peft ``modules_to_save``): more capacity for new voices or
    languages, at the cost of saving the whole head with the adapter."""

    @field_validator("target_modules")
    @classmethod
    def _names_a_module(cls, modules: list[str]) -> list[str]:
        """An adapter on no module would train nothing, silently."""
        if not modules:
            raise ValueError("target_modules must name at least one module, e.g. [q_proj, v_proj]")
        return modules


@dataclass(frozen=True, config=SETTINGS)
class DpoSettings:
    """Direct preference optimisation settings (`objective: dpo`; `training.dpo`)."""

    beta: float = Field(0.1, gt=0)
    """How strongly the model is held to the reference (the starting model): the implicit reward is beta times
    the log-probability gained over it; a larger beta keeps the model closer. 0.1 is the usual start."""
    sft_weight: float = Field(0.0, ge=0)
    """Weight of an SFT term, the chosen clips' per-frame cross-entropy, added to the DPO loss so that the
    chosen speech stays likely rather than only more likely than the rejected one; 0 is plain DPO."""
    disable_dropout: bool = True
    """Train with every dropout off (trl's `disable_dropout`), an `init_adapter`'s LoRA dropout included:
    the reference is scored without dropout, so only then does the first step score the reference itself
    (loss ln 2, margin 0) and the rewards measure what training changed, not dropout noise."""


@dataclass(frozen=True, config=SETTINGS)
class TrainSettings:
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
    max_steps: int | None = Field(200, ge=1)
    """Optimizer steps to train for; null to train for ``num_train_epochs`` instead."""
    num_train_epochs: float | None = Field(None, gt=0)
    """Passes over the data; only with ``max_steps=null``."""
    learning_rate: float = Field(1e-4, gt=0)
    """Peak learning rate, reached after warm-up."""
    weight_decay: float = Field(0.0, ge=0)
    """AdamW decoupled weight decay."""
    adam_beta1: float = Field(0.9, ge=0, lt=1)
    """AdamW first-moment decay."""
    adam_beta2: float = Field(0.95, ge=0, lt=1)
    """AdamW second-moment decay; 0.95 reacts faster than 0.999 to the shift from pretraining data."""
    warmup_steps: int = Field(10, ge=0)
    """Steps of linear warm-up from 0 to ``learning_rate``."""
    lr_scheduler_type: Literal["cosine", "constant", "linear"] = "cosine"
    """Learning-rate decay after warm-up."""
    min_lr_ratio: float = Field(0.1, ge=0, le=1)
    """Final learning rate of cosine and linear decay, as a fraction of ``learning_rate``."""
    per_device_train_batch_size: int = Field(4, ge=1)
    """Examples per micro-batch on each GPU (unless ``max_tokens_per_batch`` is set)."""
    gradient_accumulation_steps: int = Field(1, ge=1)
    """Micro-batches per optimizer step."""
    max_grad_norm: float = Field(1.0, ge=0)
    """Gradient clipping threshold; 0 turns clipping off."""
    logging_steps: int = Field(10, ge=1)
    """Log training metrics every this many steps."""
    save_steps: int = Field(100, ge=1)
    """Save a checkpoint every this many steps (and at the end)."""
    save_total_limit: int | None = Field(2, ge=1)
    """Checkpoints to keep, oldest deleted first; null keeps all."""
    eval_steps: int = Field(50, ge=1)
    """Compute held-out loss every this many steps."""
    eval_fraction: float = Field(0.05, ge=0, lt=1)
    """Share of the data held out for evaluation; 0 turns the held-out split off."""
    metric_for_best_model: str = "eval_loss"
    """Held-out metric that picks the best checkpoint (one of ``BEST_MODEL_METRICS``); `clone`, `eval` and
    `merge` load the best checkpoint of a run unless told ``--checkpoint last``."""
    greater_is_better: bool | None = None
    """Whether a larger ``metric_for_best_model`` is better; null decides from the metric (see
    :func:`metric_greater_is_better`)."""
    early_stopping_patience: int | None = Field(None, ge=1)
    """Stop after this many held-out evaluations without an improvement of the metric; null never stops
    early."""
    early_stopping_threshold: float = Field(0.0, ge=0)
    """How much the metric must improve to reset the patience count."""
    seed: int = Field(42, ge=0, lt=2**32)
    """Seed for the data split, shuffling and initialisation (below 2**32, numpy's limit)."""
    bf16: bool | Literal["auto"] = "auto"
    """bf16 mixed precision: true, false, or "auto" (on where the hardware supports it)."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: less memory for about a third more compute."""
    text_loss_weight: float = Field(0.0, ge=0)
    """Weight of the text-token loss; 0 means no text head and an audio-only loss."""
    codebook_weights: list[float] | None = None
    """Loss weight per audio codebook, one per codebook of the model; null weighs all equally (1.0)."""
    max_tokens_per_batch: int | None = Field(None, ge=1)
    """Token budget per micro-batch (sequences grouped by length); null for fixed-size micro-batches of
    ``per_device_train_batch_size`` examples."""
    max_seq_len: int = Field(4096, ge=1)
    """Longest example in tokens; longer ones are skipped."""
    dataloader_num_workers: int = Field(0, ge=0)
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
    torch_compile: bool = False
    """Compile each decoder layer with `torch.compile` (inductor) after the LoRA adapters are in place: fuses
    the norms, activations and residual adds into fewer kernels, at a compile of a minute or so at the
    start of training (again when the batch shapes first vary). Same losses as without (to float32
    rounding); off by default until `bench/gpu.sh` shows it pays on a GPU."""
    preview_steps: int = Field(0, ge=0)
    """Clone a few held-out prompts every this many steps and log audio + speech checks; 0 turns it off."""
    num_preview_prompts: int = Field(2, ge=1)
    """How many held-out prompts `preview_steps` clones."""
    attn_implementation: str = "sdpa"
    """transformers attention backend, e.g. sdpa, eager or flash_attention_2."""
    report_to: list[str] = Field(default_factory=lambda: ["tensorboard"])
    """Experiment trackers that get the metrics, the run config and the previews' audio: any of
    tensorboard (RUN/tensorboard/), wandb, trackio; [none] for metrics.jsonl only."""
    prompt: PromptSettings = Field(default_factory=PromptSettings)
    lora: LoraSettings = Field(default_factory=LoraSettings)
    dpo: DpoSettings = Field(default_factory=DpoSettings)

    @field_validator("prompt", "lora", "dpo", mode="before")
    @classmethod
    def _section_from_mapping(cls, value: Any, info: ValidationInfo) -> Any:
        """A section given as a mapping (YAML) is built here, since strict settings take only instances;
        an empty one (its keys all commented out, so null) takes the defaults."""
        if value is None or isinstance(value, Mapping):
            return cls.__pydantic_fields__[info.field_name].annotation(**(value or {}))
        return value

    @field_validator("codebook_weights")
    @classmethod
    def _weighs_something(cls, weights: list[float] | None) -> list[float] | None:
        """Weights that can scale a loss: none negative, not all 0 (their count is the model's to check)."""
        negative = [f"{w!r} at index {i}" for i, w in enumerate(weights or []) if w < 0]
        if weights == []:
            raise ValueError("codebook_weights is empty; use null to weigh all codebooks equally")
        if negative:
            raise ValueError(f"codebook_weights must all be >= 0, got {', '.join(negative)}")
        if weights is not None and not any(weights):
            raise ValueError("codebook_weights are all 0, so nothing would be trained")
        return weights

    @field_validator("metric_for_best_model")
    @classmethod
    def _known_metric(cls, metric: str) -> str:
        """A metric the held-out rows have, refused now rather than at the first evaluation."""
        if not _BEST_MODEL_METRIC.fullmatch(metric):
            valid = ", ".join(BEST_MODEL_METRICS)
            raise ValueError(f"metric_for_best_model: unknown metric {metric!r}; valid metrics: {valid}")
        return metric

    @field_validator("report_to")
    @classmethod
    def _known_trackers(cls, report_to: list[str]) -> list[str]:
        """Every tracker is one we know, and `none` stands alone."""
        problems = [
            f"report_to: unknown tracker {name!r}; choose from {', '.join(REPORT_TO)}"
            for name in report_to
            if name not in REPORT_TO
        ]
        if "none" in report_to and len(report_to) > 1:
            problems.append("report_to: 'none' cannot be combined with other trackers; drop it")
        if problems:
            raise Problems(problems)
        return report_to

    @model_validator(mode="after")
    def _rules_across_fields(self, info: ValidationInfo) -> TrainSettings:
        """The rules between fields, over those that passed their own checks (all, unless the loader says)."""
        skip = unchecked(info)
        values = {name: getattr(self, name) for name in self.__pydantic_fields__ if name not in skip}
        problems = [*_length_rules(values), *_best_model_rules(values), *_objective_rules(values)]
        if values.get("full") and values.get("quantization", "none") != "none":
            problems.append(
                f"quantization={values['quantization']} quantises the frozen base for LoRA (QLoRA), "
                "but full=true trains every weight; set full=false or quantization=none"
            )
        if problems:
            raise Problems(problems)
        return self


def _length_rules(values: Mapping[str, Any]) -> list[str]:
    """How long to train, warm-up within it, and a token budget the longest example fits in."""
    problems = []
    steps, epochs = values.get("max_steps"), values.get("num_train_epochs")
    if "max_steps" in values and "num_train_epochs" in values and steps is None and epochs is None:
        problems.append("set max_steps or num_train_epochs to say how long to train")
    elif steps is not None and epochs is not None:
        problems.append(
            f"max_steps ({steps}) and num_train_epochs ({epochs}) are both set; "
            "set max_steps=null to train by epochs, or drop num_train_epochs"
        )
    warmup = values.get("warmup_steps")
    if steps is not None and warmup is not None and warmup > steps:
        problems.append(
            f"warmup_steps ({warmup}) must be <= max_steps ({steps}); lower warmup_steps or raise max_steps"
        )
    budget, seq_len = values.get("max_tokens_per_batch"), values.get("max_seq_len")
    if budget is not None and seq_len is not None and budget < seq_len:
        problems.append(
            f"max_tokens_per_batch ({budget}) must be >= max_seq_len ({seq_len}) "
            "so the longest allowed example fits in a batch; raise it or lower max_seq_len"
        )
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


def _best_model_rules(values: Mapping[str, Any]) -> list[str]:
    """Early stopping has held-out evaluations to watch."""
    if values.get("early_stopping_patience") is not None and values.get("eval_fraction") == 0:
        return [
            "early_stopping_patience needs held-out evaluations, but eval_fraction is 0; "
            "set eval_fraction > 0 or early_stopping_patience=null"
        ]
    return []


def _objective_rules(values: Mapping[str, Any]) -> list[str]:
    """What each objective trains on, and the settings DPO has no use for."""
    problems = []
    if values.get("init_adapter") is not None and values.get("full"):
        problems.append("init_adapter starts LoRA from an adapter, but full=true; drop one of them")
    if values.get("objective") != "dpo":
        if values.get("prefs") is not None:
            problems.append("prefs is read by objective=dpo only; set it, or drop prefs")
        if str(values.get("metric_for_best_model")).startswith("eval_reward_"):
            problems.append(
                f"metric_for_best_model={values['metric_for_best_model']} is measured by objective=dpo only; "
                "use eval_loss"
            )
        return problems
    if values.get("data") is not None:
        problems.append("objective=dpo trains on prefs, not data; drop data")
    if values.get("max_tokens_per_batch") is not None:
        problems.append(
            "objective=dpo batches pairs by per_device_train_batch_size; set max_tokens_per_batch=null"
        )
    if values.get("text_loss_weight"):
        problems.append("objective=dpo scores audio only; set text_loss_weight=0")
    return problems


REPORT_TO = ("tensorboard", "wandb", "trackio", "none")
"""The trackers `report_to` can name (accelerate's trackers of those names); none means no tracker."""


def metric_greater_is_better(cfg: TrainSettings) -> bool:
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
