"""higgs-tune: fine-tune Higgs Audio v2 for zero-shot voice cloning, then use and measure the result.

Data flows one way, one subpackage per stage; a stage imports only the stages before it:

    ingest/      raw audio -> corpus     recordings and datasets cut at pauses (silero-vad), transcribed
                                         (Whisper), filtered, written resumably as clips + utterances.jsonl;
                                         the one exception to the rule: it reuses data/'s checks,
                                         evaluation/'s ASR and CER, model/'s model lookup and
                                         prepared/'s rank split
    data/        manifest -> samples     reading manifests, pairing utterances, validating clips and texts,
                                         the one --language parser, text normalisation (numbers in words)
    model/       the model's inputs      loading, the chat template, the one prompt builder, codec codes
    prepared/    samples -> codes        every distinct clip encoded once into shards; the reader
    training/    codes -> examples -> batches -> model     label masking, collation, batch plans, the one
                                         loss, stop health, the trainer, trackers, model cards
    inference/   model -> speech         cloning with the training prompt, merging a fine-tune, pushing it
    evaluation/  speech -> metrics       ASR (WER/CER), speaker similarity, signal checks, the eval report,
                                         the HTML listening report and the blind A/B test
    preferences/ metrics -> pairs        sampled candidates scored like eval, rewarded and paired for DPO
    tiny/        fixtures                a random 2-layer model, synthetic voices, a small dataset, the demo

At the top: `cli/` (one module of commands per stage), `config.py` (the run's settings) and `config_files.py`
(loading them from YAML and key=value), `checkpoint.py` (what a checkpoint holds and which one is used),
`files.py` (the one atomic write), `errors.py` (the one-line `UserError`), `logs.py`.

Glossary (one word per idea):

    sample       one (reference clip, reference transcript, target text, target clip) pair from a manifest
    codes        a clip as codec codes, [8 codebooks, T frames] at 25 frames per second
    prompt       the token sequence of one cloning conversation (`model.prompt.build_prompt`)
    example      a prompt with its labels: what is learned (`training.examples`)
    batch plan   which examples form each micro-batch of each epoch, on this rank (`training.batching`)
    assignment   which process encodes which clip into which shard (`prepared.assignment`)
    load         read an audio file into a waveform (`data.audio`, `prepared.clip_loading`)
    encode / decode   waveform -> codes / codes -> waveform, through the codec (`model.codes`)
    held-out loss     the training loss on held-out examples, teacher forced (`training.trainer`)
    stop health  teacher-forced figures of whether the model learns to end a clip (`training.stop_health`)
    clone        generate the target speech of a sample from its reference (`inference.clone`)
    preview      a clip cloned from a held-out prompt while training, to listen to (`training.previews`)
    evaluate     clone a held-out manifest and measure words, voice and stopping (`evaluation.evaluate`)
    model card   the README.md of a folder of weights, in the Hub's format (`training.card`)
    candidate    one sampled clone of a prompt, scored for preference pairs (`preferences.candidates`)
    fingerprint  what a checkpoint records of its base model, checked where it loads (`model.fingerprint`)
"""

__version__ = "0.1.0"
