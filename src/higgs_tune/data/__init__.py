"""Manifest -> samples: reading users' manifests, pairing utterances, validating clips and transcripts."""
