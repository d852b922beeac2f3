"""Queries and downsampling behind the charts: the run page, the comparison dashboard and the rollout browser.

``downsample``  the bucket arithmetic (min/max per bucket), in plain Python: the reference and the SQLite path
``series``      reading chart series from the metric table (in SQL on PostgreSQL), live increments, x maps
``catalog``     which charts the run page draws and what each metric means (direction, axis)
``specdiff``    flattening run specs to field paths, the config diff, grouping values
``selection``   choosing runs for a comparison (experiment, sweep, tag, search)
``rollouts``    reading the trainer's sampled rollout groups from a run directory
``staticfinder`` serves plotly.js from the installed ``plotly`` package (no CDN, no copy in git)
"""
