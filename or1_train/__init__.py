"""OR1 Lab's trainer: the Skywork-OR1 (MAGIC) recipe as a library and the `or1-train` CLI.

Usable with no Django and no server: the only contract with the platform is the run spec
(`or1_train.spec`), the run directory's `metrics.jsonl`/`events.jsonl`, checkpoints with a manifest,
and signals (SIGTERM = checkpoint and stop).
"""
