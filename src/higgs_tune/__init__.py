"""higgs-tune: fine-tune Higgs Audio v2 for zero-shot voice cloning, then use and measure the result.

Data flows one way through the modules: manifest (sources) -> samples -> codes (codes, prepare) -> examples
(prompt, examples) -> batches (collate, batching) -> model (train, loss) -> outputs (generate) -> metrics
(speech_checks, evaluate).
"""

__version__ = "0.1.0"
