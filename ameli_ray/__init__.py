"""ameli-ray: attribute-aware multimodal entity linking of product reviews, on Ray."""

__version__ = "0.1.0"
