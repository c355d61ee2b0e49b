"""Samples -> codes on disk: every distinct clip encoded once into shards, and the reader training uses."""
