"""Which process of a launched group this is, read once from the launcher's environment.

`ingest` and `prepare` both split their work by rank when started under torchrun or accelerate launch, so the
reading lives here, below both stages (how `prepare`'s ranks then meet is `prepared.ranks`).
"""

from __future__ import annotations

import os


def process_rank() -> tuple[int, int]:
    """(rank, world size) as torchrun and accelerate launch set them; (0, 1) for a plain process."""
    rank = int(os.environ.get("RANK", "0"))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"RANK={rank} and WORLD_SIZE={world} do not describe a process of a group")
    return rank, world
