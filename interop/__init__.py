"""From x-transformers Python to specs and back (`xtc import`, `xtc export-python`).

Nothing here runs the Python it reads: source is tokenized and parsed with `ast` under bounds
(python_source.py), constructor arguments are evaluated as literals by a bounded evaluator that
never calls `eval` (literals.py), and specs become constructor code as text (python_export.py).
Like spec/ and compiler/, nothing here imports torch.
"""
