"""The model's inputs and outputs: loading (one path for hub ids and folders), the chat template,
the one prompt builder, and codec codes."""
