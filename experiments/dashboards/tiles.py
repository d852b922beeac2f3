"""Tile levels: the block sizes, in steps, of the pre-aggregated tiles PostgreSQL keeps (models.MetricTile).

Each level is twice the one before, from 8 steps up to 65,536, so for any range one level cuts it into between
a half and all of the chart's buckets: a bucket is exactly one tile, and a chart reads one row per bucket
however long the run. (Doubling costs little room: all levels together hold about a quarter as many rows as
the points.) The same numbers are written into the triggers of migration 0006; a change here needs a
migration that rebuilds them.
"""

LEVELS = tuple(8 * 2**k for k in range(14))  # 8, 16, 32, ..., 65536
