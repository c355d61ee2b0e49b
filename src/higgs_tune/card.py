"""Model cards: a Hugging Face `README.md` in every folder of weights a fine-tune leaves, ready to push.

A checkpoint's card sits in its weights folder (`checkpoint-<step>/adapter/` or `model/`), the folder that
`higgs-tune push` uploads, and a merged model's at the top of its folder. The YAML metadata is the Hub's
(`base_model`, `library_name`, `pipeline_tag: text-to-speech`, `language`, `license`, `tags`, and the
latest evaluation as `model-index`); the text says what the model was trained on (hours, speakers,
languages of the prepared dataset), with which prompt settings, and how it measured.

The card keeps its own facts under the metadata key `higgs_tune`, so `eval` updates a card (and `merge`
copies one) from the card itself, even after the prepared dataset has moved. Languages are read from the
target texts' script (`data.validate.SCRIPT_LETTERS`); the base model's license from its card when the base
is a local folder or is in the Hub cache, else `other` with a note to fill it in before publishing.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

from higgs_tune import checkpoint
from higgs_tune.config import BASE_SYSTEM_PROMPT
from higgs_tune.data.validate import SCRIPT_LETTERS
from higgs_tune.files import write_text_atomic

log = logging.getLogger(__name__)

CARD = "README.md"
# A language is listed when at least this share of the target texts is in its script.
LANGUAGE_SHARE = 0.1
TAGS = ["higgs-audio", "text-to-speech", "voice-cloning", "higgs-tune"]


@functools.lru_cache(maxsize=4)
def data_summary(data_dir: str) -> dict | None:
    """Samples, speakers, hours and languages of a prepared dataset; None when the folder is gone.

    Speakers and languages come from its index (`samples_summary`, recorded by `prepare`); a dataset
    prepared before they were recorded has its samples.jsonl read line by line, none of it kept.
    """
    root = Path(data_dir)
    if not (root / "index.json").is_file():
        return None
    index = json.loads((root / "index.json").read_text(encoding="utf-8"))
    summary = index if "num_speakers" in index else samples_summary(_lines(root / "samples.jsonl"))
    return {
        "samples": index["num_samples"],
        "speakers": summary["num_speakers"],
        "audio_hours": index["audio_hours"],
        "languages": [code for code, share in summary["script_shares"].items() if share >= LANGUAGE_SHARE],
        "skipped": index.get("num_skipped", 0),
    }


def samples_summary(records: Iterable[dict]) -> dict:
    """What a card says of a prepared dataset's samples, in one pass: its distinct speakers and, per
    script of `SCRIPT_LETTERS`, the share of target texts with a letter of it (each distinct text
    looked at once)."""
    speakers: set[str] = set()
    texts: dict[str, int] = {}
    for r in records:
        if r.get("speaker"):
            speakers.add(r["speaker"])
        texts[r["text"]] = texts.get(r["text"], 0) + 1
    total = max(1, sum(texts.values()))
    return {
        "num_speakers": len(speakers),
        "script_shares": {
            code: round(sum(n for t, n in texts.items() if any(map(is_letter, t))) / total, 4)
            for code, is_letter in SCRIPT_LETTERS.items()
        },
    }


def _lines(path: Path) -> Iterator[dict]:
    with open(path, encoding="utf-8") as f:
        yield from (json.loads(line) for line in f if line.strip())


def base_model_license(model_id: str) -> dict[str, str]:
    """`license` (with `license_name` / `license_link` when given) from the base model's own card, read from
    its folder or the local Hub cache, never over the network; empty when unknown."""
    from huggingface_hub import ModelCard, try_to_load_from_cache
    from huggingface_hub.errors import HFValidationError

    folder = Path(model_id)
    if folder.is_dir():
        readme = folder / CARD
    else:
        try:
            readme = try_to_load_from_cache(model_id, CARD)
        except HFValidationError:  # neither a folder nor a hub id
            return {}
    if not isinstance(readme, str | Path) or not Path(readme).is_file():
        return {}
    data = ModelCard.load(readme).data
    return {k: getattr(data, k) for k in ("license", "license_name", "license_link") if getattr(data, k)}


def checkpoint_facts(state: dict) -> dict:
    """What a checkpoint's card says, from its trainer state (`checkpoint.trainer_state`)."""
    cfg = state["config"]
    held_out = (state.get("metrics") or {}).get("last_evaluation") or {}
    return {
        "kind": "adapter" if state["mode"] == "lora" else "full",
        "base_model": state["model"],
        "step": state["step"],
        "prompt": state["prompt"],
        "data": data_summary(str(Path(cfg["data"]).resolve())) if cfg.get("data") else None,
        "training": {
            "learning_rate": cfg["learning_rate"],
            "max_steps": cfg["max_steps"],
            "num_train_epochs": cfg["num_train_epochs"],
            "text_head": state["text_head"],
            **({"lora": cfg["lora"]} if state["mode"] == "lora" else {}),
            **({"dpo": _dpo_facts(cfg)} if cfg.get("objective") == "dpo" else {}),
            **({"eval_loss": held_out["eval_loss"]} if "eval_loss" in held_out else {}),
        },
        "license": base_model_license(state["model"]),
        "evaluation": None,
    }


def _dpo_facts(cfg: dict) -> dict:
    """What a DPO run preferred and from where it started."""
    summary = Path(cfg["prefs"]) / "summary.json"
    pairs = json.loads(summary.read_text(encoding="utf-8")).get("pairs") if summary.is_file() else None
    return {
        **cfg["dpo"],
        "prefs": str(Path(cfg["prefs"]).resolve()),
        "pairs": pairs,
        "init": cfg["init_adapter"],
    }


def write_checkpoint_card(checkpoint_dir: Path, state: dict) -> Path:
    """The card of a checkpoint being saved (`checkpoint_dir` may still be its temporary folder)."""
    return _write(checkpoint.weights_dir(checkpoint_dir, state["mode"]) / CARD, checkpoint_facts(state))


def write_merged_card(out: Path, checkpoint_dir: Path) -> Path:
    """The card of a merged model: the checkpoint's facts (its evaluation included) as a full model."""
    return _write(Path(out) / CARD, {**_checkpoint_card_facts(checkpoint_dir), "kind": "merged"})


def record_evaluation(checkpoint_dir: Path, report: dict) -> Path:
    """Put the latest `eval` figures of a checkpoint (its `report.json` contents) into its card."""
    keys = ("samples", "wer", "cer", "similarity", "stopped_by_eos", "right_length")
    summary = report["summary"]
    evaluation = {"manifest": Path(report["manifest"]).name, "language": report.get("language")}
    for system in ("finetuned", "base"):
        if system in summary:
            evaluation[system] = {k: summary[system][k] for k in keys}
    if "comparison" in report:
        evaluation["better"] = len(report["comparison"]["better"])
        evaluation["worse"] = len(report["comparison"]["worse"])
    facts = {**_checkpoint_card_facts(checkpoint_dir), "evaluation": evaluation}
    return _write(checkpoint.weights_dir(checkpoint_dir) / CARD, facts)


def _checkpoint_card_facts(checkpoint_dir: Path) -> dict:
    """A checkpoint's facts from its card, or from its trainer state when it has none (saved before cards)."""
    return read_facts(checkpoint_dir) or checkpoint_facts(checkpoint.read_trainer_state(checkpoint_dir))


def read_facts(folder: Path) -> dict | None:
    """The facts a card holds (`higgs_tune` metadata), from a card file, a weights folder or a checkpoint."""
    from huggingface_hub import ModelCard

    folder = Path(folder)
    if (folder / checkpoint.TRAINER_STATE).is_file():
        folder = checkpoint.weights_dir(folder)
    path = folder if folder.suffix == ".md" else folder / CARD
    if not path.is_file():
        return None
    return ModelCard.load(path).data.to_dict().get("higgs_tune")


def _write(path: Path, facts: dict) -> Path:
    write_text_atomic(path, render(facts))
    log.info("model card: %s", path)
    return path


def render(facts: dict) -> str:
    """The card's text: Hub metadata, then what it is, its data, prompt, training, evaluation and use."""
    from huggingface_hub import ModelCardData

    data, kind = facts["data"] or {}, facts["kind"]
    metadata = ModelCardData(
        base_model=hub_id(facts["base_model"]),
        library_name="peft" if kind == "adapter" else "transformers",
        pipeline_tag="text-to-speech",
        language=list(data.get("languages") or []) or None,  # a copy: no YAML anchor to the facts' list
        license=facts["license"].get("license", "other"),
        license_name=facts["license"].get("license_name"),
        license_link=facts["license"].get("license_link"),
        tags=TAGS + (["lora"] if kind == "adapter" else []),
        model_name=_title(facts),
        eval_results=_eval_results(facts["evaluation"]),
        base_model_relation="adapter" if kind == "adapter" else "finetune",
        higgs_tune=facts,
    )
    sections = [
        f"# {_title(facts)}",
        _about(facts),
        _data_section(facts["data"], facts["training"].get("dpo")),
        _prompt_section(facts["prompt"]),
        _training_section(facts["training"]),
        _evaluation_section(facts["evaluation"]),
        _use_section(facts),
        _license_section(facts),
    ]
    return "---\n" + metadata.to_yaml() + "\n---\n\n" + "\n\n".join(sections) + "\n"


def _title(facts: dict) -> str:
    what = {"adapter": "LoRA adapter", "full": "fine-tune", "merged": "merged fine-tune"}[facts["kind"]]
    return f"{Path(facts['base_model']).name} voice-cloning {what} (step {facts['step']})"


def _about(facts: dict) -> str:
    what = {
        "adapter": "A LoRA adapter (peft) for",
        "full": "A full fine-tune of",
        "merged": "A LoRA fine-tune merged into the weights of",
    }[facts["kind"]]
    return (
        f"{what} `{facts['base_model']}` (Higgs Audio v2), trained with higgs-tune for zero-shot voice "
        f"cloning: given a reference clip and its transcript, it speaks a new text in that voice. "
        f"Checkpoint of step {facts['step']}."
        + (
            ""
            if hub_id(facts["base_model"])
            else " The base model was a local folder, so the metadata has no `base_model`: add its Hub id "
            "before publishing."
        )
    )


def hub_id(model: str) -> str | None:
    """`model` if it names a Hub repo, None for a local folder (the Hub takes only repo ids as
    `base_model`)."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    if Path(model).exists():
        return None
    try:
        validate_repo_id(model)
    except HFValidationError:
        return None
    return model


def _data_section(data: dict | None, dpo: dict | None = None) -> str:
    if dpo is not None:
        return (
            f"## Training data\n\n{dpo['pairs']} preference pairs of `{dpo['prefs']}` (`higgs-tune prefs`)."
        )
    if data is None:
        return "## Training data\n\nThe prepared dataset was not found when this card was written."
    languages = ", ".join(data["languages"]) or "not recognised from the script (set `language` above)"
    return (
        "## Training data\n\n"
        "| samples | speakers | audio hours (distinct clips, references included) | languages |\n"
        "|---|---|---|---|\n"
        f"| {data['samples']} | {data['speakers']} | {data['audio_hours']:.3f} | {languages} |\n\n"
        f"{data['skipped']} samples were skipped as unusable when the dataset was prepared."
    )


def _prompt_section(prompt: dict) -> str:
    scene = f"`{prompt['scene']}`" if prompt["scene"] is not None else "none"
    return (
        "## Prompt settings\n\n"
        "Prompt the model exactly as it was trained (`higgs-tune clone` and `eval` do so from the "
        "checkpoint):\n\n"
        f"- system prompt: `{prompt['system_prompt']}`\n"
        f"- scene, for samples without their own: {scene}\n"
        f"- text normalisation, applied to the reference transcript and the text to speak: "
        f"`{prompt.get('text_normalisation') or 'none'}`\n"
        f"- preset: `{prompt.get('preset', 'original')}`; served on vLLM-Omni (the base system prompt, no "
        "scene block, no text normalisation), the model meets "
        + (
            "the prompt it was trained with"
            if _vllm_omni_prompt(prompt)
            else "another prompt than it was trained with"
        )
    )


def _vllm_omni_prompt(prompt: dict) -> bool:
    """Whether a saved prompt is the one vLLM-Omni builds (`PromptSettings.preset`)."""
    return prompt["scene"] is None and prompt["system_prompt"] == BASE_SYSTEM_PROMPT


def _training_section(training: dict) -> str:
    steps, epochs = training["max_steps"], training["num_train_epochs"]
    length = f"{steps} step{'s' * (steps != 1)}" if steps else f"{epochs:g} epochs"
    lines = [
        "## Training",
        "",
        f"- learning rate {training['learning_rate']:g}, {length} planned",
        f"- text head: {'trained' if training['text_head'] else 'off (audio loss only)'}",
    ]
    if "lora" in training:
        lora = training["lora"]
        lines.append(
            f"- LoRA rank {lora['r']}, alpha {lora['alpha']}, on {', '.join(lora['target_modules'])}"
            + (", audio head trained" if lora["train_audio_head"] else "")
        )
    if "dpo" in training:
        dpo = training["dpo"]
        lines.append(
            f"- objective: DPO (beta {dpo['beta']:g}, SFT weight {dpo['sft_weight']:g}), from "
            + (f"the adapter of `{dpo['init']}`" if dpo["init"] else "the base model")
        )
    if "eval_loss" in training:
        lines.append(f"- held-out loss at this step: {training['eval_loss']:.4f}")
    return "\n".join(lines)


def _fmt(value: float | None, percent: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{100 * value:.1f}%" if percent else f"{value:.3f}"


def _evaluation_section(evaluation: dict | None) -> str:
    if evaluation is None:
        return "## Evaluation\n\nNot evaluated yet: `higgs-tune eval --adapter CHECKPOINT` fills this in."
    systems = [s for s in ("base", "finetuned") if s in evaluation]
    rows = [
        ("WER", "wer", True),
        ("CER", "cer", True),
        ("speaker similarity", "similarity", False),
        ("ended by EOS", "stopped_by_eos", True),
        ("right length and ended by EOS", "right_length", True),
    ]
    lines = [
        "## Evaluation",
        "",
        f"`higgs-tune eval` on `{evaluation['manifest']}` ({evaluation[systems[-1]]['samples']} samples, "
        f"language {evaluation['language'] or 'any'}):",
        "",
        "| measure | " + " | ".join(systems) + " |",
        "|---|" + "---|" * len(systems),
    ]
    lines += [
        f"| {label} | " + " | ".join(_fmt(evaluation[s][k], pct) for s in systems) + " |"
        for label, k, pct in rows
    ]
    if "better" in evaluation:
        lines += [
            "",
            f"Samples better with fine-tuning: {evaluation['better']}, worse: {evaluation['worse']}.",
        ]
    return "\n".join(lines)


def _eval_results(evaluation: dict | None) -> list | None:
    """The fine-tune's figures as the Hub's `model-index` results."""
    from huggingface_hub import EvalResult

    if evaluation is None or "finetuned" not in evaluation:
        return None
    figures = evaluation["finetuned"]
    names = {"wer": "WER", "cer": "CER", "similarity": "speaker similarity", "right_length": "right length"}
    return [
        EvalResult(
            task_type="text-to-speech",
            dataset_type="higgs-tune-manifest",
            dataset_name=evaluation["manifest"],
            metric_type=key,
            metric_name=name,
            metric_value=figures[key],
        )
        for key, name in names.items()
        if figures[key] is not None
    ]


def _use_section(facts: dict) -> str:
    base = facts["base_model"]
    if facts["kind"] == "merged":
        code = (
            "from transformers import HiggsAudioV2ForConditionalGeneration, HiggsAudioV2Processor\n\n"
            'model = HiggsAudioV2ForConditionalGeneration.from_pretrained("THIS_FOLDER")\n'
            'processor = HiggsAudioV2Processor.from_pretrained("THIS_FOLDER")'
        )
        return (
            f"## Use\n\n```python\n{code}\n```\n\nThe prompt settings above are also in "
            "`higgs_tune_prompt.json`, which `higgs-tune clone`, `eval` and `prefs` read when given this "
            "folder as `--model`; other code must apply them itself (the text normalisation included)."
        )
    return (
        "## Use\n\n```bash\n"
        f"higgs-tune clone --model {base} --adapter CHECKPOINT \\\n"
        '    --ref-audio ref.wav --ref-text "..." --text "..." --out out.wav\n```\n\n'
        "`CHECKPOINT` is the checkpoint folder this folder belongs to (it holds the prompt settings); "
        "`higgs-tune merge` makes a folder plain transformers loads."
    )


def _license_section(facts: dict) -> str:
    if facts["license"]:
        return f"## License\n\nThe base model's license: {facts['license'].get('license')}."
    return (
        "## License\n\n`other`: the base model's license was not found (its folder has no card and it is not "
        "in the local Hub cache). Set `license` above to the base model's license before publishing."
    )
