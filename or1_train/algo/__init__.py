"""The recipe's algorithm, pure torch: group advantages, the PPO-clip loss and adaptive entropy control.

Import the submodules directly (`or1_train.algo.advantages`, `.losses`, `.entropy_control`). Nothing is
re-exported here so that `entropy_control`, which needs no torch, stays importable without it.
"""
