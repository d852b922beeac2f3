"""Forms of the platform's pages: the experiment editor, generated from the run spec's own models."""
