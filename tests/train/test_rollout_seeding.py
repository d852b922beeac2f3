"""Sampling seeds are a pure function of (run seed, step, index), so a resumed run samples what an
uninterrupted one did."""

from __future__ import annotations

import random
import subprocess
import sys

import numpy as np
import torch

from or1_train.seeding import sample_seed, seed_everything


def test_sample_seeds_are_pinned_values_in_31_bits():
    # Pinned: changing the hash would silently change every run's samples after an upgrade.
    assert sample_seed(0, 0, 0) == 1849625595
    assert sample_seed(1, 2, 3) == 580410228
    assert sample_seed(12345, 100, 4095) == 1438108082
    seeds = [sample_seed(7, step, i) for step in range(50) for i in range(200)]
    assert all(0 <= s < 2**31 for s in seeds)
    assert len(set(seeds)) == len(seeds)


def test_sample_seeds_do_not_depend_on_the_process():
    """Python salts str hashes per process; the seed must not be built on hash()."""
    code = "from or1_train.seeding import sample_seed; print(sample_seed(3, 4, 5))"
    values = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
        for _ in range(2)
    }
    assert values == {str(sample_seed(3, 4, 5))}


def test_each_coordinate_changes_the_seed():
    base = sample_seed(1, 1, 1)
    assert len({base, sample_seed(2, 1, 1), sample_seed(1, 2, 1), sample_seed(1, 1, 2)}) == 4


def test_seed_everything_replays_python_numpy_and_torch():
    def draw():
        return random.random(), float(np.random.rand()), float(torch.rand(()))

    seed_everything(11)
    first = draw()
    seed_everything(11)
    assert draw() == first
    seed_everything(12)
    assert draw() != first
