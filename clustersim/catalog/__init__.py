"""Chip and model specs as data: YAML files (and Hugging Face config.json) loaded into
frozen ChipSpec / ModelSpec records, with vendor units converted to SI once, here.

    >>> from clustersim.catalog import load_catalog
    >>> load_catalog().chip("h100 sxm").hbm_bytes
    80000000000.0
"""

from clustersim.catalog.hf_config import model_from_hf_config
from clustersim.catalog.loader import Catalog, load_catalog
from clustersim.catalog.specs import DTYPE_BYTES, ChipSpec, ModelSpec

__all__ = ["DTYPE_BYTES", "Catalog", "ChipSpec", "ModelSpec", "load_catalog", "model_from_hf_config"]
