"""Problem codes shared by manifest reading, pairing and validation.

Every data problem has a stable short code (so reports can be counted, filtered and tested) and a
severity: errors make a sample unusable and are removed by a clean manifest; warnings describe something we
will fix on the fly (downmix, resample) or that a human should look at (silence, clipping, odd speaking rate).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from higgs_tune.data.samples import SampleError

ERROR = "error"
WARNING = "warning"

# code -> (severity, what it means). The order here is the order reports list problems in.
CODES: dict[str, tuple[str, str]] = {
    "manifest_unreadable": (ERROR, "manifest file missing, not UTF-8, or not valid JSON / JSON Lines"),
    "manifest_empty": (ERROR, "manifest has no entries"),
    "invalid_json": (ERROR, "a JSON Lines line is not valid JSON"),
    "wrong_type": (ERROR, "an entry or field has the wrong JSON type"),
    "missing_field": (ERROR, "a required field is absent"),
    "empty_text": (ERROR, "a transcript or target text is empty or whitespace"),
    "bad_path": (ERROR, "an audio path is empty or a remote URL"),
    "bad_chatml": (ERROR, "a ChatML entry does not have the reference/target structure"),
    "duplicate_id": (ERROR, "two entries share an id; the later one is skipped"),
    "audio_missing": (ERROR, "audio file does not exist"),
    "audio_unreadable": (ERROR, "audio file cannot be decoded"),
    "audio_truncated": (ERROR, "audio file is shorter than its header says (cut while copying?)"),
    "audio_empty": (ERROR, "audio file has no samples"),
    "audio_nonfinite": (ERROR, "audio contains NaN or infinite samples"),
    "too_short": (ERROR, "clip shorter than --min-seconds"),
    "too_long": (ERROR, "clip longer than --max-seconds"),
    "same_ref_and_target": (ERROR, "reference and target are the same file"),
    "special_token_in_text": (
        ERROR,
        "a text holds a model control token such as <|eot_id|> or <|AUDIO_OUT|>",
    ),
    "system_not_used": (WARNING, "a ChatML system message differs from the run's prompt.system_prompt"),
    "unknown_field": (WARNING, "an entry has a key that is not used (typo?)"),
    "multi_channel": (WARNING, "clip has several channels; it will be downmixed to mono"),
    "sample_rate": (WARNING, "clip is not 24 kHz; it will be resampled"),
    "near_silent": (WARNING, "clip is (nearly) silent"),
    "clipping": (WARNING, "many samples at full scale: the recording clipped"),
    "chars_per_second": (WARNING, "text length does not fit the clip duration (wrong transcript?)"),
    "duplicate_pair": (WARNING, "same reference and target as an earlier sample"),
    "no_arabic_script": (WARNING, "target text has no Arabic letters although --language ar"),
    # found by `higgs-tune ingest`, which rejects such clips (CORPUS/rejected.jsonl)
    "low_snr": (WARNING, "estimated signal-to-noise ratio is low: speech buried in noise"),
    "little_speech": (WARNING, "the voice activity detector found little speech in the clip"),
    "transcript_mismatch": (WARNING, "the transcript differs from what ASR hears (CER over --max-cer)"),
    "low_asr_confidence": (WARNING, "the ASR was unsure of the transcript it wrote (--min-asr-confidence)"),
    "bad_row": (ERROR, "a row of a source table (metadata.csv, validated.tsv) is short or cannot be parsed"),
    "transcript_not_utf8": (ERROR, "a recording's transcript (NAME.txt) is not UTF-8 text"),
}


@dataclass(frozen=True)
class Problem:
    """One finding about one sample (or manifest entry, or file), precise enough for a user to go fix it."""

    code: str
    where: str
    message: str
    sample_id: str | None = None
    path: Path | None = None

    def __post_init__(self) -> None:
        if self.code not in CODES:
            raise ValueError(f"unknown problem code {self.code!r}")

    @property
    def severity(self) -> str:
        return CODES[self.code][0]

    @property
    def is_error(self) -> bool:
        return self.severity == ERROR

    def describe(self) -> str:
        """One line naming the sample, its location, the file and what is wrong."""
        who = f"[{self.sample_id}] " if self.sample_id is not None else ""
        path = f" {self.path}:" if self.path is not None else ""
        return f"{who}{self.where}:{path} {self.message}"

    def to_error(self) -> SampleError:
        where = self.where if self.sample_id is None else f"{self.where} (sample {self.sample_id!r})"
        problem = self.message if self.path is None else f"{self.path}: {self.message}"
        return SampleError(where, problem)


def raise_for_errors(problems: Iterable[Problem]) -> None:
    """Raise the first error as a `SampleError`, saying how many more there are, so the raising readers
    stay as precise as validation without printing thousands of lines."""
    errors = [p for p in problems if p.is_error]
    if not errors:
        return
    first = errors[0].to_error()
    if len(errors) > 1:
        more = f" (and {len(errors) - 1} more errors; run `higgs-tune validate` to list them all)"
        raise SampleError(first.where, first.problem + more)
    raise first


# The accepted clip durations, seconds: the defaults of `validate` and `prepare` (and their CLI options).
# Shorter clips carry too little voice to clone from; longer ones exceed what the model was trained on.
MIN_SECONDS = 0.5
MAX_SECONDS = 30.0


def duration_problem(seconds: float, min_seconds: float, max_seconds: float) -> tuple[str, str] | None:
    """(code, message) for a clip outside the accepted durations, else None: one rule for `validate` and
    `prepare`, so what one calls an error the other refuses."""
    if seconds < min_seconds:
        return "too_short", f"is {seconds:.2f} s, shorter than --min-seconds {min_seconds}"
    if seconds > max_seconds:
        return "too_long", f"is {seconds:.2f} s, longer than --max-seconds {max_seconds}"
    return None


def same_clip_problem(
    ref_hash: str | None, target_hash: str | None, same_file: bool = False
) -> tuple[str, str] | None:
    """(code, message) when a sample's reference is its own target, else None: one rule for `validate` and
    `prepare`. The same clip is one file under two names (`same_file`, which validate checks on disk) or two
    files with the same bytes (their content hashes; None for a file that could not be read)."""
    same_bytes = ref_hash is not None and ref_hash == target_hash
    if not (same_file or same_bytes):
        return None
    how = "the same file" if same_file else "files with the same bytes"
    return (
        "same_ref_and_target",
        f"reference and target are the same clip ({how}); a clone of itself teaches nothing",
    )


def empty_text_problem(text: str, field: str) -> tuple[str, str] | None:
    """(code, message) for a text with nothing to speak (empty or only whitespace), else None: one rule for
    `validate` (and so every manifest reader) and `clone --text` / `--ref-text`. Such a text gives the
    model no words to say, and it makes a clip of whatever it likes instead."""
    if text.strip():
        return None
    return "empty_text", f"{field} is empty"


# The spelling of Higgs Audio v2's (and Llama 3's) control tokens: <|eot_id|>, <|AUDIO_OUT|>,
# <|reserved_special_token_6|>, ... No transcript says this, so any such span is refused, whichever model.
SPECIAL_TOKEN = re.compile(r"<\|[^\s<>|]{1,64}\|>")


def special_token_problem(text: str, field: str) -> tuple[str, str] | None:
    """(code, message) when a text holds a control token, else None: one rule for `validate`, `prepare`,
    `pairs`, `clone --text` and any other reader of user text.

    A text is never turned into control tokens (the prompt builder tokenizes it as plain text), but a
    transcript that holds one was not written for speech, and trained as written it would teach the model to
    say "less-than bar eot..." where the text meant something else: it is refused, naming the token. Its
    compatibility form (NFKC) is checked too, because the Arabic text normalisations apply NFKC, which turns
    full-width look-alikes into the real brackets and bars.
    """
    found = SPECIAL_TOKEN.search(text) or SPECIAL_TOKEN.search(unicodedata.normalize("NFKC", text))
    if found is None:
        return None
    return (
        "special_token_in_text",
        f"{field} holds the control token {found.group()!r}; texts are spoken words, never control tokens: "
        "remove it (or write it out in words)",
    )


def text_problems(texts: dict[str, str | None], where: str, sample_id: str | None) -> list[Problem]:
    """The problems of a sample's texts (field name -> text; None for an absent optional one)."""
    problems = []
    for field, text in texts.items():
        found = None if text is None else special_token_problem(text, field)
        if found is not None:
            problems.append(Problem(found[0], where, found[1], sample_id))
    return problems
