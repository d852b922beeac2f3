"""Group-relative advantages (GRPO) and the statistics behind the online zero-advantage filter.

Every response to one prompt forms a group. Its advantage is its reward's z-score within the group,
the same value for each of its tokens (dossier §1.2; released `core_algos.py:L132-175`). Groups whose
rewards are all equal carry no policy-gradient signal; the recipe drops them before the update and logs
how many it dropped (dossier §4.3).

Group ids may be any integers (prompt indices, hashes of uids): they are mapped to dense indices with
`torch.unique`, and all per-group sums are `index_add_` scatters, so there is no Python loop over groups.
"""

from __future__ import annotations

import torch
from torch import Tensor

STD_MODES = ("unbiased", "population", "none")


def _dense_groups(rewards: Tensor, group_ids: Tensor) -> tuple[Tensor, Tensor, int]:
    """Check shapes and map arbitrary group ids to 0..G-1; return (inverse index, group sizes, G)."""
    if rewards.dim() != 1 or group_ids.dim() != 1 or rewards.shape != group_ids.shape:
        raise ValueError(
            f"rewards and group_ids must be 1-D of one length, got {tuple(rewards.shape)} "
            f"and {tuple(group_ids.shape)}"
        )
    if group_ids.dtype.is_floating_point or group_ids.dtype == torch.bool:
        raise TypeError(f"group_ids must be an integer tensor, got {group_ids.dtype}")
    _, inverse, counts = torch.unique(group_ids, return_inverse=True, return_counts=True)
    return inverse, counts, counts.numel()


def _group_sum(values: Tensor, inverse: Tensor, num_groups: int) -> Tensor:
    return torch.zeros(num_groups, dtype=values.dtype, device=values.device).index_add_(0, inverse, values)


def _group_min_max(rewards: Tensor, inverse: Tensor, num_groups: int) -> tuple[Tensor, Tensor]:
    r = rewards.to(torch.float64)
    init_min = torch.full((num_groups,), float("inf"), dtype=r.dtype, device=r.device)
    init_max = torch.full((num_groups,), float("-inf"), dtype=r.dtype, device=r.device)
    gmin = init_min.scatter_reduce(0, inverse, r, reduce="amin", include_self=True)
    gmax = init_max.scatter_reduce(0, inverse, r, reduce="amax", include_self=True)
    return gmin, gmax


def group_advantages(
    rewards: Tensor, group_ids: Tensor, std_mode: str = "unbiased", eps: float = 1e-6
) -> Tensor:
    """Return each sample's advantage (r - mean_g) / (std_g + eps) within its group g.

    std_mode:
      - "unbiased": Bessel-corrected std (ddof 1), what the released code gets from `torch.std`.
      - "population": ddof 0. With 16 samples per group this makes advantages ~3% larger in magnitude.
      - "none": Dr. GRPO, r - mean_g with no division at all (eps is unused).
    A group of one sample uses mean 0 and std 1, as the released code does, so its advantage is
    r / (1 + eps) (r itself under "none"). A group of two or more equal rewards gets exactly 0.
    The arithmetic runs in float64 (two-pass variance), the result has the rewards' float dtype.
    """
    if std_mode not in STD_MODES:
        raise ValueError(f"std_mode must be one of {STD_MODES}, got {std_mode!r}")
    out_dtype = rewards.dtype if rewards.dtype.is_floating_point else torch.get_default_dtype()
    inverse, counts, num_groups = _dense_groups(rewards, group_ids)
    r = rewards.to(torch.float64)
    n = counts.to(torch.float64)
    mean = _group_sum(r, inverse, num_groups) / n
    squared = _group_sum((r - mean[inverse]) ** 2, inverse, num_groups)
    ddof = 1.0 if std_mode == "unbiased" else 0.0
    std = torch.sqrt(squared / (n - ddof).clamp(min=1.0))
    singleton = counts == 1
    mean = torch.where(singleton, torch.zeros_like(mean), mean)
    std = torch.where(singleton, torch.ones_like(std), std)
    gmin, gmax = _group_min_max(rewards, inverse, num_groups)
    flat = ((gmin == gmax) & ~singleton)[inverse]
    # An all-equal group gets exactly 0 (its float mean can be off by an ulp, and eps may be 0).
    centred = torch.where(flat, torch.zeros_like(r), r - mean[inverse])
    if std_mode == "none":
        return centred.to(out_dtype)
    scale = torch.where(flat, torch.ones_like(r), std[inverse] + eps)
    return (centred / scale).to(out_dtype)


def group_stats(rewards: Tensor, group_ids: Tensor) -> dict[str, int | float]:
    """Count the groups that carry no advantage, as the recipe logs them before filtering.

    Keys: `num_groups`; `solve_none` (every reward 0), `solve_all` (every reward 1, the maximum of a binary
    reward), `without_adv` (every reward equal, which includes both of the former); and each of the three
    divided by `num_groups` as `<key>_ratio` (0.0 for an empty batch). Values are plain ints and floats.
    """
    inverse, _, num_groups = _dense_groups(rewards, group_ids)
    gmin, gmax = _group_min_max(rewards, inverse, num_groups)
    equal = gmin == gmax
    counts = {
        "solve_none": int((equal & (gmax == 0)).sum()),
        "solve_all": int((equal & (gmax == 1)).sum()),
        "without_adv": int(equal.sum()),
    }
    stats: dict[str, int | float] = {"num_groups": num_groups, **counts}
    for key, value in counts.items():
        stats[f"{key}_ratio"] = value / num_groups if num_groups else 0.0
    return stats


def informative_group_mask(rewards: Tensor, group_ids: Tensor) -> Tensor:
    """True for each sample whose group's rewards are not all equal: the samples the update keeps.

    A singleton group is all-equal by definition, so it is masked out too.
    """
    inverse, _, num_groups = _dense_groups(rewards, group_ids)
    gmin, gmax = _group_min_max(rewards, inverse, num_groups)
    return (gmin != gmax)[inverse]
