"""higgs-tune: fine-tune Higgs Audio v2 for zero-shot voice cloning, then use and measure the result.

Data flows one way. Bottom to top, an import only points down this list, or within its own subpackage,
and no two modules import each other (tests/test_layers.py holds it):

    (foundation) top-level modules: `errors.py` (the one-line `UserError`), `files.py` (the one atomic
                 write, the output-folder refusals), `logs.py`, `config.py` (the run's settings) and
                 `config_files.py` (loading them from YAML and key=value), `ranks.py` (which process of a
                 launched group this is), `checkpoint.py` (what a checkpoint holds, which one is used, and
                 `weights_dir`, its adapter/ or model/ folder), `card.py` (the model card of every folder
                 of weights: written by training, copied by merge, pushed, updated by eval)
    data/        manifest -> samples     reading manifests, pairing utterances, validating clips and texts,
                                         the one --language parser, text normalisation (numbers in words)
    model/       the model's inputs      loading, the chat template, the one prompt builder, codec codes
    scoring/     clips -> scores         the scorers ingest, evaluation and preferences share: ASR
                                         (Whisper), speaker similarity (WavLM), WER/CER, the measuring
                                         models' lookup
    ingest/      raw audio -> corpus     recordings and datasets cut at pauses (silero-vad), transcribed
                                         (Whisper), filtered, written resumably as clips + utterances.jsonl
    prepared/    samples -> codes        every distinct clip encoded once into shards; the reader
    training/    codes -> examples -> batches -> model     label masking, collation, batch plans, the one
                                         loss, stop health, the SFT and DPO trainers (`training.run.train`
                                         picks one), trackers
    inference/   model -> speech         cloning with the training prompt, previews while training (handed
                                         to the trainer), merging a fine-tune, pushing it
    evaluation/  speech -> metrics       clones measured with scoring/, signal checks, the eval report,
                                         the HTML listening report and the blind A/B test
    preferences/ metrics -> pairs        sampled candidates scored like eval, rewarded and paired for DPO
    tiny/        fixtures                a random 2-layer model, synthetic voices, a small dataset, the demo
    cli/         commands                one module of commands per stage

Glossary (one word per idea):

    sample       one (reference clip, reference transcript, target text, target clip) pair from a manifest
    codes        a clip as codec codes, [8 codebooks, T frames] at 25 frames per second
    prompt       the settings that shape every cloning conversation: system prompt, scene, text
                 normalisation (`config.PromptSettings`, the parameter `prompt` everywhere), resolved once
                 per run (`training.run_data.resolve_prompt`) and recorded with every checkpoint
    tokens       one conversation built from a sample and the prompt (`model.prompt.build_prompt`)
    example      a prompt with its labels: what is learned (`training.examples`)
    batch plan   which examples form each micro-batch of each epoch, on this rank (`training.batching`)
    assignment   which process encodes which clip into which shard (`prepared.assignment`)
    load         read an audio file into a waveform (`data.audio`, `prepared.clip_loading`)
    encode / decode   waveform -> codes / codes -> waveform, through the codec (`model.codes`)
    held-out loss     the training loss on held-out examples, teacher forced (`training.trainer`)
    stop health  teacher-forced figures of whether the model learns to end a clip (`training.stop_health`)
    clone        generate the target speech of a sample from its reference (`inference.clone`)
    preview      a clip cloned from a held-out prompt while training, to listen to (`inference.previews`)
    evaluate     clone a held-out manifest and measure words, voice and stopping (`evaluation.evaluate`)
    model card   the README.md of a folder of weights, in the Hub's format (`card`)
    candidate    one sampled clone of a prompt, scored for preference pairs (`preferences.candidates`)
    fingerprint  what a checkpoint records of its base model, checked where it loads (`model.fingerprint`)
    settings     a command's or a run's typed options (`*Settings`, frozen pydantic: `config`,
                 `command_settings`); a config is the YAML file a run's settings are read from
    mode         how a run trains: lora or full (`trainer_state.json`, `checkpoint.weights_dir`)
    kind         what a folder of weights holds: adapter, full or merged (the model card's `higgs_tune.kind`)
    tuned / baseline  the two systems `eval` compares (`evaluation.report`); the baseline is the base
                 model, or the base model with a baseline adapter; the base model is only ever the model
    clip bounds  `min_seconds` / `max_seconds`: the clip lengths `validate`, `prepare` and `ingest` accept;
                 the length limit (`inference.settings.LengthLimit`) caps what `clone`, `eval` and `prefs`
                 generate
"""

__version__ = "0.1.0"
