"""Dense placeholder for the evaluation protocol; replaced by the blocked implementation (eval branch)."""
from __future__ import annotations
import numpy as np
from .codes import PackedCodes
DEFAULT_KS = (5, 10, 20, 40, 60, 80, 100)
def evaluate(q, db, lq, ldb, *, ks=DEFAULT_KS, normalizer="k", strict=False, block_size=None, progress=False):
    q = q.unpack() if isinstance(q, PackedCodes) else np.asarray(q)
    db = db.unpack() if isinstance(db, PackedCodes) else np.asarray(db)
    d = 0.5 * (q.shape[1] - q.astype(float) @ db.T.astype(float))
    rel = (np.asarray(lq, float) @ np.asarray(ldb, float).T) > 0
    order = np.argsort(d, axis=1, kind="stable")
    r = np.take_along_axis(rel, order, 1)
    out = {}
    for k in ks:
        rk = r[:, :k]; hits = np.cumsum(rk, 1)
        out[f"map@{k}"] = float((((hits / np.arange(1, rk.shape[1] + 1)) * rk).sum(1) / k).mean())
        out[f"p@{k}"] = float(rk.sum(1).mean() / k)
    return out
