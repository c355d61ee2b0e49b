"""Batch plans: which sample indices form each micro-batch of each epoch, on this rank.

A plan is a pure function of (seed, epoch, rank, world size), so a resumed run recomputes it and skips
exactly the micro-batches already consumed, and every rank gets a disjoint share with the same number
of micro-batches (ranks must step together).
"""

from __future__ import annotations

import random


class FixedBatches:
    """Micro-batches of a fixed number of samples, shuffled per epoch, dealt round-robin to ranks.

    The last incomplete global round is dropped so all ranks take the same number of steps; the
    number of samples that leaves out per epoch is at most `batch_size * world_size - 1`.
    """

    def __init__(
        self, num_samples: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1
    ) -> None:
        if num_samples < batch_size * world_size:
            raise ValueError(
                f"{num_samples} training samples cannot fill one micro-batch of {batch_size} on each of "
                f"{world_size} processes; lower per_device_train_batch_size or add data"
            )
        self.num_samples = num_samples
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size

    def batches(self, epoch: int) -> list[list[int]]:
        """This rank's micro-batches for `epoch`."""
        order = list(range(self.num_samples))
        random.Random(self.seed * 1_000_003 + epoch).shuffle(order)
        rounds = len(order) // (self.batch_size * self.world_size)
        step = self.batch_size * self.world_size
        return [
            order[r * step + self.rank * self.batch_size : r * step + (self.rank + 1) * self.batch_size]
            for r in range(rounds)
        ]
