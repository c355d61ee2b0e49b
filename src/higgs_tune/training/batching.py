"""Batch plans: which sample indices form each micro-batch of each epoch, on this rank.

A plan is a pure function of (seed, epoch, rank, world size) and, for token budgets, the examples'
lengths, so every rank computes the same global plan without talking to the others, a resumed run
recomputes it and skips exactly the micro-batches already consumed, every rank gets a disjoint share,
and all ranks get the same number of micro-batches (they must step together).

Two plans share the interface `batches(epoch) -> list[list[int]]` (this rank's micro-batches) and
`left_out(epoch) -> int` (samples of the epoch no rank trains on):

* `FixedBatches`: `batch_size` examples per micro-batch, whatever their lengths; every micro-batch is
  padded to its longest example.
* `TokenBudgetBatches`: as many examples as fit in `max_tokens` padded positions (longest example x
  number of examples), drawn from length-sorted buckets, so the examples of a micro-batch have about the
  same length and little is padded.
"""

from __future__ import annotations

import random
from collections.abc import Sequence


def _rng(seed: int, epoch: int) -> random.Random:
    return random.Random(seed * 1_000_003 + epoch)


class FixedBatches:
    """Micro-batches of a fixed number of samples, shuffled per epoch, dealt round-robin to ranks.

    The samples that do not fill a last whole round (one micro-batch per rank) are not dropped: they
    are split into one smaller micro-batch per rank (sizes differing by at most one), so every rank
    still takes the same number of micro-batches. Only when fewer than `world_size` remain do they
    sit the epoch out (`left_out`, at most `world_size - 1`, and never with one process). The loss is
    normalised by the labelled frames of the whole step, so a smaller micro-batch is weighted right.
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
        _rng(self.seed, epoch).shuffle(order)
        step = self.batch_size * self.world_size
        rounds = len(order) // step
        mine = [
            order[r * step + self.rank * self.batch_size : r * step + (self.rank + 1) * self.batch_size]
            for r in range(rounds)
        ]
        rest = order[rounds * step :]
        if len(rest) >= self.world_size:
            mine.append(rest[self.rank :: self.world_size])
        return mine

    def left_out(self, epoch: int) -> int:
        """Samples of `epoch` that no rank trains on: a remainder too small to give every rank one."""
        rest = self.num_samples % (self.batch_size * self.world_size)
        return rest if rest < self.world_size else 0


def pack(order: Sequence[int], lengths: Sequence[int], max_tokens: int) -> list[list[int]]:
    """Greedily cut `order` (sorted by ascending length) into batches of at most `max_tokens` padded
    positions: a batch's padded size is its longest example's length times its number of examples."""
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        if current and lengths[i] * (len(current) + 1) > max_tokens:
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


def padded_size(batch: Sequence[int], lengths: Sequence[int]) -> int:
    """Positions a batch takes once padded to its longest example."""
    return max(lengths[i] for i in batch) * len(batch)


def padding_fraction(batches: Sequence[Sequence[int]], lengths: Sequence[int]) -> float:
    """Share of the padded positions of `batches` that are padding."""
    padded = sum(padded_size(b, lengths) for b in batches)
    real = sum(lengths[i] for b in batches for i in b)
    return 1.0 - real / padded if padded else 0.0


class TokenBudgetBatches:
    """Micro-batches of at most `max_tokens` padded positions, from length-sorted buckets.

    Per epoch: shuffle all samples (seeded by seed and epoch), cut the order into buckets of about
    `bucket_budgets * max_tokens` tokens, sort each bucket by length and pack it greedily into batches
    (from a random offset), then shuffle the batches. Examples of a batch come from one bucket and are
    neighbours in length, so padding is small; which examples share a bucket and a batch, and the batch
    order, change every epoch.

    Distribution: the shuffled batches are dealt round-robin to the ranks. When their number is not a
    multiple of `world_size`, the smallest `len % world_size` batches are set aside and split (a part of
    a batch always fits the budget) until there is exactly one more per rank; only when they hold fewer
    than `world_size` samples do those sit the epoch out. So at most `world_size - 1` samples per epoch
    are left out (`left_out`), usually none.

    `lengths[i]` is example i's sequence length (`examples.example_lengths`); examples longer than
    `max_tokens` cannot form a batch: leave them out before (the trainer skips those over `max_seq_len`).
    """

    def __init__(
        self,
        lengths: Sequence[int],
        max_tokens: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        bucket_budgets: int = 64,
    ) -> None:
        too_long = [i for i, n in enumerate(lengths) if n > max_tokens]
        if too_long:
            raise ValueError(
                f"{len(too_long)} examples are longer than max_tokens_per_batch={max_tokens} "
                f"(longest {max(lengths[i] for i in too_long)} tokens); skip them first"
            )
        if len(lengths) < world_size:
            raise ValueError(
                f"{len(lengths)} training samples cannot give each of {world_size} processes a micro-batch"
            )
        self.lengths = list(lengths)
        self.max_tokens = max_tokens
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.bucket_tokens = bucket_budgets * max_tokens
        self._cache: tuple[int, list[list[int]], int] | None = None

    def global_batches(self, epoch: int) -> tuple[list[list[int]], int]:
        """All ranks' batches of `epoch` in dealing order (batch b goes to rank b % world_size), and the
        number of samples left out."""
        if self._cache is not None and self._cache[0] == epoch:
            return self._cache[1], self._cache[2]
        rng = _rng(self.seed, epoch)
        order = list(range(len(self.lengths)))
        rng.shuffle(order)
        batches: list[list[int]] = []
        bucket: list[int] = []
        tokens = 0
        for i in order:
            bucket.append(i)
            tokens += self.lengths[i]
            if tokens >= self.bucket_tokens:
                batches += self._pack_bucket(bucket, rng)
                bucket, tokens = [], 0
        if bucket:
            batches += self._pack_bucket(bucket, rng)
        rng.shuffle(batches)

        # The batches that do not make a whole round are the smallest ones, so the fewest samples are
        # at stake when they have to be split or left out.
        extra = len(batches) % self.world_size
        smallest = set(sorted(range(len(batches)), key=lambda j: (len(batches[j]), j))[:extra])
        dealt = [b for j, b in enumerate(batches) if j not in smallest]
        rest = [b for j, b in enumerate(batches) if j in smallest]
        left_out = 0
        if rest:
            if sum(len(b) for b in rest) >= self.world_size:
                dealt += self._split(rest)
            else:
                left_out = sum(len(b) for b in rest)
        self._cache = (epoch, dealt, left_out)
        return dealt, left_out

    def _key(self, i: int) -> tuple[int, int]:
        return self.lengths[i], i

    def _pack_bucket(self, bucket: list[int], rng: random.Random) -> list[list[int]]:
        """Sort a bucket by length (ties in random order) and pack it, starting the cuts at a random
        offset: a dataset smaller than one bucket is sorted the same way every epoch, and the offset
        is what still gives its examples other batch-mates from epoch to epoch."""
        ordered = sorted(bucket, key=lambda i: (self.lengths[i], rng.random()))
        offset = rng.randrange(len(pack(ordered, self.lengths, self.max_tokens)[0]))
        head = [ordered[:offset]] if offset else []
        return head + pack(ordered[offset:], self.lengths, self.max_tokens)

    def _split(self, rest: list[list[int]]) -> list[list[int]]:
        """Split the leftover batches until there is one per rank (largest first; halves by length)."""
        parts = [sorted(b, key=self._key) for b in rest]
        while len(parts) < self.world_size:
            largest = max(range(len(parts)), key=lambda j: len(parts[j]))
            batch = parts.pop(largest)
            half = len(batch) // 2
            parts += [batch[:half], batch[half:]]
        return parts

    def batches(self, epoch: int) -> list[list[int]]:
        """This rank's micro-batches for `epoch`."""
        return self.global_batches(epoch)[0][self.rank :: self.world_size]

    def left_out(self, epoch: int) -> int:
        """Samples of `epoch` that no rank trains on (fewer than `world_size`, usually 0)."""
        return self.global_batches(epoch)[1]
