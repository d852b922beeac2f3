"""Actor engines: log-probs and PPO steps on the policy; `torch` now, `deepspeed` behind the same interface."""
