"""What results look like: terminal tables (`text`), figures (`plot`, matplotlib) and the
self-contained HTML report with CSV tables of every number (`html`)."""

__all__: list[str] = []
