"""Binary code reward: the response's last Python block must pass every test of its problem (dossier §5.2).

Only the text after the last `</think>` counts. Its last fenced block tagged `python`, `py` or untagged is
the solution; it must parse (`ast.parse`) or the reward is 0 ("syntax"). The ground truth is OR1's JSON
(a string or a dict) in one of its formats, told apart by their keys:

- `import_prefix` + `test_code` + `entry_point` (LeetCode): `test_code` defines `check(candidate)`, a list
  of asserts on `candidate = eval(entry_point)` (e.g. `Solution().twoSum`, fresh for each test). Each assert
  is one test; `assert_case` (a list of assert strings) is the same with a fixed import prelude.
- `inputs` / `outputs` with `fn_name` (call style): call `Solution().fn_name` or the bare function `fn_name`
  (OR1 wraps bare functions into `class Solution`; calling them directly is the same) with each test's
  JSON-decoded arguments and compare the return value, a tuple read as a list (LiveCodeBench's rule).
- `inputs` / `outputs` without `fn_name` (stdin/stdout, TACO): run the program once per test with the input
  on stdin; its stdout must match line by line after stripping, or token by token as decimals
  (LiveCodeBench's `grade_stdio` rule), and it must exit with status 0.

Reward 1 only if ALL tests pass; `passed` and `total` say how far it got. The tests of one call-style or
assert problem run in ONE sandboxed process (`HARNESS`), each under its own timer, and the harness prints
one result line per test as it goes, so a crash in test k still counts tests 0..k-1. With `fail_fast` (the
default) the remaining tests of a problem are skipped once one has failed: the reward is already 0, and a
wrong program that times out on every test would otherwise cost minutes.

Against reward hacking, expected values never enter the sandbox when they can stay out: stdout and return
values are compared here, in the trainer, and an assert of the form `assert EXPR == LITERAL` is split so that
only EXPR runs in the sandbox and must return plain data (exact built-in types, so an object whose `__eq__`
always says yes fails). Other asserts run inside, next to the solution, which could forge their outcome:
docs/sandbox.md lists this caveat.
"""

from __future__ import annotations

import ast
import concurrent.futures as cf
import json
import logging
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from or1_train.rewards.sandbox import SandboxError, SandboxLimits, SandboxPool, SandboxResult

log = logging.getLogger(__name__)

THINK_END = "</think>"
_FENCE = re.compile(r"```([^\n`]*)\n(.*?)```", re.DOTALL)
_PYTHON_TAGS = {"", "python", "python3", "py", "py3"}
# Interpreter start-up is not the solution's time: each sandboxed run gets this much on top of its limit.
STARTUP_S = 1.0
# OR1's cap on one problem's whole test run (LiveCodeBench `run_test`: min((t + 1) * n + 5, 300) seconds).
PROBLEM_CAP_S = 300.0

# Names that LeetCode-style solutions use without importing them (typing's List, collections' deque, ...):
# the judge pre-imports them, and OR1/LiveCodeBench prepend a prelude like this one to call-style programs.
PRELUDE = """\
from typing import *
from collections import *
from itertools import *
from functools import *
from heapq import *
from bisect import *
from math import *
from string import ascii_lowercase, ascii_uppercase, ascii_letters, digits
import bisect, collections, functools, heapq, itertools, math, operator, random, re, string, sys
inf = float("inf")
sys.setrecursionlimit(50000)
"""

# Runs in the sandbox. Reads one job (JSON) on stdin; writes one JSON line per test on a private copy of
# stdout, flushed at once; the solution itself sees /dev/null as stdin and stdout. `_Timeout` derives from
# BaseException and the timer repeats, so a solution that catches Exception (or everything, once) still stops.
HARNESS = r"""
import json as _json, os as _os, signal as _signal, sys as _sys
_job = _json.loads(_sys.stdin.read())
_res = _os.fdopen(_os.dup(1), "w", encoding="utf-8", errors="backslashreplace")
_null = _os.open(_os.devnull, _os.O_RDWR)
_os.dup2(_null, 0)
_os.dup2(_null, 1)
_repr, _type, _all, _len, _str = repr, type, all, len, str
_SCALARS = (int, float, complex, str, bytes, bool, type(None))
_SEQS = (list, tuple, set, frozenset)
class _Timeout(BaseException):
    pass
def _alarm(signum, frame):
    raise _Timeout()
_signal.signal(_signal.SIGALRM, _alarm)
def _emit(i, status, value=None):
    _res.write(_json.dumps({"i": i, "s": status, "v": value}) + "\n")
    _res.flush()
def _plain(v, depth=0):
    t = _type(v)
    if t in _SCALARS:
        return True
    if depth > 64:
        return False
    if t in _SEQS:
        return _all(_plain(x, depth + 1) for x in v)
    if t is dict:
        return _all(_plain(k, depth + 1) and _plain(x, depth + 1) for k, x in v.items())
    return False
def _timed(fn, *args):
    _signal.setitimer(_signal.ITIMER_REAL, _job["timeout"], 0.05)
    try:
        return fn(*args)
    finally:
        _signal.setitimer(_signal.ITIMER_REAL, 0)
def _run_all():
    g = {"__name__": "solution", "__builtins__": __builtins__}
    try:
        _timed(exec, compile(_job["solution"], "solution.py", "exec"), g)
        if _job.get("setup"):
            _timed(exec, compile(_job["setup"], "tests.py", "exec"), g)
        if _job["kind"] == "call":
            sol = g.get("Solution")
            name = _job["fn_name"]
            if isinstance(sol, type) and hasattr(sol, name):
                target = getattr(_timed(sol), name)
            elif callable(g.get(name)):
                target = g[name]
            else:
                raise NameError(f"no function or Solution method named {name!r}")
    except _Timeout:
        return _emit(-1, "timeout")
    except BaseException as e:
        return _emit(-1, "error", _repr(e)[:500])
    for i, test in enumerate(_job["tests"]):
        try:
            if _job["kind"] == "call":
                value = _timed(target, *test)
            else:
                exec(compile(test["src"], f"test_{i}.py", "exec"), g)
                fn = g.pop("_or1_test")
                value = _timed(lambda: fn(eval(_job["entry"], g) if _job["entry"] else None))
        except _Timeout:
            _emit(i, "timeout")
        except AssertionError:
            _emit(i, "fail")
        except BaseException as e:
            _emit(i, "error", _repr(e)[:500])
        else:
            if _job["kind"] == "assert" and not test["value"]:
                _emit(i, "pass")
            elif _plain(value):
                _emit(i, "value", _repr(value))
            else:
                _emit(i, "badvalue", _str(_type(value).__name__))
            continue
        if _job["fail_fast"]:
            return
_run_all()
"""


@dataclass(frozen=True)
class CodeScore:
    reward: float
    passed: int
    total: int
    # pass | no_code | syntax | bad_ground_truth | wrong_answer | runtime_error | timeout | output_limit
    # | sandbox_error
    reason: str

    @property
    def timed_out(self) -> bool:
        return self.reason == "timeout"


def extract_code(response: str) -> str | None:
    """The last ```python / ```py / bare ``` block after the last `</think>`, or None when there is none."""
    _, sep, tail = response.rpartition(THINK_END)
    text = tail if sep else response
    blocks = [m.group(2) for m in _FENCE.finditer(text) if (m.group(1).split() or [""])[0].lower() in _PYTHON_TAGS]
    return blocks[-1] if blocks else None


# ------------------------------------------------------------------------------------ test suites


@dataclass
class _Suite:
    """One problem's tests. `expected[i]` is None when test i is decided inside the sandbox (an assert)."""

    kind: str  # stdio | call | assert
    tests: list
    expected: list
    fn_name: str = ""
    entry: str = ""
    prefix: str = ""
    setup: str = ""
    taco_outputs: bool = False  # call-style outputs stored as TACO does: each wrapped in a one-item list


class BadGroundTruth(ValueError):
    pass


def parse_tests(ground_truth: str | dict) -> _Suite:
    """Read OR1's ground truth (JSON string or dict) into a suite; BadGroundTruth when it is unusable."""
    gt = ground_truth
    if isinstance(gt, str):
        try:
            gt = json.loads(gt)
        except json.JSONDecodeError as e:
            raise BadGroundTruth(f"not JSON: {e}") from None
    if isinstance(gt, dict) and isinstance(gt.get("input_output"), str):  # LiveCodeBench's sample layout
        gt = json.loads(gt["input_output"])
    if not isinstance(gt, dict):
        raise BadGroundTruth(f"expected a JSON object, got {type(gt).__name__}")
    if "import_prefix" in gt:
        return _assert_suite(gt.get("test_code"), gt["import_prefix"] or "", gt.get("entry_point"))
    if "assert_case" in gt:
        cases = gt["assert_case"]
        if not isinstance(cases, list) or not all(isinstance(c, str) for c in cases):
            raise BadGroundTruth("assert_case must be a list of strings")
        return _assert_cases(cases)
    if "inputs" in gt and "outputs" in gt:
        inputs, outputs = gt["inputs"], gt["outputs"]
        if not isinstance(inputs, list) or not isinstance(outputs, list) or len(inputs) != len(outputs):
            raise BadGroundTruth("inputs and outputs must be lists of one length")
        if not inputs:
            raise BadGroundTruth("no tests")
        if gt.get("fn_name"):
            return _call_suite(inputs, outputs, str(gt["fn_name"]))
        return _Suite("stdio", [_text(x) for x in inputs], [_text(x) for x in outputs])
    raise BadGroundTruth(f"unsupported ground truth keys: {sorted(gt)[:6]}")


def _text(x) -> str:
    return "\n".join(map(str, x)) if isinstance(x, list) else str(x)


def _call_suite(inputs: list, outputs: list, fn_name: str) -> _Suite:
    """LiveCodeBench stores each test's arguments as JSON lines in a string; TACO stores them as a list."""
    try:
        args = [[json.loads(line) for line in x.split("\n")] if isinstance(x, str) else x for x in inputs]
        expected = [json.loads(y) if isinstance(y, str) else y for y in outputs]
    except json.JSONDecodeError as e:
        raise BadGroundTruth(f"call-style test is not JSON: {e}") from None
    if not all(isinstance(a, list) for a in args):
        raise BadGroundTruth("call-style inputs must be argument lists")
    taco = not any(isinstance(y, str) for y in outputs)
    return _Suite("call", args, expected, fn_name=fn_name, prefix=PRELUDE, taco_outputs=taco)


def _assert_suite(test_code, prefix: str, entry) -> _Suite:
    if not isinstance(test_code, str) or not isinstance(entry, str) or not entry.strip():
        raise BadGroundTruth("import_prefix format needs test_code and entry_point strings")
    try:
        tree = ast.parse(test_code)
    except SyntaxError as e:
        raise BadGroundTruth(f"test_code does not parse: {e}") from None
    checks = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "check"]
    if not checks:
        raise BadGroundTruth("test_code defines no check(candidate)")
    check = checks[-1]
    helpers = [n for n in tree.body if n is not check and not _calls_check(n)]
    param = check.args.args[0].arg if check.args.args else "candidate"
    body = [s for s in check.body if not _is_docstring(s) and not isinstance(s, ast.Pass)]
    if not body:
        raise BadGroundTruth("check(candidate) holds no test")
    if all(isinstance(s, ast.Assert) for s in body):
        statements = body
    else:  # statements depend on each other (locals, loops): the whole check is a single test
        statements = [ast.Expr(ast.Call(ast.Name("check", ast.Load()), [ast.Name(param, ast.Load())], []))]
        helpers.append(check)
    tests, expected = zip(*(_split_assert(s, param) for s in statements))
    return _Suite(
        "assert",
        list(tests),
        list(expected),
        entry=entry.strip(),
        prefix=prefix,
        setup=ast.unparse(helpers) if helpers else "",
    )


def _assert_cases(cases: list[str]) -> _Suite:
    tests, expected = [], []
    for case in cases:
        try:
            stmts = ast.parse(case).body
        except SyntaxError as e:
            raise BadGroundTruth(f"assert_case does not parse: {e}") from None
        test, exp = _split_assert(stmts[0], "_") if len(stmts) == 1 else _split_many(stmts)
        tests.append(test)
        expected.append(exp)
    if not tests:
        raise BadGroundTruth("no tests")
    return _Suite("assert", tests, expected, prefix=PRELUDE)


def _split_assert(stmt: ast.stmt, param: str) -> tuple[dict, object]:
    """`assert EXPR == LITERAL` -> run EXPR in the sandbox, compare here; anything else runs as written."""
    if (
        isinstance(stmt, ast.Assert)
        and isinstance(stmt.test, ast.Compare)
        and len(stmt.test.ops) == 1
        and isinstance(stmt.test.ops[0], ast.Eq)
    ):
        try:
            literal = ast.literal_eval(stmt.test.comparators[0])
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            pass
        else:
            src = f"def _or1_test({param}):\n    return {ast.unparse(stmt.test.left)}\n"
            return {"src": src, "value": True}, _Expected(literal)
    return {"src": f"def _or1_test({param}):\n" + _indent(ast.unparse(stmt)), "value": False}, None


def _split_many(stmts: list[ast.stmt]) -> tuple[dict, None]:
    return {"src": "def _or1_test(_):\n" + _indent(ast.unparse(stmts)), "value": False}, None


@dataclass(frozen=True)
class _Expected:
    """A literal an assert compares with (boxed, so that an expected None differs from 'decided inside')."""

    value: object


def _indent(src: str) -> str:
    return "".join("    " + line + "\n" for line in src.splitlines())


def _is_docstring(s: ast.stmt) -> bool:
    return isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant) and isinstance(s.value.value, str)


def _calls_check(s: ast.stmt) -> bool:
    return (
        isinstance(s, ast.Expr)
        and isinstance(s.value, ast.Call)
        and isinstance(s.value.func, ast.Name)
        and s.value.func.id == "check"
    )


# ------------------------------------------------------------------------------------- comparison


def stdout_matches(got: str, expected: str) -> bool:
    """LiveCodeBench's rule: same number of stripped lines; each equal as text or as a row of decimals."""
    got_lines = [line.strip() for line in got.strip().split("\n")]
    exp_lines = [line.strip() for line in expected.strip().split("\n")]
    if len(got_lines) != len(exp_lines):
        return False
    for g, e in zip(got_lines, exp_lines):
        if g == e:
            continue
        try:
            if [Decimal(t) for t in g.split()] != [Decimal(t) for t in e.split()]:
                return False
        except (InvalidOperation, ValueError):
            return False
    return True


def _value_matches(shown: str, expected, taco: bool) -> bool:
    try:
        got = ast.literal_eval(shown)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
    if isinstance(got, tuple):
        got = list(got)
    if got == expected:
        return True
    return taco and isinstance(expected, list) and len(expected) == 1 and got == expected[0]


# --------------------------------------------------------------------------------------- verifier


@dataclass
class _Problem:
    """The bookkeeping of one response while its runs are in flight."""

    suite: _Suite
    code: str
    outcome: list = field(default_factory=list)  # per test: "pass" or a failure reason, None = not run
    failed: threading.Event = field(default_factory=threading.Event)
    error: str | None = None


class CodeVerifier:
    """Scores code responses with sandboxed runs; `workers` programs run at once.

    timeout_s is per test (OR1: 6 s); memory_mb is each run's address-space limit. Pass an existing
    `pool` to share one sandbox between verifiers (it is then not closed by `close()`).
    """

    def __init__(
        self,
        workers: int = 2,
        timeout_s: float = 6.0,
        memory_mb: int = 2048,
        *,
        fail_fast: bool = True,
        pool: SandboxPool | None = None,
    ):
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        self.timeout_s = float(timeout_s)
        self.memory_mb = int(memory_mb)
        self.fail_fast = fail_fast
        self._own_pool = pool is None
        self.pool = pool or SandboxPool(workers)
        # One thread per slot: a test starts only when a slot is about to be free, so `fail_fast` can still
        # skip it after an earlier test of its problem failed.
        self._threads = cf.ThreadPoolExecutor(self.pool.max_workers, thread_name_prefix="code-reward")

    def score(self, responses: Sequence[str], ground_truths: Sequence[str | dict]) -> list[CodeScore]:
        if len(responses) != len(ground_truths):
            raise ValueError(f"{len(responses)} responses but {len(ground_truths)} ground truths")
        scores: list[CodeScore | None] = [None] * len(responses)
        problems: dict[int, _Problem] = {}
        for i, (response, gt) in enumerate(zip(responses, ground_truths)):
            code = extract_code(response)
            if code is None:
                scores[i] = CodeScore(0.0, 0, 0, "no_code")
                continue
            try:
                ast.parse(code)
            except (SyntaxError, ValueError):
                scores[i] = CodeScore(0.0, 0, 0, "syntax")
                continue
            try:
                suite = parse_tests(gt)
            except BadGroundTruth as e:
                log.warning("code ground truth %d is unusable: %s", i, e)
                scores[i] = CodeScore(0.0, 0, 0, "bad_ground_truth")
                continue
            problems[i] = _Problem(suite, code, [None] * len(suite.tests))
        futures = [f for p in problems.values() for f in self._submit(p)]
        for f in futures:
            f.result()
        for i, p in problems.items():
            scores[i] = _score(p)
        return scores  # type: ignore[return-value]

    def _submit(self, p: _Problem) -> list[cf.Future]:
        if p.suite.kind == "stdio":
            return [self._threads.submit(self._run_stdio, p, k) for k in range(len(p.suite.tests))]
        return [self._threads.submit(self._run_batch, p)]

    def _limits(self, wall_s: float) -> SandboxLimits:
        return SandboxLimits(wall_s=wall_s, cpu_s=wall_s, memory_mb=self.memory_mb)

    def _run_stdio(self, p: _Problem, k: int) -> None:
        if self.fail_fast and p.failed.is_set():
            return
        res = self._sandbox(p, p.code, p.suite.tests[k], self.timeout_s + STARTUP_S)
        if res is None:
            return
        if res.returncode != 0 or res.killed_reason is not None:
            outcome = _failure_of(res)
        else:
            outcome = "pass" if stdout_matches(res.stdout, p.suite.expected[k]) else "wrong_answer"
        self._record(p, k, outcome)

    def _run_batch(self, p: _Problem) -> None:
        s = p.suite
        n = len(s.tests)
        job = {
            "kind": s.kind,
            "solution": s.prefix + ("\n" if s.prefix and not s.prefix.endswith("\n") else "") + p.code,
            "setup": s.setup,
            "fn_name": s.fn_name,
            "entry": s.entry,
            "tests": s.tests,
            "timeout": self.timeout_s,
            "fail_fast": self.fail_fast,
        }
        wall = min((self.timeout_s + 1) * n + 5, PROBLEM_CAP_S) + STARTUP_S
        res = self._sandbox(p, HARNESS, json.dumps(job), wall)
        if res is None:
            return
        setup_failure = None
        for line in res.stdout.splitlines():
            try:
                row = json.loads(line)
                i, status, value = int(row["i"]), row["s"], row["v"]
            except (ValueError, KeyError, TypeError):
                continue  # the solution wrote into the result stream: its own loss
            if i == -1:
                setup_failure = "timeout" if status == "timeout" else "runtime_error"
            elif 0 <= i < n and p.outcome[i] is None:
                self._record(p, i, _batch_outcome(s, i, status, value))
        # Tests never reported on: all of them failed if the solution itself did not load; the rest died with
        # the process if it ended abnormally; else the harness stopped early (fail_fast) and they are skipped.
        ended_badly = res.returncode != 0 or res.killed_reason is not None
        fill = setup_failure or (_failure_of(res) if ended_badly else None)
        if fill is not None:
            for i in range(n):
                if p.outcome[i] is None:
                    self._record(p, i, fill)

    def _sandbox(self, p: _Problem, code: str, stdin: str, wall_s: float) -> SandboxResult | None:
        try:
            return self.pool.run(code, stdin=stdin, limits=self._limits(wall_s))
        except SandboxError as e:
            log.error("code sandbox failed: %s", e)
            p.error = str(e)
            p.failed.set()
            return None

    @staticmethod
    def _record(p: _Problem, k: int, outcome: str) -> None:
        p.outcome[k] = outcome
        if outcome != "pass":
            p.failed.set()

    def close(self) -> None:
        self._threads.shutdown(wait=True)
        if self._own_pool:
            self.pool.close()

    def __enter__(self) -> CodeVerifier:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _batch_outcome(s: _Suite, i: int, status: str, value) -> str:
    """One harness line -> an outcome. A test with an expected value passes only on a matching value: a
    "pass" line for it (which a solution could forge) is a failure."""
    if status == "timeout":
        return "timeout"
    if status == "error":
        return "runtime_error"
    if s.kind == "assert" and s.expected[i] is None:
        return "pass" if status == "pass" else "wrong_answer"
    if status != "value" or not isinstance(value, str):
        return "wrong_answer"
    if s.kind == "assert":
        return "pass" if _value_matches(value, s.expected[i].value, taco=False) else "wrong_answer"
    return "pass" if _value_matches(value, s.expected[i], taco=s.taco_outputs) else "wrong_answer"


def _failure_of(res: SandboxResult) -> str:
    if res.killed_reason in ("timeout", "cpu_limit"):
        return "timeout"
    if res.killed_reason == "output_limit":
        return "output_limit"
    return "runtime_error"


def _score(p: _Problem) -> CodeScore:
    total = len(p.outcome)
    passed = sum(o == "pass" for o in p.outcome)
    if p.error is not None:
        return CodeScore(0.0, passed, total, "sandbox_error")
    if passed == total:
        return CodeScore(1.0, passed, total, "pass")
    reason = next((o for o in p.outcome if o not in (None, "pass")), "runtime_error")
    return CodeScore(0.0, passed, total, reason)
