"""`higgs-tune merge`: a fine-tune as a self-contained model folder that plain transformers loads.

The LoRA adapter is merged into the base weights; the processor is saved beside the model with its own
copy of the codec in `audio_tokenizer/` (and pointing there), so `HiggsAudioV2ForConditionalGeneration`
and `HiggsAudioV2Processor.from_pretrained(OUT)` load it with no higgs-tune code. The prompt settings
the model was trained with are written to `OUT/higgs_tune_prompt.json`, since the chat template itself
carries no system prompt; every command that loads the folder reads them (`loading.model_prompt`). The
card records them, and `merge` warns when the folder, served on vLLM-Omni, would meet a prompt or texts it
was not trained with (`serving_prompt_warnings`).

`OUT` must be a new or empty folder, and not the base model's folder nor the adapter's, checked before
anything loads (`files.check_output_folder`): merging over a model folder would replace its weights (and a
later merge would then apply the adapter twice), and over a folder of the user's would overwrite or leave
beside the merged files whatever it held.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Literal

from higgs_tune import checkpoint
from higgs_tune.card import write_merged_card
from higgs_tune.config import BASE_SYSTEM_PROMPT, PromptSettings
from higgs_tune.files import check_output_folder
from higgs_tune.model.loading import (
    AUDIO_TOKENIZER_SUBDIR,
    PROMPT_FILE,
    load_codec,
    load_finetuned,
    load_processor,
)

log = logging.getLogger(__name__)


def merge_adapter(model_id: str, adapter: Path, out: Path, which: Literal["best", "last"] = "best") -> Path:
    """Merge `adapter` into `model_id` and save everything to `out`.

    `adapter` is a checkpoint folder (used as is) or a run folder, whose best checkpoint is merged, or its
    newest with `which="last"` (`checkpoint.resolve_checkpoint`, which also checks its files). `out` must be
    new or empty and neither of them (`files.check_output_folder`), checked before anything loads.
    """
    out = Path(out)
    check_output_folder(out, "--out", inputs=[Path(model_id), Path(adapter)])
    adapter = checkpoint.resolve_checkpoint(adapter, which)
    state = checkpoint.read_trainer_state(adapter)
    # A LoRA merge keeps the base's text head (trained or not), so the folder has the base's tensor names:
    # vLLM-Omni, which loads no adapter, loads it as it loads the base.
    text_head = state.get("text_head", False) or state["mode"] == "lora"
    model, settings = load_finetuned(model_id, adapter, use_text_head=text_head)
    model.save_pretrained(out)
    processor = load_processor(model_id)
    codec_dir = out / AUDIO_TOKENIZER_SUBDIR
    processor.audio_tokenizer.save_pretrained(codec_dir)
    processor.audio_tokenizer = load_codec(codec_dir)
    processor.save_pretrained(out)
    (out / PROMPT_FILE).write_text(json.dumps(asdict(settings), indent=2, ensure_ascii=False))
    write_merged_card(out, adapter)
    for line in serving_prompt_warnings(settings):
        log.warning("%s", line)
    if state["mode"] == "lora":  # the base is read, never written: say so, not "merged into MODEL"
        log.info(
            "merged the LoRA adapter of %s onto the base %s (unchanged); wrote %s", adapter, model_id, out
        )
    else:
        log.info("a full fine-tune needs no merging: wrote %s as a model folder to %s", adapter, out)
    return out


def serving_prompt_warnings(prompt: PromptSettings) -> list[str]:
    """What a user serving the merged folder must know of its prompt: vLLM-Omni (which loads no adapter,
    so serves this folder) builds its own cloning prompt, the base system prompt with no scene block and
    the texts as sent (docs/vllm-omni.md). A fine-tune trained with another prompt meets that one there;
    one trained on normalised texts hears unnormalised ones unless the client normalises them."""
    warnings = []
    if prompt.scene is not None or prompt.system_prompt != BASE_SYSTEM_PROMPT:
        trained = (
            f"the scene {prompt.scene!r}" if prompt.scene else f"the system prompt {prompt.system_prompt!r}"
        )
        warnings.append(
            f"this fine-tune was trained with {trained}; served on vLLM-Omni it meets another prompt "
            "(its system prompt, no scene block), which it was not trained with: serve it with higgs-tune, "
            "or train with prompt.preset=vllm-omni to serve it there"
        )
    how = prompt.text_normalisation or "none"
    if how != "none":
        warnings.append(
            f"this fine-tune was trained on texts normalised by {how}; vLLM-Omni normalises nothing, so a "
            f"client must send the texts `higgs-tune normalise --text-normalisation {how}` prints"
        )
    return warnings
