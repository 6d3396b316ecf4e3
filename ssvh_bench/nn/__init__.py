"""Shared neural building blocks: transformer blocks, binarisers, contrastive losses, position tables."""

from .binarize import HashBinarizer, SignBinarizer, hash_binarize, sign_ste
from .contrastive import debiased_contrastive_loss
from .positional import sinusoid_table
from .transformer import LAYER_NORM_EPS, Attention, Mlp, TransformerBlock

__all__ = [
    "LAYER_NORM_EPS",
    "Attention",
    "HashBinarizer",
    "Mlp",
    "SignBinarizer",
    "TransformerBlock",
    "debiased_contrastive_loss",
    "hash_binarize",
    "sign_ste",
    "sinusoid_table",
]
