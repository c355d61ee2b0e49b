"""Raw audio -> corpus: `higgs-tune ingest` (sources, slicing, filters, transcribe, corpus, run)."""
