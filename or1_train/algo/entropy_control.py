"""Adaptive entropy control: the coefficient alpha of the entropy bonus, steered toward a target entropy.

The paper (§3.2.5, eq. 3.2) and the released scripts differ in when the bonus is switched on (dossier §2,
§9.2); both are offered:

- "released-scripts" (default; `core_algos.py:L56-74`): alpha_k = c_k * gate, where the gate is
  1[e_{k-1} < target] from the PREVIOUS step's entropy (strict <) and starts at 1.
- "paper": alpha_k = c_k * 1[e_k <= target], gated on the current step's entropy, measured on the rollout
  before the update.

In both, after the step c <- clip(c + delta if e < target else c - delta, min_coef, max_coef): e == target
counts as a decrease, as in the code. A step that trains on nothing (every group filtered out) is skipped
and must not call `update`, so the controller neither moves nor sees that step, as in the released loop.

A disabled controller is a constant coefficient: alpha = initial_coef at every step and `update` changes
nothing (the recipe's ablations with a fixed entropy coefficient).

Pure Python: no torch, so the run spec and the CLI can use it without loading torch.
"""

from __future__ import annotations

VARIANTS = ("released-scripts", "paper")


class EntropyController:
    """Holds c_k (`coef`) and the lagged gate (`gate`); see the module docstring for the rules."""

    def __init__(
        self,
        *,
        enabled: bool = True,
        target: float = 0.2,
        delta: float = 1e-4,
        initial_coef: float = 0.0,
        min_coef: float = 0.0,
        max_coef: float = 5e-3,
        variant: str = "released-scripts",
    ) -> None:
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        if delta < 0:
            raise ValueError(f"delta must be >= 0, got {delta}")
        if min_coef > max_coef:
            raise ValueError(f"min_coef {min_coef} is above max_coef {max_coef}")
        if enabled and not min_coef <= initial_coef <= max_coef:
            raise ValueError(f"initial_coef {initial_coef} is outside [{min_coef}, {max_coef}]")
        self.enabled = enabled
        self.target = target
        self.delta = delta
        self.initial_coef = initial_coef
        self.min_coef = min_coef
        self.max_coef = max_coef
        self.variant = variant
        self.coef = float(initial_coef)
        self.gate = 1
        self.num_updates = 0

    def coefficient_for_step(self, current_entropy: float | None) -> float:
        """The alpha to apply in this step's loss.

        `current_entropy` is this step's entropy measured on the rollout before the update; only the
        "paper" variant reads it (and then requires it). "released-scripts" ignores it.
        """
        if not self.enabled:
            return float(self.initial_coef)
        if self.variant == "released-scripts":
            return self.coef * self.gate
        if current_entropy is None:
            raise ValueError("the 'paper' variant gates on this step's entropy: pass current_entropy")
        return self.coef if current_entropy <= self.target else 0.0

    def update(self, entropy: float) -> None:
        """After a trained step, move c one delta toward raising entropy to the target and reset the gate."""
        if not self.enabled:
            return
        below = entropy < self.target
        stepped = self.coef + self.delta if below else self.coef - self.delta
        self.coef = min(max(stepped, self.min_coef), self.max_coef)
        self.gate = int(below)
        self.num_updates += 1

    def state_dict(self) -> dict[str, float | int]:
        """The mutable state as JSON-able numbers; the configuration comes from the run spec."""
        return {"coef": self.coef, "gate": self.gate, "num_updates": self.num_updates}

    def load_state_dict(self, state: dict[str, float | int]) -> None:
        """Restore `state_dict()` output, so a resumed run continues exactly where it stopped."""
        self.coef = float(state["coef"])
        self.gate = int(state["gate"])
        self.num_updates = int(state["num_updates"])
