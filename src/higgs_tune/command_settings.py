"""The base of every command's settings (`ingest`, `clone`, `prefs`, `prepare`): a frozen pydantic model
that refuses unknown fields and reports every bad value at once as one `UserError`.

A field's bounds sit beside it (`Field(ge=...)`) and rules between fields are validators; whichever
fails, the message names the option as the command line spells it (`--max-cer`; a field a command spells
otherwise says so in `flags`) and what it must be, so the fix is in the line the user reads.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from higgs_tune.errors import UserError


class SettingsError(UserError):
    """One or more bad values of a command's settings; the message lists every one."""


class RuleError(ValueError):
    """A rule between options broken; its message names the options itself."""


class CommandSettings(BaseModel):
    """Frozen, no unknown fields; a bad value is a `SettingsError` naming each option and its rule."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    # field -> the option that sets it, where that is not "--" + the field's name with dashes
    flags: ClassVar[dict[str, str]] = {}

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as e:
            raise SettingsError(_describe(e, type(self).flags)) from None


def check_less(low: float, high: float, low_option: str, high_option: str) -> None:
    """A rule between two options (the shortest clip and the longest): `low` must be less than `high`.
    Called from a validator of the second field, so it is checked even when another field is bad."""
    if not low < high:
        raise RuleError(
            f"{low_option} ({low:g}) must be less than {high_option} ({high:g}): give a smaller {low_option} "
            f"or a larger {high_option}"
        )


def _describe(error: ValidationError, flags: dict[str, str]) -> str:
    """Every problem of `error` in one line: "--top-p: input should be less than or equal to 1 (got 2.0)"."""
    problems = []
    for found in error.errors(include_url=False):
        names = [str(part) for part in found["loc"] if isinstance(part, str)]
        option = flags.get(names[-1], "--" + names[-1].replace("_", "-")) if names else None
        cause = found.get("ctx", {}).get("error")
        if isinstance(cause, SettingsError | RuleError):  # nested settings' problems, or a named rule
            problems.append(str(cause))
            continue
        message = str(cause) if cause is not None else found["msg"]
        message = message[:1].lower() + message[1:]
        if found["type"] == "extra_forbidden":
            message = "not a setting of this command"
        elif cause is None and "input" in found:
            message += f" (got {found['input']!r})"
        problems.append(f"{option}: {message}" if option else message)
    return "; ".join(problems)
