"""64-bit DCT perceptual hashes of thumbnails, and finding every pair of hashes within a few bits of each other.

Candidates come from multi-index hashing: the 64 bits are cut into threshold+1 bands, and two hashes within the
threshold agree exactly on at least one band (pigeonhole), so only hashes sharing a band value are ever compared.
"""

from __future__ import annotations

import numpy as np
from scipy.fft import dctn

HASH_SIZE = 32  # px: side of the thumbnail the hash is computed on (the DCT's 8x8 lowest frequencies are kept)
LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R 601 weights, as PIL's "L" mode
_POPCOUNT8 = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def popcount64(x: np.ndarray) -> np.ndarray:
    """Set bits per uint64 element."""
    x = np.ascontiguousarray(x, dtype=np.uint64)
    if hasattr(np, "bitwise_count"):  # numpy >= 2.0
        return np.bitwise_count(x)
    return _POPCOUNT8[x.view(np.uint8).reshape(*x.shape, 8)].sum(axis=-1, dtype=np.int64)


def perceptual_hashes(images: np.ndarray, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """pHash (uint64) and low-frequency detail (RMS grey levels) of uint8 (N, 32, 32, 3) thumbnails.

    Grayscale, 2-D DCT-II, the 8x8 lowest frequencies; a bit is set where a coefficient exceeds the median of the 63
    non-DC ones (the DC term is the mean brightness, so it would shift the median). Bit 63 (the MSB) is the DC term.
    """
    hashes, detail = np.zeros(len(images), dtype=np.uint64), np.zeros(len(images))
    for start in range(0, len(images), chunk):
        gray = images[start : start + chunk].astype(np.float64) @ LUMA
        low = dctn(gray, axes=(1, 2), norm="ortho")[:, :8, :8].reshape(len(gray), 64)
        low = np.round(low, 3)  # float noise on blank images must not decide bits
        ac = low[:, 1:]
        bits = low > np.median(ac, axis=1, keepdims=True)
        hashes[start : start + chunk] = np.packbits(bits, axis=1).view(">u8").ravel()
        # the orthonormal DCT keeps energy, so this is the RMS contrast of the low-passed thumbnail
        detail[start : start + chunk] = np.sqrt((ac**2).sum(axis=1) / HASH_SIZE**2)
    return hashes, detail


def bands(threshold: int) -> list[tuple[int, int]]:
    """(shift, width) of threshold+1 bit bands that tile the 64 bits as evenly as possible."""
    count = threshold + 1
    widths = [64 // count + (i < 64 % count) for i in range(count)]
    return [(sum(widths[:i]), w) for i, w in enumerate(widths)]


def hamming_pairs(hashes: np.ndarray, threshold: int, budget: int = 1 << 22):
    """Every pair i < j of `hashes` at most `threshold` bits apart, as arrays (i, j, distance).

    Only hashes sharing one band's value are compared (multi-index hashing), `budget` comparisons at a time; with
    distinct hashes of real images the buckets stay small, so the work grows about linearly, not as N^2.
    """
    hashes = np.asarray(hashes, dtype=np.uint64)
    n = len(hashes)
    found = [(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64))]
    for shift, width in bands(threshold):
        key = (hashes >> np.uint64(shift)) & np.uint64((1 << width) - 1)
        order = np.argsort(key, kind="stable")  # stable: rows ascend inside a bucket, so i < j below
        sorted_key = key[order]
        starts = np.flatnonzero(np.r_[True, sorted_key[1:] != sorted_key[:-1]])
        sizes = np.diff(np.r_[starts, n])
        for m in np.unique(sizes[sizes > 1]):
            members = order[starts[sizes == m][:, None] + np.arange(m)]  # every bucket of size m, one per row
            found.extend(_pairs_in_buckets(hashes, members, threshold, budget))
    i, j, d = (np.concatenate(part).astype(np.int64) for part in zip(*found))
    _, first = np.unique(i * n + j, return_index=True)  # a pair sharing several bands was found several times
    return i[first], j[first], d[first]


def _pairs_in_buckets(hashes: np.ndarray, members: np.ndarray, threshold: int, budget: int):
    """Yield (i, j, distance) of close pairs inside buckets of equal size (`members`: one bucket per row)."""
    count, m = members.shape
    upper_i, upper_j = np.triu_indices(m, 1)
    if len(upper_i) <= budget:  # many small buckets at once
        per = max(1, budget // len(upper_i))
        for b in range(0, count, per):
            a, c = members[b : b + per, upper_i].ravel(), members[b : b + per, upper_j].ravel()
            d = popcount64(hashes[a] ^ hashes[c])
            keep = d <= threshold
            yield a[keep], c[keep], d[keep]
        return
    rows = max(1, budget // m)
    for bucket in members:  # one huge bucket, a block of rows against the whole bucket at a time
        h = hashes[bucket]
        for r0 in range(0, m, rows):
            d = popcount64(h[r0 : r0 + rows, None] ^ h[None, :])
            r, c = np.nonzero(d <= threshold)
            keep = r + r0 < c
            yield bucket[r[keep] + r0], bucket[c[keep]], d[r[keep], c[keep]]
