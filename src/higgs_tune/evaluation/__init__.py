"""Speech -> metrics: ASR (WER/CER), speaker similarity, signal checks, and the eval report."""
