"""Typed run configuration: dataclasses loaded from YAML, with ``key=value`` overrides on top.

A fine-tuning run is described by one :class:`TrainConfig`. It comes from an optional YAML file plus
command-line overrides (``learning_rate=2e-4 lora.r=32``), and every checkpoint records it with
:func:`save_config`, so a result can always be traced back to the exact settings that produced it.

Loading is strict and complete: unknown keys, wrong types and out-of-range values are all collected and
raised together in one :class:`ConfigError`, each problem naming the fix, so a long multi-GPU job never
starts with a typo in it and the user never has to fix problems one run at a time.

Decisions worth knowing:

* ``model``, ``data`` and ``output_dir`` may be None here. Commands need different subsets of them, and a
  config must load whatever it is used for; the command that needs one calls :func:`require`, which
  reports every missing one at once, in the same error format.
* Training length is ``max_steps`` *or* ``num_train_epochs``: setting both is an error rather than one
  silently winning, so train by epochs with ``max_steps=null num_train_epochs=3``.
* ``bf16`` is ``true``, ``false`` or ``"auto"`` (bf16 where the hardware supports it), so the same file
  works on GPUs with and without bf16.
* ``codebook_weights`` length is checked against the model (:func:`resolve_codebook_weights`), not here:
  Higgs Audio v2 has 8 codebooks but small test models have fewer.
* YAML is read so that ``1e-4`` is a number, as in YAML 1.2; PyYAML alone reads it as a string.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import operator
import re
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """Every problem found in a config, reported together; each line names the key and the fix."""

    def __init__(self, problems: Sequence[str], where: str = "config") -> None:
        self.problems = list(problems)
        self.where = where
        count = f"{len(self.problems)} problem{'s' if len(self.problems) != 1 else ''}"
        lines = "\n".join(f"  - {problem}" for problem in self.problems)
        super().__init__(f"{where}: {count}:\n{lines}")


def _bounded(
    default: Any,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
) -> Any:
    """A field with numeric bounds, declared next to the field so the limits are read where they apply."""
    bounds = {op: limit for op, limit in ((">=", ge), (">", gt), ("<=", le), ("<", lt)) if limit is not None}
    return field(default=default, metadata={"bounds": bounds})


@dataclass(frozen=True)
class PromptConfig:
    """How training examples are prompted; saved with every checkpoint so inference prompts the same way."""

    system_prompt: str = "Generate audio following instruction."
    """System message of every example. The default is the base model's own (the original implementation's
    voice-cloning prompt), so a fine-tune starts from the prompt the model was trained on."""
    scene: str | None = "Audio is recorded from a quiet room."
    """Scene description for samples that carry none of their own (the base model's default scene);
    None means no scene block."""


@dataclass(frozen=True)
class LoraConfig:
    """LoRA adapter settings (peft); ignored when ``full`` fine-tuning is on."""

    r: int = _bounded(16, ge=1)
    """Adapter rank: capacity of the update, and its size on disk."""
    alpha: int = _bounded(32, ge=1)
    """peft's ``lora_alpha``; the update is scaled by alpha / r."""
    dropout: float = _bounded(0.05, ge=0, lt=1)
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
class TrainConfig:
    """One fine-tuning run. Names follow transformers' TrainingArguments where the two overlap."""

    model: str | None = None
    """Hub id or local path of a HiggsAudioV2ForConditionalGeneration checkpoint (required to train)."""
    data: str | None = None
    """Training data location (required to train)."""
    output_dir: str | None = None
    """Where checkpoints, logs and the saved config go (required to train)."""
    full: bool = False
    """Full fine-tuning of every weight instead of LoRA adapters."""
    max_steps: int | None = _bounded(200, ge=1)
    """Optimizer steps to train for; null to train for ``num_train_epochs`` instead."""
    num_train_epochs: float | None = _bounded(None, gt=0)
    """Passes over the data; only with ``max_steps=null``."""
    learning_rate: float = _bounded(1e-4, gt=0)
    """Peak learning rate, reached after warm-up."""
    weight_decay: float = _bounded(0.0, ge=0)
    """AdamW decoupled weight decay."""
    adam_beta1: float = _bounded(0.9, ge=0, lt=1)
    """AdamW first-moment decay."""
    adam_beta2: float = _bounded(0.95, ge=0, lt=1)
    """AdamW second-moment decay; 0.95 reacts faster than 0.999 to the shift from pretraining data."""
    warmup_steps: int = _bounded(10, ge=0)
    """Steps of linear warm-up from 0 to ``learning_rate``."""
    lr_scheduler_type: Literal["cosine", "constant", "linear"] = "cosine"
    """Learning-rate decay after warm-up."""
    min_lr_ratio: float = _bounded(0.1, ge=0, le=1)
    """Final learning rate of cosine and linear decay, as a fraction of ``learning_rate``."""
    per_device_train_batch_size: int = _bounded(4, ge=1)
    """Examples per micro-batch on each GPU (unless ``max_tokens_per_batch`` is set)."""
    gradient_accumulation_steps: int = _bounded(1, ge=1)
    """Micro-batches per optimizer step."""
    max_grad_norm: float = _bounded(1.0, ge=0)
    """Gradient clipping threshold; 0 turns clipping off."""
    logging_steps: int = _bounded(10, ge=1)
    """Log training metrics every this many steps."""
    save_steps: int = _bounded(100, ge=1)
    """Save a checkpoint every this many steps (and at the end)."""
    save_total_limit: int | None = _bounded(2, ge=1)
    """Checkpoints to keep, oldest deleted first; null keeps all."""
    eval_steps: int = _bounded(50, ge=1)
    """Compute held-out loss every this many steps."""
    eval_fraction: float = _bounded(0.05, ge=0, lt=1)
    """Share of the data held out for evaluation; 0 turns the held-out split off."""
    seed: int = _bounded(42, ge=0, lt=2**32)
    """Seed for the data split, shuffling and initialisation (below 2**32, numpy's limit)."""
    bf16: bool | Literal["auto"] = "auto"
    """bf16 mixed precision: true, false, or "auto" (on where the hardware supports it)."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: less memory for about a third more compute."""
    text_loss_weight: float = _bounded(0.0, ge=0)
    """Weight of the text-token loss; 0 means no text head and an audio-only loss."""
    codebook_weights: list[float] | None = None
    """Loss weight per audio codebook, one per codebook of the model; null weighs all equally (1.0)."""
    max_tokens_per_batch: int | None = _bounded(None, ge=1)
    """Token budget per micro-batch (sequences grouped by length); null for fixed-size micro-batches of
    ``per_device_train_batch_size`` examples."""
    max_seq_len: int = _bounded(4096, ge=1)
    """Longest example in tokens; longer ones are skipped."""
    dataloader_num_workers: int = _bounded(0, ge=0)
    """Background processes loading batches; 0 loads them in the training process."""
    optim: Literal["adamw_torch", "adamw_8bit"] = "adamw_torch"
    """Optimizer; adamw_8bit (bitsandbytes) keeps its state in 8 bits, for full fine-tuning on less memory."""
    sample_steps: int = _bounded(0, ge=0)
    """Clone a few held-out prompts every this many steps and log audio + speech checks; 0 turns it off."""
    num_sample_prompts: int = _bounded(2, ge=1)
    """How many held-out prompts `sample_steps` clones."""
    attn_implementation: str = "sdpa"
    """transformers attention backend, e.g. sdpa, eager or flash_attention_2."""
    prompt: PromptConfig = field(default_factory=PromptConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)

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


def require(cfg: Any, *names: str) -> None:
    """Raise one ConfigError naming every listed key (dotted for sections) that is still None.

    Commands call this for the keys they need, since the dataclasses leave e.g. ``model`` optional.
    """
    missing = [name for name in names if functools.reduce(getattr, name.split("."), cfg) is None]
    if missing:
        raise ConfigError(
            [f"{name} is required: set it in the config file or pass {name}=..." for name in missing]
        )


# --- YAML dialect -------------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads exponent floats without a dot or exponent sign (1e-4, 2E5) as numbers."""


class _Dumper(yaml.SafeDumper):
    """SafeDumper that quotes strings like "1e-4", so they load back as strings under :class:`_Loader`."""


_EXPONENT_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$")
for _cls in (_Loader, _Dumper):
    _cls.add_implicit_resolver("tag:yaml.org,2002:float", _EXPONENT_FLOAT, list("-+0123456789."))


# --- Validation ---------------------------------------------------------------------------------------

_UNIONS = (Union, types.UnionType)
_SCALAR_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
_PLURALS = {int: "integers", float: "numbers", bool: "booleans", str: "strings"}


class _Mismatch(Exception):
    """A value that does not fit a type; the caller words the message, since it knows the key."""


@dataclass(frozen=True)
class _Override:
    """A command-line value: its YAML reading plus the raw text, which string fields fall back to so that
    ``prompt.system_prompt=Note: speak slowly`` is a string rather than a YAML mapping."""

    parsed: Any
    text: str


def _coerce(value: Any, tp: Any) -> Any:
    """``value`` checked against type hint ``tp``; ints are widened for float fields. Raises _Mismatch."""
    origin = get_origin(tp)
    if origin in _UNIONS:
        for arm in get_args(tp):
            try:
                return _coerce(value, arm)
            except _Mismatch:
                pass
        raise _Mismatch
    if origin is Literal:
        if any(type(value) is type(option) and value == option for option in get_args(tp)):
            return value
        raise _Mismatch
    if origin is list:
        if not isinstance(value, list):
            raise _Mismatch
        (item_type,) = get_args(tp)
        return [_coerce(item, item_type) for item in value]
    if tp is type(None):
        if value is None:
            return None
        raise _Mismatch
    if tp not in _SCALAR_NAMES:
        raise TypeError(f"unsupported config field type {tp!r}")
    if tp is float and type(value) is int:
        return float(value)
    # Exact type match: YAML booleans are Python ints, and must not pass as numbers.
    if type(value) is tp:
        return value
    raise _Mismatch


def _describe(tp: Any) -> str:
    """What a type hint accepts, in the words of a YAML user."""
    origin = get_origin(tp)
    if origin in _UNIONS:
        return ", or ".join(_describe(arm) for arm in get_args(tp))
    if origin is Literal:
        options = [repr(option) for option in get_args(tp)]
        return options[0] if len(options) == 1 else "one of " + ", ".join(options)
    if origin is list:
        return "a list of " + _PLURALS[get_args(tp)[0]]
    return "null" if tp is type(None) else _SCALAR_NAMES[tp]


def _show(value: Any) -> str:
    """``value`` for a message, spelt as in YAML where Python differs (true, false, null)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value)


def _literal_options(tp: Any) -> list[str]:
    """The string options of any Literal in ``tp``, for "did you mean" on misspelt choices."""
    if get_origin(tp) in _UNIONS:
        return [option for arm in get_args(tp) for option in _literal_options(arm)]
    if get_origin(tp) is Literal:
        return [option for option in get_args(tp) if isinstance(option, str)]
    return []


def _accepts_str(tp: Any) -> bool:
    """Whether ``tp`` takes strings, so that an override's raw text can stand in for its YAML reading."""
    return tp is str or (get_origin(tp) in _UNIONS and any(_accepts_str(arm) for arm in get_args(tp)))


def _coerce_field(name: str, value: Any, tp: Any) -> Any:
    """A field value checked against its type; raises ValueError with the user-facing message."""
    raw = value
    if isinstance(value, _Override):
        value = value.parsed
    try:
        return _coerce(value, tp)
    except _Mismatch:
        if isinstance(raw, _Override) and _accepts_str(tp):
            return raw.text
    message = f"{name} must be {_describe(tp)}, got {_show(value)}"
    close = difflib.get_close_matches(value, _literal_options(tp), n=1) if isinstance(value, str) else []
    raise ValueError(message + (f" (did you mean {close[0]!r}?)" if close else ""))


_COMPARISONS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}


def _bounds_problem(name: str, value: Any, bounds: Mapping[str, float]) -> str | None:
    """The out-of-range message for ``value``, or None when in range or None; NaN is never in range."""
    if value is None or all(_COMPARISONS[op](value, limit) for op, limit in bounds.items()):
        return None
    wanted = " and ".join(f"{op} {limit}" for op, limit in bounds.items())
    return f"{name} must be {wanted}, got {value!r}"


def _is_section(tp: Any) -> bool:
    """Whether a field holds a nested config section (a dataclass), addressed as ``section.key``."""
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _key_paths(cls: type, prefix: str = "") -> list[str]:
    """Every dotted key of ``cls`` and its sections, for suggestions on keys given at the wrong level."""
    paths = []
    for name, tp in get_type_hints(cls).items():
        paths.append(prefix + name)
        if _is_section(tp):
            paths.extend(_key_paths(tp, f"{prefix}{name}."))
    return paths


def _unknown_key(key: str, prefix: str, siblings: list[str], root: type) -> str:
    """The message for an unknown key, with the likeliest fix: the same key in another section (a key given
    at the wrong level), else a near sibling (a typo), else a near key elsewhere, else the valid keys."""
    by_leaf: dict[str, list[str]] = {}
    for path in _key_paths(root):
        by_leaf.setdefault(path.rsplit(".", 1)[-1], []).append(path)
    close_sibling = [prefix + name for name in difflib.get_close_matches(key, siblings, n=1)]
    close_leaf = difflib.get_close_matches(key, list(by_leaf), n=1)
    for candidates in (by_leaf.get(key, []), close_sibling, by_leaf[close_leaf[0]] if close_leaf else []):
        if candidates:
            return f"unknown key '{prefix}{key}' (did you mean {' or '.join(repr(p) for p in candidates)}?)"
    return f"unknown key '{prefix}{key}' (valid keys here: {', '.join(siblings)})"


def _build(cls: type[T], data: Any, prefix: str, root: type, problems: list[str]) -> T | None:
    """An instance of ``cls`` from ``data``, appending every problem found; None if there were any."""
    if isinstance(data, _Override):
        data = data.parsed
    if data is None:  # a section whose keys are all commented out
        data = {}
    if not isinstance(data, Mapping):
        where = f"section '{prefix[:-1]}'" if prefix else "the config"
        problems.append(f"{where} must be a mapping of keys to values, got {_show(data)}")
        return None
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    found_before = len(problems)
    problems.extend(_unknown_key(str(key), prefix, list(fields), root) for key in data if key not in fields)
    values: dict[str, Any] = {}
    for name, spec in fields.items():
        tp = hints[name]
        if _is_section(tp):
            section = _build(tp, data.get(name, {}), f"{prefix}{name}.", root, problems)
            if section is not None:
                values[name] = section
            continue
        if name in data:
            value = data[name]
        else:  # every field has a default, so that any subset of keys (even none) is a complete config
            value = spec.default if spec.default_factory is dataclasses.MISSING else spec.default_factory()
        try:
            value = _coerce_field(prefix + name, value, tp)
        except ValueError as err:
            problems.append(str(err))
            continue
        out_of_range = _bounds_problem(prefix + name, value, spec.metadata.get("bounds", {}))
        if out_of_range:
            problems.append(out_of_range)
        else:
            values[name] = value
    checks = getattr(cls, "_checks", None)
    if checks is not None:
        problems.extend(checks(values, prefix))
    return cls(**values) if len(problems) == found_before else None


def _parse_override(item: str, problems: list[str]) -> tuple[list[str], _Override] | None:
    """``key.sub=value`` split into its key path and value, or None (with a problem) if malformed."""
    key, sep, text = item.partition("=")
    parts = key.strip().split(".")
    if not sep:
        problems.append(f"override '{item}' is not key=value, e.g. learning_rate=2e-4 or lora.r=32")
        return None
    if not all(part.isidentifier() for part in parts):
        problems.append(f"override '{item}': '{key}' is not a key; use names joined by dots, e.g. lora.r")
        return None
    try:
        parsed = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError:
        parsed = text
    return parts, _Override(parsed, text)


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> None:
    """Merge ``extra`` into ``base`` in place, key by key, so ``lora={r: 8}`` keeps the other lora keys."""
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def _apply_overrides(data: Mapping[str, Any], overrides: Sequence[str]) -> tuple[dict[str, Any], list[str]]:
    """``data`` with ``key=value`` overrides applied in order (the last one for a key wins).

    Returns the merged mapping and the malformed overrides; values are checked later, by the loader.
    """
    merged = _deep_copy(data)
    problems: list[str] = []
    for item in overrides:
        parsed = _parse_override(item, problems)
        if parsed is None:
            continue
        path, value = parsed
        node = merged
        for part in path[:-1]:
            child = node.get(part)
            if isinstance(child, _Override):  # an earlier section=value override, e.g. lora={r: 8}
                child = child.parsed
            node[part] = _deep_copy(child) if isinstance(child, Mapping) else {}
            node = node[part]
        if isinstance(value.parsed, Mapping) and isinstance(node.get(path[-1]), dict):
            _merge(node[path[-1]], value.parsed)
        else:
            node[path[-1]] = value
    return merged, problems


def _deep_copy(data: Mapping[str, Any]) -> dict[str, Any]:
    """A copy whose nested mappings can be changed without touching the caller's."""
    return {key: _deep_copy(value) if isinstance(value, Mapping) else value for key, value in data.items()}


# --- Loading and saving ------------------------------------------------------------------------------


def config_from_dict(cls: type[T], data: Mapping[str, Any], where: str = "config") -> T:
    """A validated ``cls`` from a (nested) mapping; missing keys take their defaults.

    Raises ConfigError listing every problem; ``where`` names the source in its message.
    """
    problems: list[str] = []
    cfg = _build(cls, data, "", cls, problems)
    if cfg is None:
        raise ConfigError(problems, where)
    return cfg


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """``cfg`` as plain nested dicts and lists, ready for YAML or JSON and for :func:`config_from_dict`."""
    return dataclasses.asdict(cfg)


def save_config(cfg: Any, path: str | Path) -> None:
    """Write ``cfg`` as YAML in field order, so a checkpoint records exactly what it was trained with."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.dump(config_to_dict(cfg), Dumper=_Dumper, sort_keys=False, allow_unicode=True)
    path.write_text(text, encoding="utf-8")


def load_config(cls: type[T], yaml_path: str | Path | None, overrides: Sequence[str] = ()) -> T:
    """A validated ``cls`` from an optional YAML file with ``key=value`` overrides applied on top.

    Override values are read with YAML rules (``1e-4``, ``true``, ``[q_proj,v_proj]``, ``null``) and then
    checked against the field type; string fields keep the raw text. Raises one ConfigError listing every
    problem in the file and the overrides.
    """
    problems: list[str] = []
    data: Any = {}
    where = "config"
    if yaml_path is not None:
        where = str(yaml_path)
        try:
            data = yaml.load(Path(yaml_path).read_text(encoding="utf-8"), Loader=_Loader)
        except OSError as err:
            problems.append(f"cannot read config file: {err.strerror or err}")
        except yaml.YAMLError as err:
            problems.append(f"not valid YAML: {err}")
        data = {} if data is None else data
        if not isinstance(data, Mapping):
            problems.append(f"the file must hold a mapping of keys to values, got {_show(data)}")
            data = {}
    if overrides:
        where += f" + {len(overrides)} override{'s' if len(overrides) != 1 else ''}"
    merged, override_problems = _apply_overrides(data, overrides)
    problems.extend(override_problems)
    cfg = _build(cls, merged, "", cls, problems)
    if cfg is None or problems:
        raise ConfigError(problems, where)
    return cfg
