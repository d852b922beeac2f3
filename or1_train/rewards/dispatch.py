"""Route each response to the verifier of its problem's ability (math or code) and keep their counters.

Rewards are binary as in the recipe (dossier §5): no format reward, no length penalty. The code verifier is
started only when a code problem appears, so math-only runs never pay for the sandbox.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from or1_train.data.schema import Example
from or1_train.spec import RewardSpec


class Rewarder:
    def __init__(self, spec: RewardSpec):
        self.spec = spec
        self.counters: Counter[str] = Counter()
        self._math = None
        self._code = None

    def _math_verifier(self):
        if self._math is None:
            from or1_train.rewards.math import MathVerifier

            self._math = MathVerifier(workers=self.spec.workers, timeout_s=self.spec.math_timeout_s)
        return self._math

    def _code_verifier(self):
        if self._code is None:
            from or1_train.rewards.code import CodeVerifier

            self._code = CodeVerifier(workers=self.spec.workers, timeout_s=self.spec.code_timeout_s)
        return self._code

    def score(self, responses: Sequence[str], examples: Sequence[Example]) -> list[float]:
        """Binary reward of each response against its example's ground truth, in order."""
        rewards = [0.0] * len(responses)
        for ability, verifier in (("math", self._math_verifier), ("code", self._code_verifier)):
            idx = [i for i, e in enumerate(examples) if e.ability == ability]
            if not idx:
                continue
            scores = verifier().score([responses[i] for i in idx], [examples[i].ground_truth for i in idx])
            for i, s in zip(idx, scores, strict=True):
                rewards[i] = float(s.reward)
                if getattr(s, "timed_out", False):
                    self.counters[f"{ability}_timeouts"] += 1
        unknown = [e.ability for e in examples if e.ability not in ("math", "code")]
        self.counters["unknown_ability"] += len(unknown)
        return rewards

    def close(self) -> None:
        for verifier in (self._math, self._code):
            if verifier is not None:
                verifier.close()
