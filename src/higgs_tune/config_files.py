"""The run config's files and command line: YAML with ``key=value`` overrides, over pydantic models.

The settings are pydantic dataclasses (:mod:`higgs_tune.config`), which check types, bounds and the rules
between fields. On top, this module reads YAML in which ``1e-4`` is a number (as in YAML 1.2; PyYAML alone
reads a string), applies ``key=value`` overrides read as YAML, and rewords pydantic's errors into one
:class:`ConfigError` naming every problem with its fix (the key, what it takes, the key meant by a misspelt
one), so a long multi-GPU job never starts with a typo in it and no one fixes problems one run at a time.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import re
import types
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import yaml
from pydantic import ConfigDict, ValidationError, ValidationInfo
from pydantic_core import ArgsKwargs

from higgs_tune.errors import UserError

T = TypeVar("T")

SETTINGS = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, use_attribute_docstrings=True)
"""The settings' pydantic config: no unknown keys; no conversions (a YAML `true` is not the number 1, nor
`"5"` the integer 5; an integer is still a number); no infinity or NaN, which no setting means."""


class ConfigError(UserError):
    """Every problem found in a config, reported together; each line names the key and the fix."""

    def __init__(self, problems: Sequence[str], where: str = "config") -> None:
        self.problems = list(problems)
        self.where = where
        count = f"{len(self.problems)} problem{'s' if len(self.problems) != 1 else ''}"
        lines = "\n".join(f"  - {problem}" for problem in self.problems)
        super().__init__(f"{where}: {count}:\n{lines}")


class Problems(ValueError):
    """Several problems raised by one validator, each naming its key within the validator's section; the
    loader prefixes the section (`target_modules ...` becomes `lora.target_modules ...`)."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = list(problems)


def unchecked(info: ValidationInfo) -> frozenset[str]:
    """The fields that failed their own checks, which the rules between fields skip: the loader validates
    again without them to report those rules too, and the defaults in their place are not the user's."""
    return (info.context or {}).get("unchecked", frozenset())


def require(cfg: Any, *names: str) -> None:
    """Raise one ConfigError naming every listed key (dotted for sections) that is still None.

    Commands call this for the keys they need, since the settings leave e.g. ``model`` optional.
    """
    missing = [name for name in names if functools.reduce(getattr, name.split("."), cfg) is None]
    if missing:
        raise ConfigError(
            [f"{name} is required: set it in the config file or pass {name}=..." for name in missing]
        )


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads exponent floats without a dot or exponent sign (1e-4, 2E5) as numbers."""


class _Dumper(yaml.SafeDumper):
    """SafeDumper that quotes strings like "1e-4", so they load back as strings under :class:`_Loader`."""


_EXPONENT_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$")
for _cls in (_Loader, _Dumper):
    _cls.add_implicit_resolver("tag:yaml.org,2002:float", _EXPONENT_FLOAT, list("-+0123456789."))


def _fields(tp: Any) -> dict[str, Any]:
    """The fields of a settings section by name (none for anything else)."""
    return tp.__pydantic_fields__ if isinstance(tp, type) and dataclasses.is_dataclass(tp) else {}


def _plain(data: Mapping[Any, Any]) -> dict[str, Any]:
    """A copy with string keys whose nested mappings can change without changing the caller's."""
    return {str(key): _plain(value) if isinstance(value, Mapping) else value for key, value in data.items()}


def _set(data: dict[str, Any], path: Sequence[str], value: Any) -> None:
    """Set ``path`` in ``data``; a mapping merges key by key, so ``lora={r: 8}`` keeps the other lora keys."""
    for part in path[:-1]:
        data[part] = data[part] if isinstance(data.get(part), dict) else {}
        data = data[part]
    if isinstance(value, Mapping) and isinstance(data.get(path[-1]), dict):
        for key, item in value.items():
            _set(data[path[-1]], [str(key)], item)
    else:
        data[path[-1]] = _plain(value) if isinstance(value, Mapping) else value


def _apply_override(cls: type, data: dict[str, Any], item: str, problems: list[str]) -> None:
    """Apply ``key.sub=value``, the value read as YAML, but a string field keeps the raw text where YAML reads
    something else (``prompt.system_prompt=Note: speak slowly`` is a string, not a mapping)."""
    key, sep, text = item.partition("=")
    path = key.strip().split(".")
    if not sep:
        problems.append(f"override '{item}' is not key=value, e.g. learning_rate=2e-4 or lora.r=32")
        return
    if not all(part.isidentifier() for part in path):
        problems.append(f"override '{item}': '{key}' is not a key; use names joined by dots, e.g. lora.r")
        return
    try:
        value = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError:
        value = text
    tp = functools.reduce(lambda tp, part: getattr(_fields(tp).get(part), "annotation", None), path, cls)
    arms = get_args(tp) if get_origin(tp) in (Union, types.UnionType) else (tp,)
    if str in arms and not isinstance(value, str) and not (value is None and type(None) in arms):
        value = text
    _set(data, path, value)


def _construct(cls: type[T], data: dict[str, Any], skip: frozenset[str] = frozenset()) -> T:
    """``cls(**data)`` (what its ``__init__`` runs), telling the rules between fields what to skip."""
    cfg = cls.__new__(cls)
    validator = cls.__pydantic_validator__  # type: ignore[attr-defined]
    validator.validate_python(ArgsKwargs((), data), self_instance=cfg, context={"unchecked": skip})
    return cfg


def _validate(cls: type[T], data: dict[str, Any], problems: list[str]) -> T | None:
    """A ``cls`` from ``data``, or None with every problem appended: the fields' own, then the rules between
    the fields that passed theirs (pydantic runs those only when every field passes)."""
    try:
        return _construct(cls, data)
    except ValidationError as err:
        found = [_message(cls, data, error) for error in err.errors()]
        failed = frozenset(str(error["loc"][0]) for error in err.errors() if error["loc"])
    if failed:
        try:
            _construct(cls, {key: value for key, value in data.items() if key not in failed}, failed)
        except ValidationError as err:
            found += [_message(cls, data, error) for error in err.errors()]
    problems.extend(dict.fromkeys(line for lines in found for line in lines))  # once, not once per union arm
    return None


def _message(root: type, data: dict[str, Any], error: Any) -> list[str]:
    """Pydantic's ``error`` in a YAML user's words, naming the dotted key and what it takes."""
    path, section, tp, value = [], root, None, data
    for part in error["loc"]:  # keys down to the field; below it come union arms and list indices
        field = _fields(section).get(part) if tp is None else None
        if field is None:
            path += [str(part)] if tp is None else []  # an unknown key
            break
        path.append(part)
        value = value.get(part) if isinstance(value, Mapping) else None
        section, tp = (field.annotation, None) if _fields(field.annotation) else (section, field.annotation)
    key, kind = ".".join(path), error["type"]
    if kind in ("unexpected_keyword_argument", "extra_forbidden"):
        return [_unknown_key(path, list(_fields(section)), root)]
    if kind == "value_error":  # from a validator: its keys are relative to its section
        prefix = "".join(part + "." for part in (path[:-1] if tp is not None else path))
        found = error["ctx"]["error"]
        return [prefix + line for line in getattr(found, "problems", [str(found)])]
    if kind in ("dataclass_exact_type", "dataclass_type"):
        return [f"section '{key}' must be a mapping of keys to values, got {_show(value)}"]
    if kind == "finite_number":
        what = "finite numbers" if len(error["loc"]) > len(path) else "a finite number"  # a list's item
        return [f"{key} must be {what}, got {_show(value)}"]
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        limits = _fields(section)[path[-1]].metadata
        ops = ((">=", "ge"), (">", "gt"), ("<=", "le"), ("<", "lt"))
        bounds = [
            f"{op} {getattr(limit, name)}" for limit in limits for op, name in ops if hasattr(limit, name)
        ]
        return [f"{key} must be {' and '.join(bounds)}, got {_show(value)}"]
    options = [
        option for arm in (tp, *get_args(tp)) if get_origin(arm) is Literal for option in get_args(arm)
    ]
    close = difflib.get_close_matches(value, options, n=1) if isinstance(value, str) else []
    return [
        f"{key} must be {_describe(tp)}, got {_show(value)}"
        + (f" (did you mean {close[0]!r}?)" if close else "")
    ]


_SCALARS = {
    int: ("an integer", "integers"),
    float: ("a number", "numbers"),
    bool: ("true or false", "booleans"),
}


def _describe(tp: Any) -> str:
    """What a type hint accepts, in the words of a YAML user."""
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        return ", or ".join(_describe(arm) for arm in get_args(tp))
    if origin is Literal:
        options = [repr(option) for option in get_args(tp)]
        return options[0] if len(options) == 1 else "one of " + ", ".join(options)
    if origin is list:
        return "a list of " + _SCALARS.get(get_args(tp)[0], ("", "strings"))[1]
    return "null" if tp is type(None) else _SCALARS.get(tp, ("a string",))[0]


def _show(value: Any) -> str:
    """``value`` for a message, spelt as in YAML where Python differs (true, false, null)."""
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else repr(value)


def _unknown_key(path: list[str], siblings: list[str], root: type) -> str:
    """The message for an unknown key, with the likeliest fix: the same key in another section (a key given
    at the wrong level), else a near sibling (a typo), else a near key elsewhere, else the valid keys.
    Sections are one level deep, under the root."""
    key, prefix = path[-1], "".join(part + "." for part in path[:-1])
    by_leaf: dict[str, list[str]] = {}
    for name, field in _fields(root).items():
        by_leaf.setdefault(name, []).append(name)
        for sub in _fields(field.annotation):
            by_leaf.setdefault(sub, []).append(f"{name}.{sub}")
    close_sibling = [prefix + name for name in difflib.get_close_matches(key, siblings, n=1)]
    close_leaf = difflib.get_close_matches(key, list(by_leaf), n=1)
    for candidates in (by_leaf.get(key, []), close_sibling, by_leaf[close_leaf[0]] if close_leaf else []):
        if candidates:
            return f"unknown key '{prefix}{key}' (did you mean {' or '.join(repr(p) for p in candidates)}?)"
    return f"unknown key '{prefix}{key}' (valid keys here: {', '.join(siblings)})"


def config_from_dict(cls: type[T], data: Mapping[str, Any], where: str = "config") -> T:
    """A validated ``cls`` from a (nested) mapping, missing keys at their defaults; raises one ConfigError
    listing every problem, ``where`` naming the source."""
    problems: list[str] = []
    if not isinstance(data, Mapping):
        raise ConfigError([f"the config must be a mapping of keys to values, got {_show(data)}"], where)
    cfg = _validate(cls, _plain(data), problems)
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


def _read_yaml(path: str | Path, problems: list[str]) -> Mapping[str, Any]:
    """The mapping in a YAML file; {} with a problem when it cannot be read or holds something else."""
    try:
        data = yaml.load(Path(path).read_text(encoding="utf-8"), Loader=_Loader)
    except OSError as err:
        problems.append(f"cannot read config file: {err.strerror or err}")
    except yaml.YAMLError as err:
        problems.append(f"not valid YAML: {err}")
    else:
        if data is None or isinstance(data, Mapping):
            return data or {}
        problems.append(f"the file must hold a mapping of keys to values, got {_show(data)}")
    return {}


def load_config(
    cls: type[T],
    yaml_path: str | Path | None,
    overrides: Sequence[str] = (),
    options: Mapping[str, Any] | None = None,
) -> T:
    """A validated ``cls`` from an optional YAML file with ``key=value`` overrides applied on top.

    Override values are read with YAML rules (``1e-4``, ``true``, ``[q_proj,v_proj]``, ``null``); string
    fields keep the raw text. `options` are the settings a command made of its own typed options (``--out``
    is ``{"output_dir": "runs/a"}``; dotted keys for sections), applied last as they are, never read as YAML:
    ``--out null`` is a folder named null. The error counts the user's overrides only, which a user can count
    on the command line. Raises one ConfigError listing every problem in the file, overrides and options.
    """
    problems: list[str] = []
    data = _plain(_read_yaml(yaml_path, problems)) if yaml_path is not None else {}
    where = "config" if yaml_path is None else str(yaml_path)
    if overrides:
        where += f" + {len(overrides)} override{'s' if len(overrides) != 1 else ''}"
    for item in overrides:
        _apply_override(cls, data, item, problems)
    for key, value in (options or {}).items():
        _set(data, key.split("."), value)
    cfg = _validate(cls, data, problems)
    if cfg is None or problems:
        raise ConfigError(problems, where)
    return cfg
