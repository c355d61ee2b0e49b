"""Model -> speech: cloning with the training prompt, and merging a fine-tune into a plain model folder."""
