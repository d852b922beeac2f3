"""The training loop: the MAGIC recipe step by step, across context stages, with checkpoints and resume.

Each step: prompts from the mix sampler -> G samples per prompt from the rollout engine -> binary rewards ->
drop groups whose rewards are all equal (logging solve-none / solve-all / without-adv first) -> group z-score
advantages -> N_SGD PPO-clip mini-batch updates with the entropy bonus -> adaptive entropy controller ->
push the new weights into the rollout engine. Stages switch max response tokens, batch, group size and
temperature; evaluation and checkpoints run on their own schedules; SIGTERM means "checkpoint and stop".

Determinism: every sampling seed is a hash of (run seed, step, sample index) and the data cursor, controller
and optimizer are checkpointed, so a resumed run reproduces an uninterrupted one step for step.
"""

from __future__ import annotations

import json
import random
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from or1_train import checkpoint as ckpt
from or1_train import distributed
from or1_train.algo.advantages import group_advantages, group_stats, informative_group_mask
from or1_train.algo.entropy_control import EntropyController
from or1_train.behaviour import behaviour_metrics
from or1_train.bootstrap import ensure_inputs
from or1_train.data.mix import MixSampler
from or1_train.data.or1 import read_data_source, read_eval_set
from or1_train.data.schema import Example
from or1_train.engine.base import MiniBatch, response_mask
from or1_train.evaluate import EvalResult, evaluate_set
from or1_train.prompting import encode_prompt
from or1_train.rewards.dispatch import Rewarder
from or1_train.rollout.base import Sample, make_engine
from or1_train.rollout_log import record_groups
from or1_train.seeding import sample_seed, seed_everything
from or1_train.spec import RunSpec, Stage
from or1_train.telemetry import METRICS_FILE, JsonlSink, ProgressSink, Sink, Telemetry, read_jsonl

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CANCELLED = 143  # 128 + SIGTERM: the run stopped on request after checkpointing

#: seed-index stride between refill rounds so their samples never share seeds with the first round
_REFILL_STRIDE = 1_000_003


@dataclass
class Group:
    """One prompt with its G samples and their rewards."""

    example: Example
    prompt_ids: list[int]
    samples: list[Sample]
    rewards: list[float]


def _logprob_gap(rollout_lps: list[list[float]], actor_lp: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
    """How far the sampler's log-probs are from the actor's for the same tokens (0 up to float noise when the
    weight push and both forwards agree). A gap that grows means the rollouts come from another policy than the
    one trained (stale or mis-pushed weights, a dtype or kernel mismatch), which breaks the on-policy premise."""
    sampled = torch.zeros_like(actor_lp)
    for row, lps in enumerate(rollout_lps):
        sampled[row, : len(lps)] = torch.tensor(lps, dtype=actor_lp.dtype)
    gap = (sampled - actor_lp.detach()).abs() * mask
    return {
        "rollout/logprob_gap_mean": float(gap.sum() / mask.sum().clamp(min=1)),
        "rollout/logprob_gap_max": float(gap.max()) if gap.numel() else 0.0,
    }


class Trainer:
    """Runs one spec in one run directory. ``run()`` returns the process exit code."""

    def __init__(self, spec: RunSpec, run_dir: Path, *, resume: bool = False, sinks: Sequence[Sink] = ()):
        self.spec = spec
        self.run_dir = Path(run_dir)
        self.resume = resume
        self.run_dir.mkdir(parents=True, exist_ok=True)
        # Every rank runs the loop (a DeepSpeed job); rank 0 alone writes the run's telemetry, prints progress
        # and finishes checkpoints. Other ranks keep their own records under ranks/ and print nothing.
        self.is_main = distributed.is_main()
        rank_dir = self.run_dir / "ranks" / f"rank-{distributed.rank()}"
        self._telemetry_dir = self.run_dir if self.is_main else rank_dir
        extra = [ProgressSink(spec.total_steps), *sinks] if self.is_main else []
        self.telemetry = Telemetry(JsonlSink(self._telemetry_dir), extra)
        self._stop_requested = False
        self._reward_seconds = 0.0
        self._prompt_cache: dict[str, list[int]] = {}
        self.total_tokens = 0
        self.solved_uids: set[str] = set()

    # ------------------------------------------------------------------ setup

    def _log(self, message: str, step: int = 0, kind: str = "info") -> None:
        self.telemetry.event(kind, message, step=step)

    def _setup(self) -> int:
        """Build inputs and engines; returns the number of steps already done (0 or the checkpoint's)."""
        spec = self.spec
        seed_everything(spec.seed)
        ensure_inputs(spec, log=lambda m: self._log(m))
        start = None
        if self.resume:
            start = ckpt.newest_valid(self.run_dir, warn=lambda m: self._log(m, kind="warning"))
            if start is None:
                self._log("no valid checkpoint to resume from; starting from the spec's model", kind="warning")
        model_dir = start.model_dir if start else Path(spec.model.path)

        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        if spec.engine.kind == "deepspeed":  # joins the launcher's process group before vLLM starts
            if spec.engine.zero_stage == 3 and spec.rollout.engine == "hf":
                raise ValueError("rollout.engine 'hf' cannot load its model while ZeRO-3 partitions every load")
            from or1_train.engine.deepspeed import DeepSpeedActor as Actor
        else:
            if distributed.world_size() > 1:
                raise ValueError("engine.kind 'torch' runs in one process; use 'deepspeed' for several ranks")
            from or1_train.engine.torch import TorchActor as Actor
        self.actor = Actor(model_dir, dtype=spec.model.dtype, optim=spec.optim, loss=spec.loss, engine=spec.engine)
        max_len = max(s.max_prompt_tokens + s.max_response_tokens for s in spec.stages)
        eval_tokens = spec.evaluation.max_response_tokens or spec.stages[-1].max_response_tokens
        max_len = max(max_len, spec.stages[-1].max_prompt_tokens + eval_tokens)
        self.rollout = make_engine(
            spec.rollout.engine,
            model_dir,
            dtype=spec.model.dtype,
            max_model_len=max_len,
            seed=spec.seed,
            gpu_memory_utilization=spec.rollout.gpu_memory_utilization,
            tensor_parallel_size=spec.rollout.tensor_parallel_size,
            enforce_eager=spec.rollout.enforce_eager,
            enable_sleep_mode=spec.rollout.sleep_during_update,
        )
        self.rewarder = Rewarder(spec.reward)
        # each rank generates and scores its share of the prompts; every rank gets the whole batch back
        self._generate = distributed.sharded_generate(self.rollout.generate)
        self._score = distributed.sharded_score(self.rewarder.score)
        self.controller = EntropyController(
            enabled=spec.entropy.enabled,
            target=spec.entropy.target,
            delta=spec.entropy.delta,
            initial_coef=spec.entropy.initial_coef,
            min_coef=spec.entropy.min_coef,
            max_coef=spec.entropy.max_coef,
            variant=spec.entropy.variant,
        )
        sources = []
        for source in spec.data.sources:
            data, dropped = read_data_source(source)
            for reason, count in data.skipped.items():
                self._log(f"source {data.name}: skipped {count} malformed row(s): {reason}", kind="warning")
            for reason, count in dropped.items():
                self._log(f"source {data.name}: the difficulty filter dropped {count} problem(s): {reason}")
            sources.append((data, source.weight))
        self._sources = sources
        self.sampler = MixSampler(sources, seed=spec.seed)
        self.eval_sets = []
        for eval_set in spec.evaluation.sets:
            self.eval_sets.append((eval_set.name, read_eval_set(eval_set)))

        if start is None:
            self._truncate_metrics_after(0)  # a fresh start: steps from an earlier attempt are rewritten
            return 0
        state = start.trainer_state()
        self.actor.load_optimizer(start.path)
        self.controller.load_state_dict(state["controller"])
        self.sampler.load_state_dict(state["sampler"])
        self.solved_uids = set(state.get("solved_uids", []))
        self.total_tokens = state.get("total_tokens", 0)
        random.setstate(_python_rng(state["rng"]["python"]))
        torch.set_rng_state(torch.tensor(state["rng"]["torch"], dtype=torch.uint8))
        self._truncate_metrics_after(start.step)
        self._log(f"resumed from {start.path.name} (step {start.step})", step=start.step, kind="resume")
        return start.step

    def _truncate_metrics_after(self, step: int) -> None:
        """Drop metric records past the checkpoint: the resumed run writes those steps again."""
        path = self._telemetry_dir / METRICS_FILE
        kept = [r for r in read_jsonl(path) if r["step"] <= step]
        self.telemetry.primary._metrics.close()
        path.write_text("".join(json.dumps(r) + "\n" for r in kept))
        self.telemetry.primary._metrics = open(path, "a", encoding="utf-8")  # noqa: SIM115

    # ------------------------------------------------------------------ helpers

    def _encode(self, example: Example) -> list[int]:
        ids = self._prompt_cache.get(example.uid)
        if ids is None:
            ids = encode_prompt(self.tokenizer, example)
            self._prompt_cache[example.uid] = ids
        return ids

    def _enter_stage(self, index: int, step: int, first: bool) -> None:
        stage = self.spec.stages[index]
        limit = stage.max_prompt_tokens
        self.sampler.set_prompt_filter(lambda e: len(self._encode(e)) <= limit)
        carried: dict[str, Any] = {}
        if not first:
            t = self.spec.transition
            if not t.optimizer_state:
                self.actor.reset_optimizer()
            if not t.entropy_coef:
                self.controller.load_state_dict(
                    {**self.controller.state_dict(), "coef": self.spec.entropy.initial_coef}
                )
            if not t.data_cursor:
                self.sampler = MixSampler(self._sources, seed=self.spec.seed + index)
                self.sampler.set_prompt_filter(lambda e: len(self._encode(e)) <= limit)
            if t.drop_solved_prompts and self.solved_uids:
                self.sampler.exclude(self.solved_uids)
            carried = {
                "weights": True,
                "optimizer_state": t.optimizer_state,
                "entropy_coef": t.entropy_coef,
                "data_cursor": t.data_cursor,
                "dropped_solved_prompts": len(self.solved_uids) if t.drop_solved_prompts else 0,
            }
            self.solved_uids = set()
        self.telemetry.event(
            "stage_start",
            f"stage {index} ({stage.name or index}): max response {stage.max_response_tokens} tokens, "
            f"batch {stage.rollout_batch}, mini-batch {stage.mini_batch}, group {stage.group_size}, "
            f"T {stage.temperature}",
            step=step,
            stage=index,
            name=stage.name,
            max_response_tokens=stage.max_response_tokens,
            carried=carried,
        )

    def _sample_groups(self, examples: list[Example], stage: Stage, step: int, round_: int) -> list[Group]:
        prompts = [self._encode(e) for e in examples]
        g = stage.group_size
        seeds = [
            [sample_seed(self.spec.seed, step, round_ * _REFILL_STRIDE + i * g + j) for j in range(g)]
            for i in range(len(prompts))
        ]
        outputs = self._generate(
            prompts,
            n=g,
            max_tokens=stage.max_response_tokens,
            temperature=stage.temperature,
            top_p=stage.top_p,
            seeds=seeds,
        )
        texts = [s.text for group in outputs for s in group]
        owners = [e for e, group in zip(examples, outputs, strict=True) for _ in group]
        t0 = time.perf_counter()
        rewards = self._score(texts, owners)
        self._reward_seconds += time.perf_counter() - t0
        return [
            Group(e, p, list(samples), rewards[i * g : (i + 1) * g])
            for i, (e, p, samples) in enumerate(zip(examples, prompts, outputs, strict=True))
        ]

    # ------------------------------------------------------------------ one step

    def _train_step(self, step: int, stage_index: int) -> dict[str, float]:
        spec, stage = self.spec, self.spec.stages[stage_index]
        m: dict[str, float] = {}
        t0 = time.perf_counter()
        self._reward_seconds = 0.0
        groups = self._sample_groups(self.sampler.next_batch(stage.rollout_batch), stage, step, 0)
        timing_gen = time.perf_counter() - t0

        all_rewards = torch.tensor([r for grp in groups for r in grp.rewards])
        group_ids = torch.tensor([i for i, grp in enumerate(groups) for _ in grp.rewards])
        stats = group_stats(all_rewards, group_ids)
        lengths = [len(s.token_ids) for grp in groups for s in grp.samples]
        truncated = [s.finish_reason == "length" for grp in groups for s in grp.samples]
        m.update(
            {
                "critic/score/mean": float(all_rewards.mean()),
                "critic/score/max": float(all_rewards.max()),
                "critic/score/min": float(all_rewards.min()),
                "train/accuracy": float((all_rewards >= 1.0).float().mean()),
                "response_length/mean": sum(lengths) / len(lengths),
                "response_length/max": float(max(lengths)),
                "response_length/min": float(min(lengths)),
                "response_length/clip_ratio": sum(truncated) / len(truncated),
                "prompt_length/mean": sum(len(grp.prompt_ids) for grp in groups) / len(groups),
                "batch/solve_none_ratio": stats["solve_none_ratio"],
                "batch/solve_all_ratio": stats["solve_all_ratio"],
                "batch/without_adv_ratio": stats["without_adv_ratio"],
                "batch/solve_none": float(stats["solve_none"]),
                "batch/solve_all": float(stats["solve_all"]),
                "batch/groups": float(len(groups)),
            }
        )
        m.update(
            behaviour_metrics(
                [s.text for grp in groups for s in grp.samples],
                lengths,
                truncated,
                [grp.example.data_source for grp in groups for _ in grp.samples],
                all_rewards.tolist(),
            )
        )
        for grp in groups:
            if all(r >= 1.0 for r in grp.rewards):
                self.solved_uids.add(grp.example.uid)
        kept = self._filter(groups)
        refills = 0
        if spec.filter.enabled and spec.filter.refill:
            while len(kept) < stage.rollout_batch and refills < spec.filter.max_refill_rounds:
                refills += 1
                t1 = time.perf_counter()
                extra = self._sample_groups(
                    self.sampler.next_batch(stage.rollout_batch - len(kept)), stage, step, refills
                )
                timing_gen += time.perf_counter() - t1
                kept += self._filter(extra)
            kept = kept[: stage.rollout_batch]
        if spec.rollout.log_groups and self.is_main:  # every rank holds the same groups; rank 0 writes them
            record_groups(
                self.run_dir,
                step,
                groups,
                kept=kept,
                max_groups=spec.rollout.log_groups,
                seed=spec.seed,
                std_mode=spec.loss.advantage_std,
            )
        m["batch/refill_rounds"] = float(refills)
        m["batch/groups_kept"] = float(len(kept))
        generated = sum(lengths)
        self.total_tokens += generated + sum(len(grp.prompt_ids) * len(grp.samples) for grp in groups)
        m["timing_s/gen"] = timing_gen - self._reward_seconds
        m["timing_s/reward"] = self._reward_seconds
        if not kept:
            m["batch/skipped"] = 1.0
            m["perf/total_tokens"] = float(self.total_tokens)
            m["timing_s/step"] = time.perf_counter() - t0
            self.telemetry.event("step_skipped", "no group with an advantage left after filtering", step=step)
            return m  # the controller is not updated on a skipped step, as released
        m["batch/skipped"] = 0.0
        m.update(self._update(kept, stage, step))
        m["perf/total_tokens"] = float(self.total_tokens)
        m["timing_s/step"] = time.perf_counter() - t0
        m["perf/tokens_per_s"] = generated / max(m["timing_s/step"], 1e-9)
        return m

    def _filter(self, groups: list[Group]) -> list[Group]:
        if not self.spec.filter.enabled:
            return groups
        rewards = torch.tensor([r for grp in groups for r in grp.rewards])
        ids = torch.tensor([i for i, grp in enumerate(groups) for _ in grp.rewards])
        keep = informative_group_mask(rewards, ids)
        g = len(groups[0].rewards) if groups else 0
        return [grp for i, grp in enumerate(groups) if bool(keep[i * g])]

    def _update(self, groups: list[Group], stage: Stage, step: int) -> dict[str, float]:
        spec = self.spec
        prompts = [grp.prompt_ids for grp in groups for _ in grp.samples]
        responses = [list(s.token_ids) for grp in groups for s in grp.samples]
        rewards = torch.tensor([r for grp in groups for r in grp.rewards])
        ids = torch.tensor([i for i, grp in enumerate(groups) for _ in grp.samples])
        advantages = group_advantages(rewards, ids, std_mode=spec.loss.advantage_std)
        mask = response_mask(responses)
        self.actor.norm_constant = spec.loss.norm_constant or stage.max_response_tokens
        m: dict[str, float] = {}

        t0 = time.perf_counter()
        old_lp, old_ent = self.actor.logprobs(prompts, responses, temperature=stage.temperature, with_entropy=True)
        m["timing_s/old_log_prob"] = time.perf_counter() - t0
        m.update(_logprob_gap([s.logprobs for grp in groups for s in grp.samples], old_lp, mask))
        tokens = mask.sum().clamp(min=1)
        sampled_nll = float(-(old_lp * mask).sum() / tokens)
        full_entropy = float((old_ent * mask).sum() / tokens)
        signal_value = sampled_nll if spec.entropy.signal == "sampled-token-nll" else full_entropy
        coef_before = self.controller.coef
        alpha = self.controller.coefficient_for_step(signal_value)

        self.rollout.sleep()  # colocated on a GPU: hand vLLM's memory to the update (a no-op on CPUs)
        t0 = time.perf_counter()
        n_sgd = stage.n_sgd
        per = len(groups) // n_sgd if len(groups) >= n_sgd else len(groups)
        totals: dict[str, list[float]] = {}
        g = stage.group_size
        for k in range(n_sgd):
            lo, hi = k * per * g, ((k + 1) * per * g if k < n_sgd - 1 else len(responses))
            if lo >= hi:
                break
            batch = MiniBatch(prompts[lo:hi], responses[lo:hi], old_lp[lo:hi], advantages[lo:hi], mask[lo:hi])
            out = self.actor.train_mini_batch(batch, entropy_coef=alpha, temperature=stage.temperature)
            for name, value in out.items():
                totals.setdefault(name, []).append(value)
        m["timing_s/update_actor"] = time.perf_counter() - t0
        self.controller.update(signal_value)

        t0 = time.perf_counter()
        self.rollout.wake_up()
        self.rollout.update_weights(self.actor.named_weights())
        m["timing_s/weight_sync"] = time.perf_counter() - t0
        for name, values in totals.items():
            m[f"actor/{name}"] = sum(values) / len(values)
        m.update(
            {
                "actor/entropy_loss": sampled_nll,
                "actor/entropy": full_entropy,
                "actor/entropy_coeff": coef_before,
                "actor/entropy_coeff_realized": alpha,
                "actor/n_sgd": float(n_sgd),
                "critic/advantages/mean": float(advantages.mean()),
                "critic/advantages/max": float(advantages.max()),
                "critic/advantages/min": float(advantages.min()),
            }
        )
        return m

    # ------------------------------------------------------------------ eval / checkpoints

    def _evaluate(self, step: int) -> list[EvalResult]:
        if not self.eval_sets:
            return []
        ev = self.spec.evaluation
        t0 = time.perf_counter()
        results = [
            evaluate_set(
                name,
                examples,
                generate=self._generate,
                encode_prompt=self._encode,
                score=self._score,
                k=ev.k,
                n=ev.samples,
                temperature=ev.temperature,
                top_p=ev.top_p,
                max_tokens=ev.max_response_tokens or self.spec.stages[-1].max_response_tokens,
                seed=self.spec.seed,
                step=step,
            )
            for name, examples in self.eval_sets
        ]
        metrics = {k: v for r in results for k, v in r.metrics().items()}
        metrics["timing_s/eval"] = time.perf_counter() - t0
        self.telemetry.metrics(step, self.spec.stage_index_at(max(step - 1, 0)), metrics)
        for r in results:
            self.telemetry.event(
                "eval",
                r.summary(),
                step=step,
                benchmark=r.name,
                k=r.k,
                num_samples=r.num_samples,
                num_problems=r.num_problems,
                avg_at_k=r.avg_at_k,
                pass_at_k=r.pass_at_k,
                temperature=ev.temperature,
            )
        return results

    def _save(self, step: int, stage_index: int, metrics: dict[str, float], reason: str) -> None:
        # Every rank writes its DeepSpeed shards into rank 0's staging directory (one filesystem for the job);
        # rank 0 alone writes the rest and moves the checkpoint into place while the others wait.
        tmp = distributed.broadcast_object(ckpt.staging_dir(self.run_dir, step) if self.is_main else None)
        self.actor.save(tmp)
        if not self.is_main:
            distributed.barrier()
            return
        self.tokenizer.save_pretrained(str(tmp / ckpt.MODEL_DIR))
        state = {
            "step": step,
            "stage": stage_index,
            "controller": self.controller.state_dict(),
            "sampler": self.sampler.state_dict(),
            "solved_uids": sorted(self.solved_uids),
            "total_tokens": self.total_tokens,
            "rng": {"python": _jsonable(random.getstate()), "torch": torch.get_rng_state().tolist()},
        }
        (tmp / ckpt.TRAINER_STATE).write_text(json.dumps(state))
        stage = self.spec.stages[stage_index]
        ckpt.write_manifest(
            tmp,
            step=step,
            stage=stage_index,
            stage_name=stage.name or str(stage_index),
            metrics={k: v for k, v in metrics.items() if isinstance(v, float)},
        )
        info = ckpt.finalize(tmp, self.run_dir, step)
        pruned = ckpt.prune(self.run_dir, self.spec.checkpoints.keep_last)
        self.telemetry.event(
            "checkpoint",
            f"saved {info.path.name} ({reason})",
            step=step,
            path=str(info.path),
            model_dir=str(info.model_dir),
            stage=stage_index,
            size_bytes=info.manifest["size_bytes"],
            manifest=info.manifest,
            pruned=[p.name for p in pruned],
        )
        distributed.barrier()

    # ------------------------------------------------------------------ main loop

    def _on_sigterm(self, signum, frame) -> None:  # noqa: ARG002 - signal handler signature
        self._stop_requested = True

    def run(self) -> int:
        previous = signal.signal(signal.SIGTERM, self._on_sigterm)
        try:
            return self._run()
        finally:
            signal.signal(signal.SIGTERM, previous)
            for closer in ("rollout", "rewarder"):
                if hasattr(self, closer):
                    getattr(self, closer).close()
            self.telemetry.close()

    def _run(self) -> int:
        spec = self.spec
        done = self._setup()
        # a SIGTERM seen by any rank stops every rank at the same step boundary
        if distributed.any_rank(self._stop_requested):  # during setup: nothing to save yet
            self.telemetry.event("run_end", "stopped on SIGTERM during setup", step=done, status="cancelled")
            return EXIT_CANCELLED
        self.telemetry.event(
            "run_start",
            f"{spec.name}: {spec.total_steps} steps in {len(spec.stages)} stage(s)",
            step=done,
            total_steps=spec.total_steps,
            resumed=done > 0,
        )
        if done == 0 and spec.evaluation.at_start:
            self._evaluate(0)
        stage_index = spec.stage_index_at(done) if done < spec.total_steps else len(spec.stages) - 1
        self._enter_stage(stage_index, done, first=True)
        metrics: dict[str, float] = {}
        for step in range(done + 1, spec.total_steps + 1):
            if distributed.any_rank(self._stop_requested):
                self._save(step - 1, stage_index, metrics, "SIGTERM")
                self.telemetry.event(
                    "run_end", "stopped on SIGTERM after checkpointing", step=step - 1, status="cancelled"
                )
                return EXIT_CANCELLED
            index = spec.stage_index_at(step - 1)
            if index != stage_index:
                self.telemetry.event("stage_end", f"stage {stage_index} ended", step=step - 1, stage=stage_index)
                stage_index = index
                self._enter_stage(stage_index, step - 1, first=False)
            metrics = self._train_step(step, stage_index)
            self.telemetry.metrics(step, stage_index, metrics)
            stage_end = step == spec.stage_start(stage_index) + spec.stages[stage_index].steps
            every = spec.checkpoints.every_steps
            if (every and step % every == 0) or stage_end:
                self._save(step, stage_index, metrics, "stage end" if stage_end else "schedule")
            ev_every = spec.evaluation.every_steps
            if ev_every and step % ev_every == 0 and step != spec.total_steps:
                self._evaluate(step)
        self._evaluate(spec.total_steps)
        self.telemetry.event("stage_end", f"stage {stage_index} ended", step=spec.total_steps, stage=stage_index)
        self.telemetry.event("run_end", "finished", step=spec.total_steps, status="succeeded")
        return EXIT_OK


def _jsonable(state: Any) -> Any:
    """random.getstate() is nested tuples; JSON needs lists."""
    return [_jsonable(s) for s in state] if isinstance(state, tuple | list) else state


def _python_rng(state: Any) -> tuple:
    version, internal, gauss = state
    return (version, tuple(internal), gauss)
