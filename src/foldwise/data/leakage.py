"""Duplicate images within train and between train and test (leakage), found without comparing all pairs.

Exact duplicates share content bytes (file bytes; pixel bytes for array-backed images). Near-duplicates have 64-bit
DCT perceptual hashes (pHash of a 32x32 grayscale thumbnail) at most `threshold` bits apart. Candidates come from
multi-index hashing: the 64 bits are cut into threshold+1 bands, and two hashes within the threshold agree exactly on
at least one band (pigeonhole), so only images sharing a band value are ever compared. Training images linked by
either kind form groups (connected components, so chains merge); each test image is paired with its nearest
training image.

On low-detail images (Fashion-MNIST's silhouettes) look-alikes chain: at 4 bits one component swallowed 9,213 of
60,000 images, which no group-aware split can balance. A near-duplicate group over `chain_limit` images is such a chain,
and is split by linking its members again at a lower threshold (byte-identical copies stay together) until no part is
over the limit (a part within it keeps its links); the report says which chains were split and how far down.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from foldwise.data.competition import Competition
from foldwise.data.fingerprints import fingerprints
from foldwise.data.phash import HASH_SIZE, hamming_pairs, popcount64
from foldwise.errors import FoldwiseError

# Evidence (1,000 CIFAR-10 JPEGs at 32 px, each against an altered copy): re-saved at JPEG quality 50 -> 99.4% within
# 4 bits, quality 30 -> 98.2%, brightness +8 or 0.8x contrast or 2x upscale -> 100%; a 1-px crop -> 29%, a mirror -> 0%.
# Among 5,000 distinct CIFAR-10 images only 3 pairs were within 4 bits, and all three were re-used photos.
DEFAULT_THRESHOLD = 4  # bits of 64; a hash (almost always) has 32 ones, so distances are even
MAX_THRESHOLD = 8  # 9 bands of ~7 bits; larger thresholds make buckets so big that it nears all-pairs
FLAT_DETAIL = 2.0  # grey levels: thumbnails with less low-frequency detail (RMS) are blank; matched by bytes only
CHAIN_SHARE = 0.01  # a near-duplicate group holding more than this share of the training images is a chain...
CHAIN_MIN = 50  # ...if it is also over this many images (real duplicate sets are a handful of copies)


@dataclass(frozen=True)
class LeakageReport:
    """Duplicate groups within train and test images that look like training images; rows index the ImageSources."""

    threshold: int  # near-duplicate: pHash Hamming distance <= threshold bits
    n_train: int
    n_test: int
    train_groups: list[list[int]]  # train rows, >= 2 per group, sorted; groups ordered by their first row
    group_exact: list[bool]  # per group: all members byte-identical
    train_test_pairs: list[tuple[int, int]]  # (train row, test row): a look-alike test image, its nearest train image
    pair_distance: list[int]  # per pair: Hamming distance between the hashes (bits)
    pair_exact: list[bool]  # per pair: byte-identical
    exact_train_images: int  # training images with a byte-identical copy elsewhere in train
    flat_images: int  # near-blank images (train + test) whose pHash is noise: matched by exact bytes only
    chains: tuple[dict, ...] = ()  # look-alike chains split: {"images", "threshold" (re-linked at), "largest_part"}

    @property
    def train_images_in_groups(self) -> int:
        """Training images that have at least one duplicate or near-duplicate in train."""
        return sum(len(g) for g in self.train_groups)

    @property
    def largest_group(self) -> int:
        """Members of the biggest group (0 without groups); a huge one unbalances group-aware folds."""
        return max((len(g) for g in self.train_groups), default=0)

    def counts(self) -> dict:
        """The numbers, for the folds sidecar and the report."""
        return {
            "hash": f"pHash 64-bit (DCT of {HASH_SIZE}x{HASH_SIZE} grayscale) + SHA-1 of content bytes",
            "near_duplicate_threshold": self.threshold,
            "train_duplicate_groups": len(self.train_groups),
            "train_images_in_groups": self.train_images_in_groups,
            "train_byte_identical_images": self.exact_train_images,
            "largest_group": self.largest_group,
            "test_images_like_train": len(self.train_test_pairs),
            "test_byte_identical_to_train": sum(self.pair_exact),
            "flat_images_bytes_only": self.flat_images,
            "chains_split": list(self.chains),
        }

    def pair_examples(self, comp: Competition, n: int = 12) -> list[dict]:
        """Up to `n` test images that look like a training image, nearest first, for the report's gallery."""
        order = sorted(range(len(self.train_test_pairs)), key=lambda i: (self.pair_distance[i], i))[:n]
        return [
            {
                "train": comp.train_ids[self.train_test_pairs[i][0]],
                "test": comp.test_ids[self.train_test_pairs[i][1]],
                "distance": int(self.pair_distance[i]),
                "exact": bool(self.pair_exact[i]),
            }
            for i in order
        ]

    def summary(self) -> str:
        """One line: what was found."""
        return (
            f"duplicates (pHash distance <= {self.threshold} bits, or identical bytes): "
            f"{len(self.train_groups)} group(s) of training images ({self.train_images_in_groups} images, "
            f"{self.exact_train_images} byte-identical, largest group {self.largest_group}); "
            f"{len(self.train_test_pairs)} of {self.n_test} test images look like a training image "
            f"({sum(self.pair_exact)} byte-identical)" + "".join(f"; {chain_text(c)}" for c in self.chains)
        )

    def examples(self, comp: Competition, n: int = 3) -> list[str]:
        """Up to `n` groups (conflicting labels and big groups first) and `n` test pairs, as readable lines."""
        names = comp.classes
        labels = np.asarray(comp.train_labels)
        order = sorted(
            range(len(self.train_groups)),
            key=lambda g: (len(set(labels[self.train_groups[g]])) == 1, -len(self.train_groups[g]), g),
        )
        lines = []
        for g in order[:n]:
            rows = self.train_groups[g]
            shown = [comp.train_ids[r] for r in rows[:5]] + ([f"... ({len(rows)} in all)"] if len(rows) > 5 else [])
            kinds = sorted({names[labels[r]] for r in rows})
            label_text = f"conflicting labels {', '.join(kinds[:5])}" if len(kinds) > 1 else f"label {kinds[0]}"
            kind = "byte-identical" if self.group_exact[g] else "near-duplicates"
            lines.append(f"train group of {len(rows)} ({kind}; {label_text}): {', '.join(shown)}")
        pairs = zip(self.train_test_pairs, self.pair_distance, self.pair_exact)
        for (train, test), dist, exact in islice(pairs, n):
            how = "byte-identical" if exact else f"pHash distance {dist}"
            lines.append(
                f"test {comp.test_ids[test]} looks like train {comp.train_ids[train]} "
                f"(label {names[labels[train]]}; {how})"
            )
        return lines


def link_duplicates(hashes, detail, content: list[str], n_train: int, threshold: int) -> LeakageReport:
    """The report from per-image fingerprints: rows 0..n_train-1 are training images, the rest test images."""
    hashes = np.asarray(hashes, dtype=np.uint64)
    n = len(hashes)
    first_train: dict[str, int] = {}
    for row in range(n_train):
        first_train.setdefault(content[row], row)
    exact = np.array([first_train.get(c, -1) for c in content], dtype=np.int64)  # first train row, same bytes
    usable = np.flatnonzero(np.asarray(detail) >= FLAT_DETAIL)  # blank images: their hash is noise
    (near_a, near_b), near = _near_links(hashes, usable, n_train, threshold)
    groups = _components(
        np.concatenate([exact[:n_train], near_a]), np.concatenate([np.arange(n_train), near_b]), n_train
    )
    groups, chains = _split_chains(groups, hashes, usable, exact, n_train, threshold)

    match = np.where(exact >= 0, exact, near)[n_train:]  # byte-identical beats near
    tests = np.flatnonzero(match >= 0)
    pairs = [(int(match[t]), int(t)) for t in tests]
    counts = np.unique(content[:n_train], return_counts=True)[1] if n_train else np.zeros(0)
    return LeakageReport(
        threshold=threshold,
        n_train=n_train,
        n_test=n - n_train,
        train_groups=groups,
        group_exact=[len({content[r] for r in g}) == 1 for g in groups],
        train_test_pairs=pairs,
        pair_distance=popcount64(hashes[match[tests]] ^ hashes[tests + n_train]).tolist(),
        pair_exact=[content[a] == content[t + n_train] for a, t in pairs],
        exact_train_images=int(counts[counts > 1].sum()),
        flat_images=int(n - len(usable)),
        chains=tuple(chains),
    )


def chain_text(chain: dict) -> str:
    """One split chain (an entry of LeakageReport.chains / the folds sidecar's chains_split), in words."""
    return (
        f"a chain of {chain['images']} look-alikes (too many to be copies of one image) split by re-linking at "
        f"{chain['threshold']} bits (largest part {chain['largest_part']})"
    )


def chain_limit(n_train: int) -> int:
    """Images above which a near-duplicate group is a chain of look-alikes rather than copies of one image."""
    return max(CHAIN_MIN, int(CHAIN_SHARE * n_train))


def below(threshold: int) -> int:
    """The next lower even threshold (4 -> 2, 3 -> 2, 2 -> 0, 1 -> 0): a 64-bit pHash has (almost always) 32 ones,
    so an odd threshold links exactly what the even one below it links."""
    return max((threshold - 1) // 2 * 2, 0)


def _split_chains(groups, hashes, usable, exact, n_train: int, threshold: int):
    """Groups over chain_limit re-linked at lower thresholds until every part is within it (byte-identical rows
    always stay linked; a part within the limit keeps the links it has); returns (groups, one dict per chain split)."""
    limit, kept, chains = chain_limit(n_train), [], []

    def chain(part: list[int]) -> bool:
        """Over the limit and not all copies of one file."""
        return len(part) > limit and len(set(exact[part].tolist())) > 1

    def split(group: list[int], lower: int) -> tuple[list[list[int]], int]:
        """(parts, lowest threshold used) of one over-limit group re-linked at `lower` bits, recursively (2 bits at
        a time: pHash distances are even)."""
        members = np.asarray(group)
        (near_a, near_b), _ = _near_links(hashes, np.intersect1d(usable, members), n_train, lower)
        parts, lowest = [], lower
        for part in _components(np.r_[exact[members], near_a], np.r_[members, near_b], n_train):
            if chain(part) and lower > 0:
                more, deeper = split(part, below(lower))
                parts, lowest = parts + more, min(lowest, deeper)
            else:
                parts.append(part)
        return parts, lowest

    for group in groups:
        if not chain(group) or threshold == 0:
            kept.append(group)
            continue
        parts, lowest = split(group, below(threshold))
        if len(parts) != 1 or len(parts[0]) < len(group):  # identical hashes can hold a chain together at 0 bits
            chains.append({"images": len(group), "threshold": lowest, "largest_part": max(map(len, parts), default=1)})
        kept.extend(parts)
    return sorted(kept, key=lambda g: g[0]), chains


def _near_links(hashes: np.ndarray, rows: np.ndarray, n_train: int, threshold: int):
    """Near-duplicate edges between training rows, and the nearest training row of every row (-1: none).

    Only `rows` take part. Identical hashes are collapsed first, so a thousand copies cost one bucket entry.
    """
    uniq, inv = np.unique(hashes[rows], return_inverse=True)
    is_train = rows < n_train
    rep = np.full(len(uniq), n_train, dtype=np.int64)  # first train row per distinct hash; n_train = none
    np.minimum.at(rep, inv[is_train], rows[is_train])
    u, v, d = hamming_pairs(uniq, threshold)
    both = (rep[u] < n_train) & (rep[v] < n_train)
    edges = (np.r_[rep[inv[is_train]], rep[u][both]], np.r_[rows[is_train], rep[v][both]])  # same hash, close hash

    # each distinct hash's nearest train row: its own (distance 0) or a neighbour's; ties go to the lower row
    cand_u = np.concatenate([np.arange(len(uniq)), u, v])
    cand_row = np.concatenate([rep, rep[v], rep[u]])
    cand_d = np.concatenate([np.zeros(len(uniq), np.int64), d, d])
    ok = cand_row < n_train
    cand_u, cand_row, cand_d = cand_u[ok], cand_row[ok], cand_d[ok]
    order = np.lexsort((cand_row, cand_d, cand_u))
    firsts = order[np.r_[True, cand_u[order][1:] != cand_u[order][:-1]]] if len(order) else order
    nearest = np.full(len(uniq), -1, dtype=np.int64)
    nearest[cand_u[firsts]] = cand_row[firsts]
    near = np.full(len(hashes), -1, dtype=np.int64)
    near[rows] = nearest[inv]
    return edges, near


def _components(a: np.ndarray, b: np.ndarray, n: int) -> list[list[int]]:
    """Connected components with >= 2 members of the graph on n nodes with edges a-b, ordered by first member."""
    graph = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(n, n))
    _, label = connected_components(graph, directed=False)
    order = np.argsort(label, kind="stable")  # rows ascend within a component
    cuts = np.flatnonzero(np.diff(label[order])) + 1
    groups = [g.tolist() for g in np.split(order, cuts) if len(g) > 1]
    return sorted(groups, key=lambda g: g[0])


def find_duplicates(
    comp: Competition, cache_dir: Path, threshold: int = DEFAULT_THRESHOLD, workers: int | None = None
) -> LeakageReport:
    """Exact and near-duplicate images within train and between train and test (decodes 32 px thumbnails once)."""
    if not 0 <= threshold <= MAX_THRESHOLD:
        raise FoldwiseError(f"duplicate threshold {threshold}: choose 0..{MAX_THRESHOLD} bits (default 4).")
    train = fingerprints(comp.train_images, cache_dir, "train", workers)
    test = fingerprints(comp.test_images, cache_dir, "test", workers)
    hashes, detail = np.concatenate([train[0], test[0]]), np.concatenate([train[1], test[1]])
    return link_duplicates(hashes, detail, train[2] + test[2], len(comp.train_ids), threshold)


def group_ids(report: LeakageReport, n_train: int) -> np.ndarray:
    """Group label per training row (0, 1, ... in order of first row); a row without duplicates is its own group."""
    first = np.arange(n_train)
    for group in report.train_groups:
        first[group] = group[0]
    return np.unique(first, return_inverse=True)[1].astype(np.int64)
