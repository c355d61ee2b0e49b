"""Tiny fixtures: a random 2-layer model, codec and tokenizer, synthetic voices, a small dataset, the demo."""
