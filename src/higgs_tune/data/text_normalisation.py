"""Text normalisation of transcripts: one setting, applied the same way at training and at cloning.

A corpus gathered from several sources spells the same words several ways (diacritised or not, alef with or
without its hamza, stretched with tatweel, with invisible right-to-left marks), and a user asks for a clone
in whichever spelling they have at hand. A fine-tune learns the spelling it was trained on, so the texts it
is given at cloning must be normalised exactly as its training texts were. `prepare --text-normalisation`
(or, without it, `prepare --language`'s recommended setting, `RECOMMENDED`) normalises the texts it stores
and records the setting in the dataset's index; `train` carries it into the
run's prompt settings (`PromptSettings.text_normalisation`), which every checkpoint saves; and the one prompt
builder (`model.prompt.build_prompt`) applies that setting to the reference transcript and the target text
it is given, so `clone`, `eval` and the previews during training normalise as the run was trained. Only the
spoken texts are normalised; the system prompt and scene descriptions are instructions and kept as written.

The settings, each including the ones before it:

- `none`: the texts as written (the default, and what the base model is always prompted with).
- `whitespace`: what cannot be seen: Unicode NFC (one code point sequence per glyph), invisible format
  characters removed (right-to-left and left-to-right marks, zero-width joiners, byte order marks, soft
  hyphens: Unicode category Cf), every run of whitespace (tabs, newlines, no-break spaces) one space, and
  no space at either end.
- `arabic`: also Unicode NFKC instead of NFC (Arabic presentation forms and ligatures from PDF text become
  plain letters, e.g. U+FEFB becomes lam + alef), tatweel (the typographic stretch) removed, and alef with
  hamza above or below, alef with madda and alef wasla folded to bare alef, because writers drop or add
  these seats freely and the model then learns the pronunciation from the context rather than from an
  inconsistent sign. Alef maqsura (ى) and ta marbuta (ة) are **kept**: unlike the scoring normalisation of
  `scoring.text_metrics`, which folds them because the audio cannot show the spelling, a synthesiser
  needs them (على is read -a, علي -i; ة is read -a or -at, ه -h). Hamza on waw and ya and digits are kept.
- `arabic_no_diacritics`: also the diacritics (tashkeel, superscript alef, Quranic marks) removed, for a
  corpus that is diacritised only in part: a diacritised text and its plain form then give the same prompt.
- `arabic_spoken`: also every number written in words as it is read (`data.spoken.speak_numbers`), in the
  three digit systems alike (Western, Arabic-Indic ٠-٩, Persian ۰-۹): integers, decimals, percentages,
  years. `15` and `١٥` then give the same prompt ("خمسة عشر" in an Arabic sentence, "fifteen" in an
  English one: a number is read in the script of the nearest word, in Arabic when the text has none), and
  a model trained on transcripts that spell numbers in words is asked for words at cloning too. The other
  settings leave digits as they are, exactly as before this one existed: a run trained without it clones
  without it.

The diacritics and the alef variants are one table each, shared with the scoring normalisation
(`scoring.text_metrics.normalize_text`), which folds more; the number words are folded like any other
text (ألف is prompted as الف). Normalising twice gives the same text as
normalising once (prepared texts pass through the prompt builder again), which a test checks.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import replace
from typing import get_args

from higgs_tune.config import TextNormalisation
from higgs_tune.config_files import ConfigError
from higgs_tune.data.samples import Sample, SampleError
from higgs_tune.data.spoken import speak_numbers

TEXT_NORMALISATIONS: tuple[str, ...] = get_args(TextNormalisation)
# The normalisation `prepare --language` picks when `--text-normalisation` is not given (codes as
# `data.languages.parse_language` gives them); any other language is left as written (`none`).
RECOMMENDED: dict[str, TextNormalisation] = {"ar": "arabic_spoken"}

# Arabic diacritics: honorific and Quranic signs above letters, tashkeel (fathatan ... sukun, and the
# combining hamza and madda), the superscript alef, and the Quranic annotation marks.
ARABIC_DIACRITICS = re.compile("[\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06dc\u06df-\u06e8\u06ea-\u06ed]")
TATWEEL = "\u0640"
ALEF_VARIANTS = {
    "\u0623": "\u0627",  # أ alef with hamza above
    "\u0625": "\u0627",  # إ alef with hamza below
    "\u0622": "\u0627",  # آ alef with madda
    "\u0671": "\u0627",  # ٱ alef wasla
}
_ARABIC_FOLDS = str.maketrans(ALEF_VARIANTS | {TATWEEL: None})


def recommended_normalisation(language: str | None) -> TextNormalisation:
    """The normalisation a corpus in `language` should be trained with: Arabic corpora mix diacritised and
    plain text, alef seats and digit systems (`arabic_spoken` folds them all); other languages are kept as
    written until a normaliser for them exists."""
    return RECOMMENDED.get(language or "", "none")


def normalise_text(text: str, how: TextNormalisation | None) -> str:
    """`text` normalised by the setting `how` (see the module docstring); None and "none" keep it as is.

    The result is a fixed point: normalising it again changes nothing (a removal can bring a base letter and
    a combining mark together that composition then joins, so the rules are applied until nothing changes).
    """
    if how is None or how == "none":
        return text
    if how not in TEXT_NORMALISATIONS:
        raise ValueError(f"unknown text normalisation {how!r}; choose from {', '.join(TEXT_NORMALISATIONS)}")
    while True:
        once = _normalise_once(text, how)
        if once == text:
            return once
        text = once


def _normalise_once(text: str, how: str) -> str:
    arabic = how.startswith("arabic")
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    text = unicodedata.normalize("NFKC" if arabic else "NFC", text)
    if how == "arabic_spoken":
        text = speak_numbers(text, fallback="ar")
    if how in ("arabic_no_diacritics", "arabic_spoken"):
        text = ARABIC_DIACRITICS.sub("", text)
    if arabic:
        text = text.translate(_ARABIC_FOLDS)
    return " ".join(text.split())


def normalise_sample(sample: Sample, how: TextNormalisation | None) -> Sample:
    """The sample with its reference transcript and target text normalised; its scene is kept as written.
    A text that normalisation leaves empty (only marks or tatweel) raises a `SampleError` naming it."""
    if how is None or how == "none":
        return sample
    ref_text, text = normalise_text(sample.ref_text, how), normalise_text(sample.text, how)
    for field, value in (("ref_text", ref_text), ("text", text)):
        if not value:
            raise SampleError(f"sample {sample.id!r}", f"{field} is empty after text normalisation {how}")
    return replace(sample, ref_text=ref_text, text=text)


def training_normalisation(configured: TextNormalisation | None, recorded: str, data: str) -> str:
    """The normalisation a run trains with: what its prepared data records (`prepare --text-normalisation`),
    unless the config names another, which is refused: the stored texts were normalised one way, and a run
    that says another would clone differently from how it trained."""
    if configured is None or configured == recorded:
        return recorded
    raise ConfigError(
        [
            f"prompt.text_normalisation is {configured!r} but {data} was prepared with --text-normalisation "
            f"{recorded}; prepare the data again with --text-normalisation {configured}, or drop the setting "
            "to train as the data was prepared"
        ]
    )
