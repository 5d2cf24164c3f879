"""The docs' result tables rendered from the committed receipts (``python scripts/render_docs.py``).

``receipts`` reads each JSON receipt into a context dict, ``filters`` holds the number formats as
Jinja2 filters, ``fragments`` names each fragment's receipts, template and script, and ``render``
puts them through the templates under ``docs/templates/`` and writes ``docs/generated/``.
"""
