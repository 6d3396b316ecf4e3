"""Shared neural building blocks: transformer blocks, binarisers, masking, hashing and contrastive losses,
position tables."""

from .binarize import HashBinarizer, SignBinarizer, hash_binarize, sign_ste
from .contrastive import debiased_contrastive_loss
from .losses import anchor_loss, pairwise_similarity_loss, quantization_loss
from .masking import KEPT, REPLACED, UNTOUCHED, ZEROED, bert_mask
from .positional import sinusoid_table
from .transformer import LAYER_NORM_EPS, Attention, Mlp, TransformerBlock

__all__ = [
    "KEPT",
    "LAYER_NORM_EPS",
    "REPLACED",
    "UNTOUCHED",
    "ZEROED",
    "Attention",
    "HashBinarizer",
    "Mlp",
    "SignBinarizer",
    "TransformerBlock",
    "anchor_loss",
    "bert_mask",
    "debiased_contrastive_loss",
    "hash_binarize",
    "pairwise_similarity_loss",
    "quantization_loss",
    "sign_ste",
    "sinusoid_table",
]
