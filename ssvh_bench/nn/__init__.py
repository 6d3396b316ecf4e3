"""Shared neural building blocks: transformer blocks, binarisers, masking, hashing and contrastive losses,
position tables."""

from .binarize import HashBinarizer, SignBinarizer, hash_binarize, sign_ste
from .contrastive import debiased_contrastive_loss
from .losses import anchor_loss, pairwise_similarity_loss, quantization_loss
from .masking import KEPT, REPLACED, UNTOUCHED, ZEROED, bert_mask, n_visible_frames, sample_views
from .positional import sinusoid_table
from .transformer import (LAYER_NORM_EPS, MASKED_AUTOENCODER_VARIANTS, Attention, MaskedAutoencoderShape,
                          MaskedDecoder, Mlp, TransformerBlock, xavier_init)

__all__ = [
    "KEPT",
    "LAYER_NORM_EPS",
    "MASKED_AUTOENCODER_VARIANTS",
    "REPLACED",
    "UNTOUCHED",
    "ZEROED",
    "Attention",
    "HashBinarizer",
    "MaskedAutoencoderShape",
    "MaskedDecoder",
    "Mlp",
    "SignBinarizer",
    "TransformerBlock",
    "anchor_loss",
    "bert_mask",
    "debiased_contrastive_loss",
    "hash_binarize",
    "n_visible_frames",
    "pairwise_similarity_loss",
    "quantization_loss",
    "sample_views",
    "sign_ste",
    "sinusoid_table",
    "xavier_init",
]
