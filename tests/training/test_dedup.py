"""Exact and near duplicates are dropped (first kept) and their groups merged."""

from __future__ import annotations

import random

import pytest

from polyllm.training.dedup import deduplicate, jaccard, shingles, similar_pairs

LONG = (
    "Write a function to find the longest common subsequence of two strings and return its length"
    " using dynamic programming over a table of prefixes"
)


def test_exact_duplicates_ignore_case_and_whitespace() -> None:
    texts = ["What is  the capital of France?", "what is the capital\nof france?", "Other."]
    result = deduplicate(texts, ["a", "b", "c"])
    assert result.kept == [0, 2]
    (dup,) = result.dropped
    assert (dup.index, dup.of, dup.kind) == (1, 0, "exact")
    assert result.merged_group == {"a": "a", "b": "a", "c": "c"}


def test_near_duplicate_of_another_group_is_dropped_and_groups_merge() -> None:
    near = LONG + " here"
    assert jaccard(shingles(LONG), shingles(near)) >= 0.9
    texts = [LONG, "Something else entirely, about birds.", near, f"{near} #variation"]
    groups = ["a", "b", "c", "c"]
    result = deduplicate(texts, groups)
    assert [d.index for d in result.dropped] == [2, 3]
    assert all(d.kind == "near" and d.of == 0 for d in result.dropped)
    assert result.merged_group["c"] == "a"


def test_near_duplicates_within_a_group_are_kept() -> None:
    texts = [LONG, "Please answer carefully.\n\n" + LONG]
    result = deduplicate(texts, ["a", "a"], near=0.8, related=0.7)
    assert result.kept == [0, 1]


def test_related_prompts_merge_groups_without_dropping() -> None:
    other = LONG.replace("two strings", "three strings")
    similarity = jaccard(shingles(LONG), shingles(other))
    assert 0.6 <= similarity < 0.95
    result = deduplicate([LONG, other], ["a", "b"], near=0.95, related=0.6)
    assert result.kept == [0, 1]
    assert result.merged_group == {"a": "a", "b": "a"}


def test_similar_pairs_matches_brute_force() -> None:
    rng = random.Random(5)
    words = [f"w{i}" for i in range(12)]
    texts = [" ".join(rng.choices(words, k=rng.randint(3, 12))) for _ in range(150)]
    sets = [shingles(t) for t in texts]
    for threshold in (0.5, 0.8, 0.9, 1.0):
        expected = {
            (i, j)
            for i in range(len(sets))
            for j in range(i + 1, len(sets))
            if jaccard(sets[i], sets[j]) >= threshold
        }
        assert set(similar_pairs(sets, threshold)) == expected


def test_thresholds_are_checked() -> None:
    with pytest.raises(ValueError):
        deduplicate(["a"], ["a"], near=0.8, related=0.9)
    with pytest.raises(ValueError):
        similar_pairs([], 0.0)
