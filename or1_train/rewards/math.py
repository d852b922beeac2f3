"""Binary math reward: Math-Verify on the text after the last `</think>`, as Skywork-OR1 scores it.

Rule (dossier §5, §5.1): only the text after the last `</think>` counts (all of it when there is none). A
boxed answer equal to the gold string scores 1 without parsing. Otherwise `parse(text)`; fewer than two
parsed items (no answer found) scores 0; the parsed answer's string form equal to the gold scores 1; else
`verify(parse("\\boxed{" + gold + "}"), parsed)`, the gold wrapped in `\\boxed{}` as the paper insists.
Like OR1, Math-Verify also reads an unboxed final answer ("the answer is 42").

Why worker processes: Math-Verify's own timeouts use `signal.alarm`, which works only in a main thread,
cancels any outer alarm (pytest-timeout's, the trainer's) and takes whole seconds. Each item therefore runs in
the main thread of a spawned worker under one `setitimer` deadline for parse plus verify, with Math-Verify's
alarms off. sympy can still stall in C code that no signal interrupts, so the parent also holds a deadline
per chunk of items and kills the pool when it passes. At most `workers` chunks are in flight, so the parent
knows which chunk a stuck worker holds; its items are retried one by one, and only the one at fault scores 0.
A timeout or a crashed worker is reward 0 with `timed_out=True`; a broken pool is replaced, never raised.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import multiprocessing
import os
import signal
import time
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

THINK_END = "</think>"
_BOXED = "\\boxed"
_START_TIMEOUT_S = 120.0  # spawning a worker and importing sympy; generous for a loaded machine


@dataclass(frozen=True)
class MathScore:
    reward: float
    timed_out: bool
    # exact_match | string_match | verified | wrong | no_answer | timeout | worker_crash | error:<Type>
    reason: str


def extract_answer_text(response: str) -> str:
    """The part of a response that is scored: what follows the last `</think>`, or all of it."""
    _, sep, tail = response.rpartition(THINK_END)
    return tail if sep else response


def last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}` (braces balanced), or None when there is none or it is unclosed."""
    start = text.rfind(_BOXED + "{")
    if start < 0:
        return None
    i = start + len(_BOXED) + 1
    depth = 1
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i:j]
    return None


class _ItemTimeout(BaseException):
    """Raised by the worker's alarm. A BaseException so that no `except Exception` in sympy swallows it."""


def _on_alarm(signum, frame):
    raise _ItemTimeout()


def _init_worker(ready) -> None:
    import logging

    import math_verify  # noqa: F401  (import once per worker, not per item)

    # Math-Verify warns once that its own timeouts are off; they are off on purpose (see module docstring).
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    signal.signal(signal.SIGALRM, _on_alarm)
    ready.wait(timeout=_START_TIMEOUT_S)


def _pid() -> int:
    return os.getpid()


def _verify_one(text: str, gold: str, timeout_s: float) -> tuple[float, bool, str]:
    """Score one item in a worker's main thread under a single deadline for parse and verify."""
    from math_verify import parse, verify

    signal.setitimer(signal.ITIMER_REAL, timeout_s)
    try:
        parsed = parse(text, parsing_timeout=None)
        if len(parsed) < 2:
            return 0.0, False, "no_answer"
        if str(parsed[1]).strip() == gold.strip():
            return 1.0, False, "string_match"
        ok = verify(parse(f"\\boxed{{{gold}}}", parsing_timeout=None), parsed, timeout_seconds=None)
        return (1.0, False, "verified") if ok else (0.0, False, "wrong")
    except _ItemTimeout:
        return 0.0, True, "timeout"
    except Exception as exc:  # a parser bug on one odd answer must not cost the batch
        return 0.0, False, f"error:{type(exc).__name__}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def _verify_chunk(pairs: list[tuple[str, str]], timeout_s: float) -> list[tuple[float, bool, str]]:
    out = []
    for text, gold in pairs:
        try:
            out.append(_verify_one(text, gold, timeout_s))
        except _ItemTimeout:  # the alarm fired between the item's end and its cancellation
            out.append((0.0, True, "timeout"))
    return out


_Item = collections.namedtuple("_Item", "index text gold")


@dataclass(frozen=True)
class _Task:
    items: tuple[_Item, ...]
    isolated: bool  # a lone item sent again after its chunk stalled or crashed: its failure is its own


class MathVerifier:
    """Scores responses against gold answers in a pool of `workers` spawned processes.

    Items go to the workers in chunks of `chunk_size` (one round trip per chunk, not per item). When a chunk
    overruns its deadline (`chunk_size * timeout_s + grace_s`) or its worker dies, its items are sent again
    one by one, so only the item at fault scores 0.
    """

    def __init__(self, workers: int = 2, timeout_s: float = 5.0, *, chunk_size: int = 16, grace_s: float = 2.0) -> None:
        if workers < 1 or chunk_size < 1 or timeout_s <= 0:
            raise ValueError("workers and chunk_size must be >= 1 and timeout_s > 0")
        self.workers = workers
        self.timeout_s = timeout_s
        self.chunk_size = chunk_size
        self.grace_s = grace_s
        self.timeouts = 0  # items that timed out or lost their worker, over this verifier's life
        self.pool_restarts = 0
        self._pool: cf.ProcessPoolExecutor | None = None

    def score(self, responses: list[str], golds: list[str]) -> list[MathScore]:
        if len(responses) != len(golds):
            raise ValueError(f"{len(responses)} responses but {len(golds)} gold answers")
        results: list[MathScore | None] = [None] * len(responses)
        todo = []
        for i, (response, gold) in enumerate(zip(responses, golds)):
            text = extract_answer_text(response)
            boxed = last_boxed(text)
            if boxed is not None and boxed.strip() == gold.strip():
                results[i] = MathScore(1.0, False, "exact_match")
            else:
                todo.append(_Item(i, text, gold))
        size = self.chunk_size
        tasks = collections.deque(_Task(tuple(todo[k : k + size]), size == 1) for k in range(0, len(todo), size))
        self._run(tasks, results)
        return results  # type: ignore[return-value]

    def _run(self, tasks: collections.deque, results: list) -> None:
        """Keep at most `workers` chunks in flight, so an overdue chunk is one a worker is stuck on."""

        def settle(task: _Task, reason: str) -> None:
            if task.isolated:
                results[task.items[0].index] = self._count(MathScore(0.0, True, reason))
            else:
                tasks.extendleft(_Task((item,), True) for item in task.items)

        inflight: dict[cf.Future, tuple[_Task, float]] = {}
        while tasks or inflight:
            while tasks and len(inflight) < self.workers:
                task = tasks.popleft()
                pairs = [(item.text, item.gold) for item in task.items]
                try:
                    future = self._get_pool().submit(_verify_chunk, pairs, self.timeout_s)
                except BrokenProcessPool:  # a worker died while idle; the next pool takes the task
                    self._restart_pool()
                    tasks.appendleft(task)
                    continue
                deadline = time.monotonic() + len(pairs) * self.timeout_s + self.grace_s
                inflight[future] = (task, deadline)
            first_deadline = min(deadline for _, deadline in inflight.values())
            done, _ = cf.wait(
                inflight, timeout=max(0.0, first_deadline - time.monotonic()), return_when=cf.FIRST_COMPLETED
            )
            broken = False
            for future in done:
                task, _ = inflight.pop(future)
                try:
                    for item, score in zip(task.items, future.result()):
                        results[item.index] = self._count(MathScore(*score))
                except BrokenProcessPool:
                    broken = True
                    settle(task, "worker_crash")
                except Exception as exc:  # e.g. a result that cannot be unpickled: the chunk scores 0
                    for item in task.items:
                        results[item.index] = MathScore(0.0, False, f"error:{type(exc).__name__}")
            if broken:
                # The dead pool takes every chunk on it along; which one killed it is unknown.
                for task, _ in inflight.values():
                    settle(task, "worker_crash")
                inflight.clear()
                self._restart_pool()
                continue
            now = time.monotonic()
            overdue = [future for future, (_, deadline) in inflight.items() if deadline <= now]
            if overdue:
                for future in overdue:
                    settle(inflight.pop(future)[0], "timeout")
                # The others were not overdue: they go again as they were.
                tasks.extendleft(task for task, _ in inflight.values())
                inflight.clear()
                self._kill_pool()

    def _count(self, score: MathScore) -> MathScore:
        self.timeouts += score.timed_out
        return score

    def _get_pool(self) -> cf.ProcessPoolExecutor:
        """The pool, started and warm: every worker has imported Math-Verify before a deadline runs.

        Without the warm-up a fresh pool's start (a second or more under load) would count against the
        first chunks' deadlines, and the retry of an innocent item after a restart could time out.
        """
        if self._pool is None:
            # spawn, not fork: the trainer process holds torch/vLLM threads that a forked child would inherit
            # in whatever state they were in.
            context = multiprocessing.get_context("spawn")
            ready = context.Barrier(self.workers)  # each worker's initializer waits for all the others
            pool = cf.ProcessPoolExecutor(self.workers, mp_context=context, initializer=_init_worker, initargs=(ready,))
            # One task per worker makes the executor start all of them; none can finish before all are ready.
            warm, _ = cf.wait([pool.submit(_pid) for _ in range(self.workers)], timeout=_START_TIMEOUT_S)
            if len(warm) < self.workers or any(f.exception() for f in warm):
                pool.shutdown(wait=False, cancel_futures=True)
                # Not a verdict on any answer: the machine cannot run the verifier at all.
                raise RuntimeError(f"Math-Verify workers did not start within {_START_TIMEOUT_S:.0f} s")
            self._pool = pool
        return self._pool

    def _restart_pool(self) -> None:
        self.pool_restarts += 1
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def _kill_pool(self) -> None:
        """Kill the workers (one is stuck where no signal reaches it), then start afresh on next use."""
        pool = self._pool
        if pool is not None:
            # Python 3.14 has ProcessPoolExecutor.kill_workers(); before that the processes are only reachable
            # through the executor's `_processes` map.
            for process in list((pool._processes or {}).values()):
                process.kill()
        self._restart_pool()

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> MathVerifier:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
