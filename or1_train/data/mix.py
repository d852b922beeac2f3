"""The prompt sampler: a seeded, epoch-aware, weighted mix of sources, with filters and a resumable cursor.

Every random choice is a pure function of its coordinates, never of a stateful RNG's history:
- which source serves draw k is decided by hash(seed, k) against the normalised weights;
- source i's order in epoch e is a shuffle seeded by (seed, i, e).
The cursor (`state_dict`) is therefore a handful of integers plus the excluded uids, and a sampler restored
from it yields exactly the batches an uninterrupted one would have yielded. That is what makes a resumed run
see the same prompts as one that never stopped.

Filters never change which source a draw goes to, only which of that source's examples is returned: a
rejected example is skipped and the next one of the *same* source is taken, so the mix weights hold for the
examples actually returned. A source whose every example is rejected is dropped from the mix (reported in
`stats()["empty_sources"]`) until the filter changes; if no source is left, sampling raises.
"""

from __future__ import annotations

import hashlib
import math
import random
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Sequence
from itertools import accumulate

from or1_train.data.schema import Example
from or1_train.data.sources import SourceData

_STATE_VERSION = 1


def _unit(seed: int, draw: int) -> float:
    """A uniform number in [0, 1) fixed by (seed, draw)."""
    digest = hashlib.blake2b(f"{seed}/choice/{draw}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


class MixSampler:
    def __init__(
        self,
        sources: Sequence[tuple[SourceData, float]],
        seed: int,
        prompt_filter: Callable[[Example], bool] | None = None,
    ):
        if not sources:
            raise ValueError("a mix needs at least one source")
        for source, weight in sources:
            if not (isinstance(weight, (int, float)) and math.isfinite(weight) and weight >= 0):
                raise ValueError(f"source {source.name!r}: weight must be finite and >= 0, got {weight!r}")
            if weight > 0 and not source.examples:
                raise ValueError(f"source {source.name!r} has weight {weight} but no examples")
        total = sum(weight for _, weight in sources)
        if total <= 0:
            raise ValueError("the mix weights sum to zero")
        self._sources = [source for source, _ in sources]
        self._weights = [weight / total for _, weight in sources]
        self._seed = int(seed)
        self._filter = prompt_filter
        self._verdicts: list[dict[int, bool]] = [{} for _ in self._sources]
        self._perms: list[tuple[int, list[int]] | None] = [None for _ in self._sources]
        self._epoch = [0 for _ in self._sources]
        self._position = [0 for _ in self._sources]
        self._returned = [0 for _ in self._sources]
        self._draws = 0
        self._excluded: set[str] = set()
        self._dropped: Counter = Counter()
        self._empty: set[int] = set()

    # -- filters ---------------------------------------------------------------------------------------
    def set_prompt_filter(self, prompt_filter: Callable[[Example], bool] | None) -> None:
        """Replace the filter (at a stage boundary: a longer max prompt admits more). Sources emptied by the
        old filter come back into the mix, and cached verdicts are forgotten."""
        self._filter = prompt_filter
        self._verdicts = [{} for _ in self._sources]
        self._empty.clear()

    def exclude(self, uids: set[str] | Sequence[str]) -> None:
        """Never return these prompts again (e.g. those solved by every sample in the previous stage)."""
        self._excluded.update(uids)

    def _rejection(self, source: int, index: int) -> str | None:
        """Why example `index` of `source` may not be returned now, or None if it may."""
        example = self._sources[source].examples[index]
        if example.uid in self._excluded:
            return "excluded"
        if self._filter is None:
            return None
        verdicts = self._verdicts[source]
        if index not in verdicts:
            verdicts[index] = bool(self._filter(example))
        return None if verdicts[index] else "filtered"

    # -- drawing ---------------------------------------------------------------------------------------
    def _order(self, source: int) -> list[int]:
        epoch = self._epoch[source]
        cached = self._perms[source]
        if cached is None or cached[0] != epoch:
            order = list(range(len(self._sources[source].examples)))
            random.Random(f"{self._seed}/{source}/{epoch}").shuffle(order)
            cached = (epoch, order)
            self._perms[source] = cached
        return cached[1]

    def _choose(self) -> int:
        live = [i for i, w in enumerate(self._weights) if w > 0 and i not in self._empty]
        if not live:
            raise RuntimeError("every source of the mix is empty after filtering and exclusions")
        bounds = list(accumulate(self._weights[i] for i in live))
        u = _unit(self._seed, self._draws) * bounds[-1]
        self._draws += 1
        return live[min(bisect_right(bounds, u), len(live) - 1)]

    def _take(self, source: int) -> Example | None:
        """The next admissible example of `source`, advancing its epoch when it runs out; None (and the
        source is marked empty) when none of its examples is admissible."""
        size = len(self._sources[source].examples)
        skipped = 0
        while True:
            if self._position[source] >= size:
                self._epoch[source] += 1
                self._position[source] = 0
            index = self._order(source)[self._position[source]]
            self._position[source] += 1
            reason = self._rejection(source, index)
            if reason is None:
                self._returned[source] += 1
                return self._sources[source].examples[index]
            self._dropped[reason] += 1
            skipped += 1
            if skipped == size and all(self._rejection(source, i) for i in range(size)):
                self._empty.add(source)
                return None

    def next_batch(self, n: int) -> list[Example]:
        batch: list[Example] = []
        while len(batch) < n:
            example = self._take(self._choose())
            if example is not None:
                batch.append(example)
        return batch

    # -- cursor ----------------------------------------------------------------------------------------
    def stats(self) -> dict:
        """`dropped` counts skipped draws by reason ("filtered", "excluded"); an example rejected in several
        epochs counts once per epoch, which is how often it cost a draw."""
        return {
            "dropped": dict(self._dropped),
            "returned": {s.name: n for s, n in zip(self._sources, self._returned)},
            "epochs": {s.name: e for s, e in zip(self._sources, self._epoch)},
            "excluded": len(self._excluded),
            "empty_sources": sorted(self._sources[i].name for i in self._empty),
        }

    def state_dict(self) -> dict:
        """A JSON-able cursor. The filter is code, not state: set the same one again after loading."""
        return {
            "version": _STATE_VERSION,
            "seed": self._seed,
            "draws": self._draws,
            "sources": [
                {"name": s.name, "size": len(s.examples), "epoch": e, "position": p, "returned": r}
                for s, e, p, r in zip(self._sources, self._epoch, self._position, self._returned)
            ],
            "excluded": sorted(self._excluded),
            "dropped": dict(self._dropped),
            "empty_sources": sorted(self._empty),
        }

    def load_state_dict(self, state: dict) -> None:
        if state.get("version") != _STATE_VERSION:
            raise ValueError(f"mix cursor version {state.get('version')!r} is not {_STATE_VERSION}")
        if state["seed"] != self._seed:
            raise ValueError(f"mix cursor was saved with seed {state['seed']}, this sampler has {self._seed}")
        saved = [(s["name"], s["size"]) for s in state["sources"]]
        mine = [(s.name, len(s.examples)) for s in self._sources]
        if saved != mine:
            raise ValueError(f"mix cursor is for sources {saved}, this sampler has {mine}")
        self._draws = int(state["draws"])
        self._epoch = [int(s["epoch"]) for s in state["sources"]]
        self._position = [int(s["position"]) for s in state["sources"]]
        self._returned = [int(s["returned"]) for s in state["sources"]]
        self._excluded = set(state["excluded"])
        self._dropped = Counter(state["dropped"])
        self._empty = set(state["empty_sources"])
        self._perms = [None for _ in self._sources]
        self._verdicts = [{} for _ in self._sources]
