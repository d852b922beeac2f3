"""Rollout engines: vLLM (default, `vllm.py`) and transformers `generate` (`hf.py`) behind one interface.

Import the interface and factory from `or1_train.rollout.base`; the engine modules import torch and vLLM.
"""
