"""Everything that touches a process or a cluster: Celery tasks, local and Slurm launchers, reconciliation."""
