"""`higgs-tune merge`: a fine-tune as a self-contained model folder that plain transformers loads.

The LoRA adapter is merged into the base weights; the processor is saved beside the model with its own
copy of the codec in `audio_tokenizer/` (and pointing there), so `HiggsAudioV2ForConditionalGeneration`
and `HiggsAudioV2Processor.from_pretrained(OUT)` load it with no higgs-tune code. The prompt settings
the model was trained with are written to `OUT/higgs_tune_prompt.json`, since the chat template itself
carries no system prompt; every command that loads the folder reads them (`loading.model_prompt`).

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
    model, settings = load_finetuned(model_id, adapter, use_text_head=state.get("text_head", False))
    model.save_pretrained(out)
    processor = load_processor(model_id)
    codec_dir = out / AUDIO_TOKENIZER_SUBDIR
    processor.audio_tokenizer.save_pretrained(codec_dir)
    processor.audio_tokenizer = load_codec(codec_dir)
    processor.save_pretrained(out)
    (out / PROMPT_FILE).write_text(json.dumps(asdict(settings), indent=2, ensure_ascii=False))
    write_merged_card(out, adapter)
    if state["mode"] == "lora":  # the base is read, never written: say so, not "merged into MODEL"
        log.info(
            "merged the LoRA adapter of %s onto the base %s (unchanged); wrote %s", adapter, model_id, out
        )
    else:
        log.info("a full fine-tune needs no merging: wrote %s as a model folder to %s", adapter, out)
    return out
