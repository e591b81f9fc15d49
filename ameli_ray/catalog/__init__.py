"""The generated demo catalogue: products, images, reviews and splits in the AMELI release format."""

from ameli_ray.catalog.corpus import CorpusSummary, generate_corpus
from ameli_ray.catalog.generator import CatalogSummary, generate_catalog
from ameli_ray.catalog.tables import CATEGORY_NAMES, COLOR_RGB, is_informative_value

__all__ = ["CATEGORY_NAMES", "COLOR_RGB", "CatalogSummary", "CorpusSummary", "generate_catalog", "generate_corpus", "is_informative_value"]
