"""A typed-YAML engine: frozen dataclasses loaded from YAML, with ``key=value`` overrides on top.

The settings themselves live in :mod:`higgs_tune.config`; this module knows nothing of them and turns any
dataclass whose fields all have defaults (and whose nested sections are dataclasses too) into a strict
loader. Loading is strict and complete: unknown keys, wrong types and out-of-range values are all collected
and raised together in one :class:`ConfigError`, each problem naming the fix, so a long multi-GPU job never
starts with a typo in it and the user never has to fix problems one run at a time.

What a settings class may declare:

* numeric bounds, with :func:`bounded` next to the field, so the limits are read where they apply;
* a static ``_checks(values, prefix)`` for rules across fields, given only the fields that passed their own
  type and bounds, returning problem messages.

YAML is read so that ``1e-4`` is a number, as in YAML 1.2; PyYAML alone reads it as a string.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import operator
import re
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

from higgs_tune.errors import UserError

T = TypeVar("T")


class ConfigError(UserError):
    """Every problem found in a config, reported together; each line names the key and the fix."""

    def __init__(self, problems: Sequence[str], where: str = "config") -> None:
        self.problems = list(problems)
        self.where = where
        count = f"{len(self.problems)} problem{'s' if len(self.problems) != 1 else ''}"
        lines = "\n".join(f"  - {problem}" for problem in self.problems)
        super().__init__(f"{where}: {count}:\n{lines}")


def bounded(
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
    """The out-of-range message for ``value``, or None when in range or None; NaN is never in range.

    Infinity and NaN are refused for every number, bounded or not: no setting means anything at infinity,
    and `learning_rate=.inf` would only surface later as a non-finite loss.
    """
    if isinstance(value, float) and not math.isfinite(value):
        return f"{name} must be a finite number, got {value!r}"
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


def load_config(
    cls: type[T], yaml_path: str | Path | None, overrides: Sequence[str] = (), options: Sequence[str] = ()
) -> T:
    """A validated ``cls`` from an optional YAML file with ``key=value`` overrides applied on top.

    Override values are read with YAML rules (``1e-4``, ``true``, ``[q_proj,v_proj]``, ``null``) and then
    checked against the field type; string fields keep the raw text. `options` are ``key=value`` settings
    a command made of its own options (``--out`` is ``output_dir=...``), applied after `overrides` alike;
    the error names the number of the user's overrides only, which a user can count on the command line.
    Raises one ConfigError listing every problem in the file, the overrides and the options.
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
    merged, override_problems = _apply_overrides(data, [*overrides, *options])
    problems.extend(override_problems)
    cfg = _build(cls, merged, "", cls, problems)
    if cfg is None or problems:
        raise ConfigError(problems, where)
    return cfg
