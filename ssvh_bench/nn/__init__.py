"""Shared neural building blocks: transformer and Mamba blocks, binarisers, contrastive losses, position tables."""

from .binarize import HashBinarizer, SignBinarizer, hash_binarize, sign_ste
from .contrastive import debiased_contrastive_loss
from .drop_path import DropPath
from .mamba import BidirectionalMambaBlock, Mamba, selective_scan
from .positional import sinusoid_table
from .transformer import LAYER_NORM_EPS, Attention, Mlp, TransformerBlock

__all__ = [
    "LAYER_NORM_EPS",
    "Attention",
    "BidirectionalMambaBlock",
    "DropPath",
    "HashBinarizer",
    "Mamba",
    "Mlp",
    "SignBinarizer",
    "TransformerBlock",
    "debiased_contrastive_loss",
    "hash_binarize",
    "selective_scan",
    "sign_ste",
    "sinusoid_table",
]
