"""Attributes: OCR, the value vocabulary, extraction from reviews, agreement with candidates."""
