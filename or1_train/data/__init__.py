"""Training data: the row schema, readers for JSONL/Parquet/HF-dataset sources, the weighted mix sampler and
the shipped synthetic task (multi-step arithmetic) that the CPU path learns from.

Nothing here imports torch, so the CLI's `validate` path and the web tier can use it.
"""
