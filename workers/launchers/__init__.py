"""Launchers: how a run's trainer is started, signalled and observed (``local``: a process on this host)."""
