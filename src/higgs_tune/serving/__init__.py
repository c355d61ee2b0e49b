"""`higgs-tune serve`: the fine-tune behind an OpenAI-compatible speech API (FastAPI + uvicorn).

Bottom to top: `settings` (the command's limits), `requests` (the request body), `audio_formats` (audio
to bytes), `voices` (named references, encoded once), `engine` (the model, the one prompt builder,
generation watched frame by frame), `streaming` (incremental decoding), `batcher` (the queue and the
generation thread), `metrics`, `limits` (key, body size, errors as JSON), `app` (the routes).
"""
