"""How work runs, not what it computes: atomic writes, resumable caches, executors, threads,
seeds, hashes, JSON conversion and torch module state. Every other package may use it; it uses
none of them."""

__all__: list[str] = []
