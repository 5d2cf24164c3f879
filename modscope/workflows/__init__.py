"""End-to-end runs from files to results, one per command: an analysis of a checkpoint file, the
demo, and sweeps over many checkpoints and settings."""

__all__: list[str] = []
