"""Teams, projects, dataset mixes, experiments and runs, with their metrics, checkpoints and evaluations."""
