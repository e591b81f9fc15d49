"""Disambiguation: the text stream (cross-encoder over review/statement pairs, `text_stream.py`,
`statements.py`), the image stream (frozen image-tower features through a residual adapter,
`image_stream.py`), their losses (`losses.py`) and what training each means (`tasks.py`, one task
per stream, which the Ray Train loop runs). Plain torch; no Ray.
"""
