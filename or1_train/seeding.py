"""Seeds that depend only on (run seed, step, index), never on how many random numbers came before.

A run resumed from a checkpoint at step k must sample exactly the responses an uninterrupted run samples at
step k. Drawing seeds from a stateful RNG would make that depend on the whole history (and on the RNG state
being saved), so every sampling seed is instead a pure hash of its coordinates.
"""

from __future__ import annotations

import hashlib
import os
import random

_SEED_BITS = 31  # vLLM and torch both accept any non-negative int; 31 bits also fits a signed int32


def sample_seed(run_seed: int, step: int, index: int) -> int:
    """Stable 31-bit seed for sample `index` of training step `step` of the run seeded with `run_seed`.

    blake2b is used instead of `hash()` because Python salts string hashes per process and the tuple hash
    is not guaranteed across versions; this value is the same on every machine and every run.
    """
    key = f"{int(run_seed)}:{int(step)}:{int(index)}".encode()
    digest = hashlib.blake2b(key, digest_size=8).digest()
    return int.from_bytes(digest, "big") & ((1 << _SEED_BITS) - 1)


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global RNGs (`torch.manual_seed` covers every CUDA device too).

    numpy and torch are imported here rather than at module level so that importing this module stays light.
    """
    import numpy as np
    import torch

    os.environ["PYTHONHASHSEED"] = str(seed)  # takes effect in child processes started from here on
    random.seed(seed)
    np.random.seed(seed % (1 << 32))
    torch.manual_seed(seed)
