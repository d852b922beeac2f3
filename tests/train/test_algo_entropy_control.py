"""The adaptive entropy controller, step by step against coefficient sequences written out by hand."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from or1_train.algo.entropy_control import EntropyController

# target 0.2, delta 1e-3, c0 = min = 5e-4, max = 2.5e-3: small enough to hit both bounds in ten steps.
CONFIG = {"target": 0.2, "delta": 1e-3, "initial_coef": 5e-4, "min_coef": 5e-4, "max_coef": 2.5e-3}
ENTROPIES = [0.15, 0.10, 0.18, 0.19, 0.25, 0.20, 0.30, 0.10, 0.22, 0.05]

# c after each update: +delta when e < 0.2, else -delta (0.20 == target decreases), clipped to [5e-4, 2.5e-3]
#   0.15: 5e-4 -> 1.5e-3      0.25: 2.5e-3 -> 1.5e-3     0.22: 1.5e-3 -> 5e-4
#   0.10: -> 2.5e-3           0.20: -> 5e-4              0.05: -> 1.5e-3
#   0.18: 3.5e-3 -> 2.5e-3 (max)  0.30: -5e-4 -> 5e-4 (min)
#   0.19: -> 2.5e-3 (max)     0.10: -> 1.5e-3
COEFS_AFTER = [1.5e-3, 2.5e-3, 2.5e-3, 2.5e-3, 1.5e-3, 5e-4, 5e-4, 1.5e-3, 5e-4, 1.5e-3]
GATES_AFTER = [1, 1, 1, 1, 0, 0, 0, 1, 0, 1]  # int(e < 0.2), strict: 0.20 closes the gate

# released-scripts: alpha_k = c_k * gate_k, gate_k = 1[e_{k-1} < 0.2], gate_0 = 1.
# Step 4 (e = 0.25) still applies c because the gate comes from step 3; step 7 (e = 0.10) applies 0
# because the gate comes from step 6 (e = 0.30).
RELEASED_ALPHAS = [5e-4, 1.5e-3, 2.5e-3, 2.5e-3, 2.5e-3, 0.0, 0.0, 0.0, 1.5e-3, 0.0]
# paper: alpha_k = c_k * 1[e_k <= 0.2]; step 5 (e = 0.20 exactly) applies c_5 = 1.5e-3.
PAPER_ALPHAS = [5e-4, 1.5e-3, 2.5e-3, 2.5e-3, 0.0, 1.5e-3, 0.0, 5e-4, 0.0, 5e-4]


def _run(ctrl, entropies):
    alphas, coefs, gates = [], [], []
    for e in entropies:
        alphas.append(ctrl.coefficient_for_step(e))
        ctrl.update(e)
        coefs.append(ctrl.coef)
        gates.append(ctrl.gate)
    return alphas, coefs, gates


@pytest.mark.parametrize(("variant", "expected_alphas"),
                         [("released-scripts", RELEASED_ALPHAS), ("paper", PAPER_ALPHAS)])
def test_coefficient_sequence_step_by_step(variant, expected_alphas):
    alphas, coefs, gates = _run(EntropyController(**CONFIG, variant=variant), ENTROPIES)
    assert alphas == pytest.approx(expected_alphas, abs=1e-15)
    assert coefs == pytest.approx(COEFS_AFTER, abs=1e-15)
    assert gates == GATES_AFTER


def test_bounds_are_hit_exactly():
    ctrl = EntropyController(**CONFIG)
    _run(ctrl, ENTROPIES[:3])
    assert ctrl.coef == 2.5e-3  # clipped to max_coef, not 2.5e-3 plus rounding
    _run(ctrl, [0.3] * 5)
    assert ctrl.coef == 5e-4


def test_released_script_values_need_fifty_steps_to_reach_the_cap():
    ctrl = EntropyController()  # target 0.2, delta 1e-4, c0 0, max 5e-3 (the released scripts)
    alphas, coefs, _ = _run(ctrl, [0.1] * 60)
    assert alphas[:3] == pytest.approx([0.0, 1e-4, 2e-4], abs=1e-15)
    assert coefs[48] == pytest.approx(4.9e-3, abs=1e-12)  # after 49 updates
    assert coefs[49] == pytest.approx(5e-3, abs=1e-12)
    assert coefs[59] == 5e-3 and alphas[59] == 5e-3


def test_state_dict_round_trip_mid_trace_continues_identically():
    uninterrupted = EntropyController(**CONFIG)
    full_alphas, full_coefs, _ = _run(uninterrupted, ENTROPIES)

    first = EntropyController(**CONFIG)
    head, _, _ = _run(first, ENTROPIES[:5])
    state = json.loads(json.dumps(first.state_dict()))
    assert state == {"coef": pytest.approx(1.5e-3, abs=1e-15), "gate": 0, "num_updates": 5}

    resumed = EntropyController(**CONFIG)
    resumed.load_state_dict(state)
    tail, tail_coefs, _ = _run(resumed, ENTROPIES[5:])
    assert head + tail == full_alphas  # bit-identical, not just close
    assert tail_coefs == full_coefs[5:]
    assert tail == pytest.approx(RELEASED_ALPHAS[5:], abs=1e-15)
    assert resumed.num_updates == 10


def test_a_skipped_step_leaves_the_controller_untouched():
    ctrl = EntropyController(**CONFIG)
    _run(ctrl, ENTROPIES[:2])
    before = ctrl.state_dict()
    # A step with nothing left after filtering: the trainer neither applies alpha nor calls update().
    assert ctrl.coefficient_for_step(0.9) == ctrl.coefficient_for_step(0.9) == 2.5e-3
    assert ctrl.state_dict() == before


@pytest.mark.parametrize("variant", ["released-scripts", "paper"])
def test_disabled_controller_is_a_constant_coefficient(variant):
    ctrl = EntropyController(enabled=False, initial_coef=1e-3, variant=variant)
    alphas, coefs, _ = _run(ctrl, ENTROPIES)
    assert alphas == [1e-3] * 10 and coefs == [1e-3] * 10
    assert ctrl.coefficient_for_step(None) == 1e-3
    # Bounds do not constrain a constant: 0.01 above the default max is allowed when disabled.
    assert EntropyController(enabled=False, initial_coef=0.01).coefficient_for_step(None) == 0.01


def test_paper_variant_needs_the_current_entropy():
    with pytest.raises(ValueError, match="current_entropy"):
        EntropyController(variant="paper").coefficient_for_step(None)
    assert EntropyController().coefficient_for_step(None) == 0.0  # released-scripts ignores it


def test_rejects_bad_configuration():
    with pytest.raises(ValueError, match="variant"):
        EntropyController(variant="dapo")
    with pytest.raises(ValueError, match="delta"):
        EntropyController(delta=-1e-4)
    with pytest.raises(ValueError, match="min_coef"):
        EntropyController(min_coef=1e-2, max_coef=1e-3)
    with pytest.raises(ValueError, match="initial_coef"):
        EntropyController(initial_coef=1e-2)


def test_module_imports_without_torch():
    code = "import sys, or1_train.algo.entropy_control; assert 'torch' not in sys.modules, sys.modules.keys()"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])
