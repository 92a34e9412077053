"""Exact and near-duplicate detection over prompt texts, and the group merges it implies.

Similarity is the Jaccard index of word 3-gram shingle sets. Candidate pairs come from a
prefix-filtered set-similarity join (All-Pairs, Bayardo et al. 2007): with tokens ordered rarest
first, two sets whose Jaccard index is at least ``t`` share a token within the first
``|x| - ceil(t * |x|) + 1`` tokens of each, so only those prefixes are indexed. The join is exact,
pure Python, and fast at a few thousand prompts.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

_WORD = re.compile(r"\w+")
SHINGLE_WORDS = 3

DuplicateKind = Literal["exact", "near"]


def normalise(text: str) -> str:
    """Lower-case ``text`` and collapse every run of whitespace into one space."""
    return " ".join(text.lower().split())


def shingles(text: str, size: int = SHINGLE_WORDS) -> frozenset[str]:
    """The set of word ``size``-grams of ``text`` (lower-cased, punctuation dropped); a text shorter
    than ``size`` words is one shingle of all its words."""
    words = _WORD.findall(text.lower())
    if len(words) <= size:
        return frozenset({" ".join(words)})
    return frozenset(" ".join(words[i : i + size]) for i in range(len(words) - size + 1))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    """|a & b| / |a | b| (1.0 for two empty sets)."""
    union = len(a | b)
    return len(a & b) / union if union else 1.0


def similar_pairs(sets: Sequence[frozenset[str]], threshold: float) -> dict[tuple[int, int], float]:
    """Every pair ``(i, j)`` with ``i < j`` whose Jaccard index is at least ``threshold``
    (in (0, 1]), mapped to that index."""
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    frequency: dict[str, int] = defaultdict(int)
    for tokens in sets:
        for token in tokens:
            frequency[token] += 1
    ordered = [sorted(tokens, key=lambda t: (frequency[t], t)) for tokens in sets]
    index: dict[str, list[int]] = defaultdict(list)
    pairs: dict[tuple[int, int], float] = {}
    # Smallest sets first, so every indexed set is no larger than the probe.
    for i in sorted(range(len(sets)), key=lambda k: (len(sets[k]), k)):
        size = len(ordered[i])
        prefix = ordered[i][: size - math.ceil(threshold * size - 1e-9) + 1]
        candidates: set[int] = set()
        for token in prefix:
            candidates.update(index[token])
        for j in candidates:
            if len(sets[j]) < threshold * size - 1e-9:
                continue
            similarity = jaccard(sets[i], sets[j])
            if similarity >= threshold:
                pairs[(min(i, j), max(i, j))] = similarity
        for token in prefix:
            index[token].append(i)
    return pairs


@dataclass(frozen=True)
class Duplicate:
    """Item ``index`` was dropped as a duplicate of the earlier, kept item ``of``."""

    index: int
    of: int
    kind: DuplicateKind
    similarity: float


@dataclass
class _Groups:
    """Union-find over group ids; a merged group is named after its member seen first."""

    rank: dict[str, int]
    parent: dict[str, str] = field(default_factory=dict)

    def find(self, group: str) -> str:
        root = group
        while self.parent.get(root, root) != root:
            root = self.parent[root]
        self.parent[group] = root
        return root

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            first, second = sorted((ra, rb), key=lambda g: self.rank[g])
            self.parent[second] = first


@dataclass(frozen=True)
class DedupResult:
    """What :func:`deduplicate` decided: indices kept (in input order), duplicates dropped, and the
    merged group of every input group."""

    kept: list[int]
    dropped: list[Duplicate]
    merged_group: dict[str, str]


def deduplicate(
    texts: Sequence[str], groups: Sequence[str], near: float = 0.9, related: float = 0.8
) -> DedupResult:
    """Drop exact duplicates (same :func:`normalise` text) and near duplicates (shingle Jaccard ≥
    ``near``), keeping the first occurrence; merge groups that should share a split.

    Items of the same group (an original and its variations) are near duplicates by design, so
    within a group only exact duplicates are dropped. A dropped item's group joins the group of
    the item it duplicates, so the dropped item's surviving variations land in the same split; kept
    items of different groups with similarity ≥ ``related`` merge their groups too.
    """
    if len(texts) != len(groups):
        raise ValueError("texts and groups differ in length")
    if not 0.0 < related <= near <= 1.0:
        raise ValueError(f"need 0 < related <= near <= 1, got related={related}, near={near}")
    rank: dict[str, int] = {}
    for i, group in enumerate(groups):
        rank.setdefault(group, i)
    merged = _Groups(rank)
    sets = [shingles(text) for text in texts]
    neighbours: dict[int, list[tuple[int, float]]] = defaultdict(list)
    for (i, j), similarity in similar_pairs(sets, related).items():
        neighbours[j].append((i, similarity))

    first_seen: dict[str, int] = {}
    kept: list[int] = []
    alive: set[int] = set()
    dropped: list[Duplicate] = []
    for i, text in enumerate(texts):
        key = normalise(text)
        if key in first_seen:
            of = first_seen[key]
            dropped.append(Duplicate(i, of, "exact", 1.0))
            merged.union(groups[of], groups[i])
            continue
        earlier = sorted((j, s) for j, s in neighbours[i] if j in alive)
        near_of = next(((j, s) for j, s in earlier if s >= near and groups[j] != groups[i]), None)
        if near_of is not None:
            dropped.append(Duplicate(i, near_of[0], "near", near_of[1]))
            merged.union(groups[near_of[0]], groups[i])
            continue
        for j, _ in earlier:
            merged.union(groups[j], groups[i])
        first_seen[key] = i
        kept.append(i)
        alive.add(i)
    return DedupResult(kept, dropped, {group: merged.find(group) for group in rank})
