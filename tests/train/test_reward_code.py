"""The code reward: extraction, OR1's three test formats, all-or-nothing scoring, per-test limits."""

from __future__ import annotations

import json
import time

import pytest

from or1_train.rewards.code import (
    BadGroundTruth,
    CodeScore,
    CodeVerifier,
    extract_code,
    parse_tests,
    stdout_matches,
)
from or1_train.rewards.sandbox import SandboxPool

FENCE = "```"


def answer(code: str, tag: str = "python") -> str:
    draft = f"<think>Let me think.\n{FENCE}python\nprint('draft')\n{FENCE}\n</think>\n"
    return f"{draft}Solution:\n{FENCE}{tag}\n{code}\n{FENCE}\n"


@pytest.fixture(scope="module")
def pool():
    p = SandboxPool(2)
    yield p
    p.close()


@pytest.fixture(scope="module")
def verifier(pool):
    v = CodeVerifier(timeout_s=1.0, memory_mb=512, fail_fast=False, pool=pool)
    yield v
    v.close()


def score1(verifier, code: str, gt) -> CodeScore:
    return verifier.score([answer(code)], [gt])[0]


# ------------------------------------------------------------------------------------ extraction


def test_extract_code_takes_the_last_python_block_after_think():
    blocks = [("python", "x = 1"), ("cpp", "int main(){}"), ("py", "y = 2"), ("json", "{}")]
    text = "\n".join(f"{FENCE}{tag}\n{body}\n{FENCE}" for tag, body in blocks)
    assert extract_code(text) == "y = 2\n"
    assert extract_code(f"{FENCE}\nz = 3\n{FENCE}") == "z = 3\n"
    assert extract_code(f"{FENCE}Python3 title=sol.py\nw = 4\n{FENCE}") == "w = 4\n"
    assert extract_code(answer("print(1)")) == "print(1)\n"  # the draft inside <think> does not count
    assert extract_code(f"<think>{FENCE}python\nx=1\n{FENCE}</think> no code after thinking") is None
    assert extract_code("just prose") is None


def test_stdout_matching_follows_livecodebench():
    assert stdout_matches("3\n7  \n\n", "3\n7")
    assert stdout_matches("0.50 1e2\n", "0.5 100")
    assert not stdout_matches("3\n7\n8", "3\n7")
    assert not stdout_matches("3 7", "3\n7")
    assert not stdout_matches("YES", "yes")
    assert not stdout_matches("0.5000001", "0.5")


def test_bad_ground_truths_are_refused():
    for gt in [
        "not json",
        "[1, 2]",
        '{"question_id": "abc"}',
        '{"inputs": [1], "outputs": []}',
        '{"inputs": [], "outputs": []}',
        {"import_prefix": "", "test_code": "assert 1", "entry_point": "f"},
        {"import_prefix": "", "test_code": "def check(c:", "entry_point": "f"},
    ]:
        with pytest.raises(BadGroundTruth):
            parse_tests(gt)


def test_assert_format_splits_literal_asserts_and_keeps_others_inside():
    suite = parse_tests(
        {
            "import_prefix": "import math\n",
            "test_code": "def helper(x):\n    return x\n\ndef check(candidate):\n"
            "    assert candidate(nums=[1, 2]) == [2, 1]\n    assert helper(candidate([])) == []\n"
            "    assert abs(candidate([3]) [0] - 3) < 1e-9\n\ncheck(Solution().rev)\n",
            "entry_point": "Solution().rev",
        }
    )
    assert suite.kind == "assert" and len(suite.tests) == 3
    assert suite.expected[0].value == [2, 1] and "[2, 1]" not in suite.tests[0]["src"]
    assert suite.expected[1].value == [] and suite.tests[1]["value"]
    assert suite.expected[2] is None and not suite.tests[2]["value"]
    assert "def helper" in suite.setup and "check(" not in suite.setup


# ------------------------------------------------------------------------------ stdin / stdout


STDIO = json.dumps({"inputs": ["1 2\n", "3 4\n", "10 20\n"], "outputs": ["3\n", "7\n", "30\n"]})


def test_stdio_pass_fail_and_partial(verifier):
    good = "a, b = map(int, input().split())\nprint(a + b)"
    partial = "a, b = map(int, input().split())\nprint(a + b if a < 5 else a * b)"
    wrong = "print(0)"
    scores = verifier.score([answer(good), answer(partial), answer(wrong)], [STDIO, json.loads(STDIO), STDIO])
    assert scores[0] == CodeScore(1.0, 3, 3, "pass")
    assert scores[1] == CodeScore(0.0, 2, 3, "wrong_answer")
    assert scores[2] == CodeScore(0.0, 0, 3, "wrong_answer")


def test_stdio_reads_all_of_stdin_and_a_crash_is_a_runtime_error(verifier):
    whole = "import sys\nnums = list(map(int, sys.stdin.read().split()))\nprint(sum(nums))"
    assert score1(verifier, whole, STDIO).reward == 1.0
    crash = "a, b = map(int, input().split())\nprint(a + b)\nraise SystemExit(1)"
    assert score1(verifier, crash, STDIO) == CodeScore(0.0, 0, 3, "runtime_error")


def test_stdio_timeout_is_per_test(verifier):
    slow_on_big = "import time\na, b = map(int, input().split())\nif a >= 10:\n    time.sleep(30)\nprint(a + b)"
    t = time.monotonic()
    s = score1(verifier, slow_on_big, STDIO)
    assert s == CodeScore(0.0, 2, 3, "timeout") and s.timed_out
    assert time.monotonic() - t < 10


def test_fail_fast_skips_the_rest_of_a_problem(pool):
    gt = json.dumps({"inputs": [f"{i}\n" for i in range(8)], "outputs": [f"{i}\n" for i in range(8)]})
    code = "import time\nx = int(input())\nif x == 0:\n    print(-1)\nelse:\n    time.sleep(0.4)\n    print(x)"
    with CodeVerifier(timeout_s=2.0, memory_mb=512, pool=pool) as fast:
        t = time.monotonic()
        s = fast.score([answer(code)], [gt])[0]
        elapsed = time.monotonic() - t
    assert s.reward == 0.0 and s.total == 8 and s.passed <= 1 and s.reason == "wrong_answer"
    assert elapsed < 8 * 0.4 / 2  # seven slow tests on two slots would take longer


# ------------------------------------------------------------------------------------ call style


TACO_CALL = json.dumps(
    {"fn_name": "pair", "inputs": [[1, 2], [3, 4], [5, 6]], "outputs": [[[1, 2]], [[3, 4]], [[5, 6]]]}
)
LCB_CALL = json.dumps({"fn_name": "pair", "inputs": ["1\n2", "3\n4"], "outputs": ["[1, 2]", "[3, 4]"]})


def test_call_style_bare_function_class_method_and_tuples(verifier):
    bare = "def pair(a, b):\n    return [a, b]"
    method = "class Solution:\n    def pair(self, a: int, b: int) -> List[int]:\n        return (a, b)"
    partial = "def pair(a, b):\n    return [a, b] if a < 3 else [b, a]"
    missing = "def other(a, b):\n    return [a, b]"
    responses = [answer(c) for c in (bare, method, bare, method, partial, missing)]
    gts = [TACO_CALL, TACO_CALL, LCB_CALL, LCB_CALL, TACO_CALL, TACO_CALL]
    scores = verifier.score(responses, gts)
    assert [s.reward for s in scores[:4]] == [1.0] * 4
    assert scores[4] == CodeScore(0.0, 1, 3, "wrong_answer")
    assert scores[5] == CodeScore(0.0, 0, 3, "runtime_error")


def test_call_style_counts_tests_up_to_a_crash_and_times_out_per_test(verifier):
    crash = "import os\ndef pair(a, b):\n    if a == 3:\n        os._exit(1)\n    return [a, b]"
    assert score1(verifier, crash, TACO_CALL) == CodeScore(0.0, 1, 3, "runtime_error")
    # A loop that swallows the timer's exception still stops: the timer repeats until one lands outside `try`.
    hang = "def pair(a, b):\n    while a == 3:\n        try:\n            pass\n"
    hang += "        except BaseException:\n            pass\n    return [a, b]"
    t = time.monotonic()
    assert score1(verifier, hang, TACO_CALL) == CodeScore(0.0, 2, 3, "timeout")
    assert time.monotonic() - t < 8


def test_call_style_rejects_objects_that_claim_equality(verifier):
    hack = "class Any:\n    def __eq__(self, other):\n        return True\ndef pair(a, b):\n    return Any()"
    assert score1(verifier, hack, TACO_CALL) == CodeScore(0.0, 0, 3, "wrong_answer")
    sub = "class L(list):\n    def __eq__(self, other):\n        return True\ndef pair(a, b):\n    return L()"
    assert score1(verifier, sub, TACO_CALL).reward == 0.0
    # Forged result lines on every descriptor the result stream could be: a value test needs its value.
    forge = "import os\nfor fd in range(3, 20):\n    for i in range(3):\n        try:\n"
    forge += '            os.write(fd, (\'{"i": %d, "s": "pass", "v": null}\\n\' % i).encode())\n'
    forge += "        except OSError:\n            pass\n"
    assert score1(verifier, forge + "def pair(a, b):\n    return None", TACO_CALL) == CodeScore(
        0.0, 0, 3, "wrong_answer"
    )
    lc = forge + "class Solution:\n    def twoSum(self, nums, target):\n        return None"
    assert score1(verifier, lc, LEETCODE) == CodeScore(0.0, 0, 4, "wrong_answer")


# --------------------------------------------------------------------------------- assert style


LEETCODE = {
    "import_prefix": "from typing import *\nfrom collections import *\n",
    "test_code": "def check(candidate):\n    assert candidate(nums=[2, 7, 11, 15], target=9) == [0, 1]\n"
    "    assert candidate(nums=[3, 2, 4], target=6) == [1, 2]\n"
    "    assert sorted(candidate([3, 3], 6)) == [0, 1]\n"
    "    assert len(candidate([1, 5, 9], 14)) == 2\n",
    "entry_point": "Solution().twoSum",
}
TWO_SUM = """
class Solution:
    def twoSum(self, nums: List[int], target: int) -> List[int]:
        seen = {}
        for i, x in enumerate(nums):
            if target - x in seen:
                return [seen[target - x], i]
            seen[x] = i
"""


def test_leetcode_format_pass_partial_and_hacks(verifier):
    partial = TWO_SUM.replace("return [seen[target - x], i]", "return [seen[target - x], i] if i < 2 else [0, 0]")
    exits = "import sys\nsys.exit(0)\n" + TWO_SUM
    hard_exit = TWO_SUM.replace("seen = {}", "import os\n        os._exit(0)")
    scores = verifier.score([answer(c) for c in (TWO_SUM, partial, exits, hard_exit)], [json.dumps(LEETCODE)] * 4)
    assert scores[0] == CodeScore(1.0, 4, 4, "pass")
    assert scores[1] == CodeScore(0.0, 3, 4, "wrong_answer")  # only the second case reaches i = 2 unsolved
    assert scores[2] == CodeScore(0.0, 0, 4, "runtime_error")  # SystemExit while loading is not a pass
    assert scores[3].reward == 0.0 and scores[3].passed == 0  # exit status 0 without results is not a pass


def test_leetcode_format_fresh_solution_per_test_and_per_test_timeout(verifier):
    once = "if getattr(self, 'used', False):\n            return [-1, -1]\n        self.used = True\n        seen = {}"
    stateful = TWO_SUM.replace("seen = {}", once)  # passes only if each test gets a fresh Solution()
    assert score1(verifier, stateful, LEETCODE).reward == 1.0
    slow = TWO_SUM.replace("seen = {}", "seen = {}\n        while target == 6:\n            pass")
    assert score1(verifier, slow, LEETCODE) == CodeScore(0.0, 2, 4, "timeout")


def test_check_with_dependent_statements_is_one_test(verifier):
    gt = {
        "import_prefix": "",
        "entry_point": "double",
        "test_code": "def check(candidate):\n    x = candidate(2)\n    assert x == 4\n    assert candidate(x) == 8\n",
    }
    assert score1(verifier, "def double(v):\n    return 2 * v", gt) == CodeScore(1.0, 1, 1, "pass")
    assert score1(verifier, "def double(v):\n    return v + 2", gt) == CodeScore(0.0, 0, 1, "wrong_answer")


def test_assert_case_format_uses_the_prelude(verifier):
    gt = {"assert_case": ["assert add([1, 2]) == 3", "assert add(deque([4])) == 4", "assert add([]) >= 0"]}
    assert score1(verifier, "def add(xs: List[int]) -> int:\n    return sum(xs)", gt) == CodeScore(1.0, 3, 3, "pass")
    assert score1(verifier, "def add(xs):\n    return 3", gt) == CodeScore(0.0, 2, 3, "wrong_answer")


# ------------------------------------------------------------------------------ whole responses


def test_no_code_syntax_error_and_bad_ground_truth(verifier):
    responses = ["I cannot solve this.", answer("def f(:\n    pass"), answer("print(1)"), answer("x = '\0'")]
    scores = verifier.score(responses, [STDIO, STDIO, '{"question_id": "lcb-1"}', STDIO])
    assert [s.reason for s in scores] == ["no_code", "syntax", "bad_ground_truth", "syntax"]
    assert all(s.reward == 0.0 for s in scores)


def test_a_mixed_batch_keeps_its_order(verifier):
    items = [(TWO_SUM, LEETCODE), ("print(0)", STDIO), ("def pair(a, b):\n    return [a, b]", TACO_CALL)] * 3
    scores = verifier.score([answer(c) for c, _ in items], [g for _, g in items])
    assert [s.reward for s in scores] == [1.0, 0.0, 1.0] * 3


def test_the_verifier_the_dispatcher_builds_owns_its_pool():
    with CodeVerifier(workers=1, timeout_s=2.0) as v:
        assert v.pool.max_workers == 1
        assert v.score([answer("print(int(input()) * 2)")], ['{"inputs": ["4"], "outputs": ["8"]}'])[0].reward == 1.0
    with pytest.raises(Exception, match="closed"):
        v.pool.run("print(1)")
    with pytest.raises(ValueError, match="ground truths"):
        CodeVerifier.score(v, ["a"], [])
