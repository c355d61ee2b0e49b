"""The published benchmarks `eval --benchmark` runs: which one (`Benchmark`), and each protocol's own text
normalisation and averaging, as its evaluation scripts implement them.

- Habibi (`habibi:MSA|SAU|UAE|ALG|IRQ|EGY|MAR`): SWivid/Habibi-TTS, src/habibi_tts/eval/utils_eval.py
  (`normalize_arabic_text`, `word_error_rate`) and 2_cal_wer-o.py / 2_cal_wer-s.py, read at commit
  9660c7158bc6d2c9f4c78e12352619c13d1f472c of its fork Santzy1/Habibi-TTS. WER is corpus-level: edits
  summed over every row over reference words summed (`word_error_rate(all hypotheses, all references)`).
- Seed-TTS-Eval (`seedtts:en|zh`): BytedanceSpeech/seed-tts-eval run_wer.py (`process_one`) and
  average_wer.py, commit 752f4297f090c46bb1a55a1f7439e5944ddefe8d. WER is the mean of per-utterance WERs
  (jiwer's), punctuation (`string.punctuation` and zhon's `hanzi.punctuation`) removed except the
  apostrophe, English lowercased, Chinese scored per character.

Edit counts go through `jiwer` (`scoring.text_metrics.edit_counts`), as Seed-TTS-Eval counts them;
Habibi's `editdistance` gives the same Levenshtein distance.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

import regex

from higgs_tune.errors import UserError
from higgs_tune.scoring.text_metrics import ErrorCounts, edit_counts

HABIBI = "habibi"
SEEDTTS = "seedtts"
SUBSETS = {HABIBI: ("MSA", "SAU", "UAE", "ALG", "IRQ", "EGY", "MAR"), SEEDTTS: ("en", "zh")}
HABIBI_HUB = "SWivid/Habibi"  # one config per subset, split "test"
HABIBI_SPLIT = "test"

# The protocol's own ASR where it loads through transformers (Habibi's WER-S models for EGY and MAR,
# Seed-TTS-Eval's Whisper for English); the others (omniASR_LLM_7B, Paraformer-zh) do not.
PROTOCOL_ASR = {
    (HABIBI, "EGY"): "IbrahimAmin/egyptian-arabic-wav2vec2-xlsr-53",
    (HABIBI, "MAR"): "boumehdi/wav2vec2-large-xlsr-moroccan-darija",
    (SEEDTTS, "en"): "openai/whisper-large-v3",
}
PUBLISHED_ASR = {HABIBI: "omniASR_LLM_7B (WER-O)", (SEEDTTS, "zh"): "Paraformer-zh"}
PUBLISHED_SPEAKER = "WavLM-large ECAPA-TDNN (UniSpeech wavlm_large_finetune.pth)"

# zhon.hanzi.punctuation (tsroten/zhon zhon/hanzi.py, commit 2e687b43c80b3a17077a83e1716adc7701d5036b):
# its non-stops then its stops.
ZHON_PUNCTUATION = (
    "\uff02\uff03\uff04\uff05\uff06\uff07\uff08\uff09\uff0a\uff0b\uff0c\uff0d"
    "\uff0f\uff1a\uff1b\uff1c\uff1d\uff1e\uff20\uff3b\uff3c\uff3d\uff3e\uff3f"
    "\uff40\uff5b\uff5c\uff5d\uff5e\uff5f\uff60"
    "\uff62\uff63\uff64"
    "\u3000\u3001\u3003"
    "\u300b\u300c\u300d\u300e\u300f\u3010\u3011"
    "\u3014\u3015\u3016\u3017\u3018\u3019\u301a\u301b\u301c\u301d\u301e\u301f"
    "\u3030"
    "\u303e\u303f"
    "\u2013\u2014"
    "\u2018\u2019\u201b\u201c\u201d\u201e\u201f"
    "\u2026\u2027"
    "\ufe4f"
    "\uff01\uff1f\uff61\u3002"
)
SEEDTTS_PUNCTUATION = ZHON_PUNCTUATION + string.punctuation  # run_wer.py's `punctuation_all`

# Published figures to show beside ours: WER in percent, SIM x100, each row with its source. Only figures
# read in the fetched sources: the Higgs Audio v2 README's Seed-TTS-Eval table, which does not say which
# language (en or zh) it is, so it is shown for both, saying so. No Habibi figures are in the package yet.
HIGGS_README = (
    "boson-ai/higgs-audio README.md, Seed-TTS Eval table (commit f04f5df76a6a7b14674e0d6d715b436c422883c6), "
    "https://github.com/boson-ai/higgs-audio; language unstated"
)
PUBLISHED = {
    SEEDTTS: [
        {"system": "Higgs Audio v2 (base)", "wer": 2.44, "similarity": 67.70, "source": HIGGS_README},
        {"system": "Higgs Audio v1", "wer": 2.18, "similarity": 66.27, "source": HIGGS_README},
        {"system": "CosyVoice2", "wer": 2.28, "similarity": 65.49, "source": HIGGS_README},
        {"system": "Qwen2.5-omni", "wer": 2.33, "similarity": 64.10, "source": HIGGS_README},
        {"system": "ElevenLabs Multilingual V2", "wer": 1.43, "similarity": 50.00, "source": HIGGS_README},
    ],
    HABIBI: [],
}


@dataclass(frozen=True)
class Benchmark:
    """One protocol and one of its subsets, as `--benchmark` names it (`habibi:EGY`, `seedtts:en`)."""

    protocol: str
    subset: str

    @property
    def name(self) -> str:
        return f"{self.protocol}:{self.subset}"

    @property
    def title(self) -> str:
        """What the pages call it."""
        return f"Habibi {self.subset}" if self.protocol == HABIBI else f"Seed-TTS-Eval {self.subset}"

    @property
    def language(self) -> str:
        """The language the ASR is told (Whisper's forced language)."""
        return "ar" if self.protocol == HABIBI else self.subset

    @property
    def protocol_asr(self) -> str | None:
        """The protocol's own ASR model when transformers loads it, else None."""
        return PROTOCOL_ASR.get((self.protocol, self.subset))

    @property
    def published_asr(self) -> str:
        """The ASR the published figures were measured with."""
        return self.protocol_asr or PUBLISHED_ASR.get((self.protocol, self.subset)) or PUBLISHED_ASR[HABIBI]

    @property
    def wer_name(self) -> str:
        """The figure's name in the protocol's tables."""
        if self.protocol == HABIBI:
            return "WER-S" if self.protocol_asr else "WER-O"
        return "WER"


def parse_benchmark(text: str) -> Benchmark:
    """`--benchmark`'s value, or a one-line error listing the ones there are."""
    protocol, _, subset = text.partition(":")
    protocol = protocol.strip().lower()
    known = [f"{p}:{s}" for p, subsets in SUBSETS.items() for s in subsets]
    for candidate in SUBSETS.get(protocol, ()):
        if candidate.lower() == subset.strip().lower():
            return Benchmark(protocol, candidate)
    raise UserError(f"--benchmark {text!r}: unknown benchmark; choose one of {', '.join(known)}")


def habibi_normalize(text: str) -> str:
    """Habibi's `normalize_arabic_text`, step by step in its order: punctuation and symbols removed
    (`[\\p{p}\\p{s}]`), diacritics U+064B-U+0652 removed, پ->ب, ڤ->ف, آ أ إ->ا, ؤ->و, ئ->ي, ء removed,
    ة->ه, Eastern digits to Western, tatweel removed, runs of two or more ا removed, runs of two or more
    whitespace characters made one space, stripped."""
    text = regex.sub(r"[\p{p}\p{s}]", "", text)
    text = regex.sub(r"[\u064B-\u0652]", "", text)
    for pattern, letter in (("پ", "ب"), ("ڤ", "ف"), ("[آ]", "ا"), ("[أإ]", "ا"), ("[ؤ]", "و"), ("[ئ]", "ي")):
        text = regex.sub(pattern, letter, text)
    text = regex.sub("[ء]", "", text)
    text = regex.sub("[ة]", "ه", text)
    text = text.translate({0x0660 + d: str(d) for d in range(10)})
    text = regex.sub("\u0640", "", text)
    text = regex.sub("اا+", "", text)
    text = regex.sub(r"\s\s+", " ", text)
    return text.strip()


def habibi_word_errors(reference: str, hypothesis: str) -> ErrorCounts:
    """One row's word edits after Habibi's normalisation; words are split on any whitespace, as
    `word_error_rate` splits them."""
    return edit_counts(habibi_normalize(reference).split(), habibi_normalize(hypothesis).split())


def habibi_corpus_wer(counts: list[ErrorCounts]) -> float:
    """Habibi's WER: all rows' edits over all rows' reference words (infinite for no reference word, as
    `word_error_rate` has it)."""
    total = sum(counts, ErrorCounts())
    return total.errors / total.reference_length if total.reference_length else float("inf")


def seedtts_normalize(text: str, language: str) -> str:
    """Seed-TTS-Eval's `process_one` on one text: each punctuation mark but the apostrophe deleted, each
    double space made single (one pass, as `str.replace`), then Chinese split into characters joined by
    spaces, English lowercased."""
    for mark in SEEDTTS_PUNCTUATION:
        if mark != "'":
            text = text.replace(mark, "")
    text = text.replace("  ", " ")
    return " ".join(text) if language == "zh" else text.lower()


def seedtts_wer(reference: str, hypothesis: str, language: str) -> float:
    """One utterance's WER as `process_one` computes it: jiwer's WER of the normalised texts, whose default
    transform splits on spaces and drops empty words. A reference with no word left has no WER in jiwer
    (it refuses it); here it is 0.0 when nothing was heard and 1.0 otherwise, as `text_metrics` does."""
    counts = edit_counts(
        _jiwer_words(seedtts_normalize(reference, language)),
        _jiwer_words(seedtts_normalize(hypothesis, language)),
    )
    return counts.rate


def _jiwer_words(text: str) -> list[str]:
    """jiwer's default WER transform: whitespace runs made one space, stripped, split on spaces."""
    return [w for w in regex.sub(r"\s\s+", " ", text).strip().split(" ") if w]


def seedtts_mean_wer(wers: list[float]) -> float:
    """Seed-TTS-Eval's WER (average_wer.py): the plain mean of the per-utterance WERs."""
    return sum(wers) / len(wers) if wers else float("nan")
