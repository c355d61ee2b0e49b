"""Scorers that several stages share: ASR (`asr`), speaker similarity (`speaker`), word and character error
rates (`text_metrics`) and the lookup of the models that measure (`measuring`).

They sit below the stages, not inside `evaluation/`, because the first stage needs them as much as the
last: `ingest/` transcribes recordings and drops clips whose transcript disagrees (CER), `evaluation/`
measures clones, and `preferences/` scores candidates the way `eval` does. A stage may only import the
stages before it, so the scorers that all three use live here, above `data/` and `model/` (which they
use) and below every stage.
"""
