"""Disambiguation: the text stream (cross-encoder over review/statement pairs, `text_stream.py`,
`statements.py`), the image stream (frozen image-tower features through a residual adapter,
`image_stream.py`) and their losses (`losses.py`). Plain torch; no Ray.
"""
