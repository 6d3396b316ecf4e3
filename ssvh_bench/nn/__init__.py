"""Shared neural building blocks: transformer blocks, binarisers, contrastive losses."""
