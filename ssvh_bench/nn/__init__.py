"""Shared neural building blocks: transformer, Mamba and batch-normalised LSTM blocks, binarisers, masking,
hashing and contrastive losses, position tables."""

from .binarize import HashBinarizer, SignBinarizer, hash_binarize, sign_ste
from .bn_lstm import BatchNormLSTM
from .contrastive import debiased_contrastive_loss
from .drop_path import DropPath
from .losses import anchor_loss, pairwise_similarity_loss, quantization_loss
from .mamba import BidirectionalMambaBlock, Mamba, selective_scan
from .masking import (KEPT, MASKINGS, REPLACED, UNTOUCHED, ZEROED, ZEROED_SOURCE, InPlaceMasks, bert_mask,
                      check_visible_frames, frames_shown, n_visible_frames, sample_views, two_view_reconstruction)
from .positional import sinusoid_table
from .transformer import (LAYER_NORM_EPS, MASKED_AUTOENCODER_VARIANTS, Attention, FrameEncoder,
                          MaskedAutoencoderShape, MaskedDecoder, Mlp, StdLayerNorm, TransformerBlock,
                          transformer_blocks, xavier_init)

__all__ = [
    "KEPT",
    "LAYER_NORM_EPS",
    "MASKED_AUTOENCODER_VARIANTS",
    "MASKINGS",
    "REPLACED",
    "UNTOUCHED",
    "ZEROED",
    "ZEROED_SOURCE",
    "Attention",
    "BatchNormLSTM",
    "BidirectionalMambaBlock",
    "DropPath",
    "FrameEncoder",
    "HashBinarizer",
    "InPlaceMasks",
    "MaskedAutoencoderShape",
    "MaskedDecoder",
    "Mamba",
    "Mlp",
    "SignBinarizer",
    "StdLayerNorm",
    "TransformerBlock",
    "anchor_loss",
    "bert_mask",
    "debiased_contrastive_loss",
    "frames_shown",
    "hash_binarize",
    "check_visible_frames",
    "n_visible_frames",
    "pairwise_similarity_loss",
    "quantization_loss",
    "sample_views",
    "selective_scan",
    "sign_ste",
    "sinusoid_table",
    "transformer_blocks",
    "two_view_reconstruction",
    "xavier_init",
]
