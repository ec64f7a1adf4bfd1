"""Sample seeds: the one derivation of the random stream every sample draws from.

A sample is named by what it is, never by where it runs: the run's ``seed``, its problem's
id, its index among that problem's samples and its repeat (Think@n's repeats). :func:`sample_seed`
hashes those four (BLAKE2b, 8 bytes, top bit cleared) into a 63-bit seed. Each backend seeds
one stream per sample with it (``hf``: a ``torch.Generator`` per row of the batch; ``vllm``: the
request's ``seed``), so a sample's tokens do not depend on its batch, unit, shard, Ray worker or
resumed session, a run with more questions or samples keeps the ones it had, and two runs (or
two models, or two decoding configs) with the same seed see the same streams. The tokens still
differ between backends, whose samplers differ, never within one.

A sample continued after a prefix (Think@n and DeepConf on vLLM) draws the rest from
:func:`continuation_seed` of the seed it had, the same hash with a tag.
"""

from __future__ import annotations

import hashlib


def _hash(*parts: object) -> int:
    """A 63-bit integer from ``parts`` joined by ``:`` (BLAKE2b, 8 bytes, little-endian)."""
    text = ":".join(str(part) for part in parts)
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def sample_seed(seed: int, problem_id: str, sample_idx: int, repeat: int = 0) -> int:
    """The seed of sample ``sample_idx`` of problem ``problem_id`` in repeat ``repeat`` of a
    run seeded ``seed``: a 63-bit integer. Repeat 0 hashes ``seed:problem_id:sample_idx``
    (the key of every ``generate`` run); a later repeat appends ``:r{repeat}``, so it never
    draws another seed's samples."""
    if repeat < 0:
        raise ValueError(f"repeat must be >= 0, got {repeat}")
    if repeat:
        return _hash(int(seed), problem_id, int(sample_idx), f"r{repeat}")
    return _hash(int(seed), problem_id, int(sample_idx))


def continuation_seed(seed: int) -> int:
    """The seed a sample seeded ``seed`` continues with after its prefix (a fresh, fixed
    stream; each further round of the same sample applies it again)."""
    return _hash(int(seed), "continue")
