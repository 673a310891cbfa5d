"""The permutation builder through Python (spec §1.1, §2, §3)."""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import riffledb
from riffledb._permutation_builder import PermutationBuilder, permutation_builder

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def make_table(n: int, name: str = "base"):
    db = riffledb.connect("memory://")
    return db.create_table(
        name,
        pa.table(
            {
                "id": pa.array(range(n), pa.int64()),
                "label": pa.array([i % 10 for i in range(n)], pa.int32()),
                "category": pa.array([["A", "B", "C"][i % 3] for i in range(n)]),
            }
        ),
    )


def result(perm) -> tuple[list[int], list[int]]:
    data = perm.to_arrow()
    return data["row_id"].to_pylist(), data["split_id"].to_pylist()


def split_sizes(split_ids: list[int]) -> list[int]:
    sizes: list[int] = []
    for s in split_ids:
        while len(sizes) <= s:
            sizes.append(0)
        sizes[s] += 1
    return sizes


# -- a Python model of spec §3.2 ---------------------------------------------------------


def _rust_float(x: float) -> str:
    return np.format_float_positional(x, unique=True, trim="-")


def _round_half_away(x: float) -> int:
    whole = math.floor(x)
    return whole + (1 if x - whole >= 0.5 else 0)


def model_counts(kind: str, value, n: int) -> list[int]:
    """Per-split counts, or ValueError with LanceDB's message."""
    if kind == "ratios":
        total = 0.0
        for p in value:
            if not (0.0 <= p <= 1.0):
                raise ValueError(
                    "Invalid input, Split percentages must be between 0.0 and 1.0"
                )
            if p * n < 1.0:
                raise ValueError(
                    "Invalid input, One of the splits has "
                    f"{_rust_float(p * 100.0)}% of {n} rows which rounds to 0 rows"
                )
            total += p
        if total > 1.0:
            raise ValueError("Invalid input, Split percentages must sum to 1.0 or less")
        counts = [_round_half_away(p * n) for p in value]
        i = 0
        while sum(counts) > n:
            if counts[i] > 0:
                counts[i] -= 1
            i = (i + 1) % len(counts)
        if abs(n - total * n) < 0.5:
            i = 0
            while sum(counts) < n:
                counts[i] += 1
                i = (i + 1) % len(counts)
        return counts
    if kind == "counts":
        if sum(value) > n:
            raise ValueError(
                "Invalid input, Split counts specified "
                f"{sum(value)} rows but only {n} are available"
            )
        if 0 in value:
            raise ValueError("Invalid input, Split counts must be greater than 0")
        return list(value)
    if value == 0:
        raise ValueError(
            "Invalid input, Split fixed config specified 0 splits; it must be at least 1"
        )
    if value > n or n // value == 0:
        raise ValueError(
            "Invalid input, Split fixed config specified "
            f"{value} splits but only {n} rows are available.  "
            "Must have at least 1 row per split."
        )
    return [n // value] * value


sizes_strategy = st.one_of(
    st.tuples(
        st.just("ratios"),
        st.lists(
            st.one_of(
                st.floats(0.0, 1.0),
                st.sampled_from([0.1, 0.2, 0.25, 0.3, 0.333, 0.5, 0.7]),
                st.floats(-0.5, 1.5),
            ),
            min_size=1,
            max_size=4,
        ),
    ),
    st.tuples(st.just("counts"), st.lists(st.integers(0, 60), min_size=1, max_size=4)),
    st.tuples(st.just("fixed"), st.integers(0, 70)),
)


@SETTINGS
@given(
    n=st.integers(0, 120),
    sizes=sizes_strategy,
    strategy=st.sampled_from(["random", "sequential"]),
)
def test_split_sizes_match_model(n, sizes, strategy):
    kind, value = sizes
    table = make_table(n)
    builder = permutation_builder(table)
    if strategy == "random":
        builder.split_random(**{kind: value}, seed=3)
    else:
        builder.split_sequential(**{kind: value})
    try:
        expected = model_counts(kind, value, n)
    except ValueError as error:
        with pytest.raises(ValueError) as raised:
            builder.execute()
        assert str(raised.value) == str(error)
        return
    row_ids, split_ids = result(builder.execute())
    sizes = split_sizes(split_ids)
    # A split of zero rows (trimmed by rounding) does not show up in split_ids.
    assert sizes + [0] * (len(expected) - len(sizes)) == expected
    assert split_ids == sorted(split_ids)
    assert len(set(row_ids)) == len(row_ids)
    if strategy == "sequential":
        assert row_ids == list(range(sum(expected)))


@SETTINGS
@given(
    n=st.integers(0, 300),
    seed=st.integers(0, 2**64 - 1),
    clump=st.integers(1, 40),
    splits=st.integers(1, 3),
)
def test_shuffle_is_a_permutation_with_clumps_intact(n, seed, clump, splits):
    table = make_table(n)

    def build():
        builder = permutation_builder(table)
        if splits > 1:
            builder.split_calculated(f"id % {splits}")
        return result(builder.shuffle(seed=seed, clump_size=clump).execute())

    row_ids, split_ids = build()
    assert sorted(row_ids) == list(range(n))
    assert split_ids == sorted(split_ids)
    assert all(s == r % splits for r, s in zip(row_ids, split_ids, strict=True))
    assert build() == (row_ids, split_ids)
    if splits == 1:
        # Clumps [0,c), [c,2c), ... appear whole and in order.
        i = 0
        while i < n:
            first = row_ids[i]
            assert first % clump == 0
            length = min(clump, n - first)
            assert row_ids[i : i + length] == list(range(first, first + length))
            i += length


# -- examples ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ratios,n,expected",
    [
        ([0.3, 0.7], 100, [30, 70]),
        ([0.333, 0.333, 0.333], 100, [34, 33, 33]),
        ([0.3, 0.41], 70, [21, 29]),
        ([0.05, 0.30], 942, [47, 283]),
        ([0.217, 0.168, 0.17], 50, [11, 8, 9]),
    ],
)
def test_ratio_examples(ratios, n, expected):
    perm = (
        permutation_builder(make_table(n)).split_random(ratios=ratios, seed=42).execute()
    )
    assert split_sizes(result(perm)[1]) == expected


def test_fixed_drops_remainder():
    perm = permutation_builder(make_table(100)).split_sequential(fixed=3).execute()
    row_ids, split_ids = result(perm)
    assert split_sizes(split_ids) == [33, 33, 33]
    assert row_ids == list(range(99))


def test_default_is_one_split_in_storage_order():
    perm = PermutationBuilder(make_table(25)).execute()
    assert isinstance(perm, riffledb.Table)
    assert perm.name == "permutation"
    assert perm.schema.names == ["row_id", "split_id"]
    assert perm.schema.field("row_id").type == pa.uint64()
    assert perm.schema.field("split_id").type == pa.uint64()
    assert not perm.schema.field("split_id").nullable
    # A memory:// base: the build's version and digests, no recipe (see test_recipe_*).
    assert set(perm.schema.metadata) == {
        b"riffledb:base_version",
        b"riffledb:split_digests",
    }
    assert result(perm) == (list(range(25)), [0] * 25)


def test_random_split_determinism():
    table = make_table(500)
    a = result(
        permutation_builder(table).split_random(ratios=[0.8, 0.2], seed=1).execute()
    )
    b = result(
        permutation_builder(table).split_random(ratios=[0.8, 0.2], seed=1).execute()
    )
    c = result(
        permutation_builder(table).split_random(ratios=[0.8, 0.2], seed=2).execute()
    )
    assert a == b
    assert a != c
    assert sorted(a[0]) == list(range(500))


def test_filter_then_split_uses_filtered_count():
    perm = (
        permutation_builder(make_table(100))
        .filter("label % 10 != 0")
        .split_sequential(ratios=[0.5, 0.5])
        .execute()
    )
    row_ids, split_ids = result(perm)
    assert split_sizes(split_ids) == [45, 45]
    assert all(r % 10 != 0 for r in row_ids)


def test_last_call_wins():
    perm = (
        permutation_builder(make_table(100))
        .filter("id < 10")
        .filter("id >= 90")
        .split_sequential(fixed=2, split_names=["a", "b"])
        .split_sequential(counts=[4])
        .execute()
    )
    row_ids, split_ids = result(perm)
    assert row_ids == [90, 91, 92, 93]
    assert b"split_names" not in perm.schema.metadata


def test_split_names_metadata():
    perm = (
        permutation_builder(make_table(10))
        .split_random(ratios=[0.5, 0.5], seed=1, split_names=["train", "test"])
        .execute()
    )
    assert perm.schema.metadata[b"split_names"] == b'["train","test"]'
    assert json.loads(perm.schema.metadata[b"split_names"]) == ["train", "test"]


def test_hash_split_without_discard_weight():
    table = make_table(3000)
    perm = permutation_builder(table).split_hash(["category"], [1, 1]).execute()
    row_ids, split_ids = result(perm)
    assert len(row_ids) == 3000
    by_category: dict[int, set[int]] = {}
    for r, s in zip(row_ids, split_ids, strict=True):
        by_category.setdefault(r % 3, set()).add(s)
    assert all(len(s) == 1 for s in by_category.values())
    # Same values, same splits, in another table with other rows.
    other = result(
        permutation_builder(make_table(30, "other"))
        .split_hash(["category"], [1, 1])
        .execute()
    )
    assert {r % 3: s for r, s in zip(*other, strict=True)} == {
        k: next(iter(v)) for k, v in by_category.items()
    }


def test_hash_split_columns_are_names_not_sql():
    # Sibling of search().select(["id * 100"]): hash columns were parsed as SQL, so
    # split_hash(["id % 3"]) hashed an expression. They are column names, as in LanceDB.
    table = make_table(10)
    with pytest.raises(riffledb.errors.InvalidError) as info:
        permutation_builder(table).split_hash(["id % 3"], [1, 1]).execute()
    assert str(info.value) == (
        "Column 'id % 3' does not exist; available columns: id, label, category"
    )


def test_hash_split_weights_and_discard():
    table = make_table(20000)
    row_ids, split_ids = result(
        permutation_builder(table).split_hash(["id"], [1, 2], discard_weight=1).execute()
    )
    sizes = split_sizes(split_ids)
    assert abs(len(row_ids) - 15000) < 400
    assert abs(sizes[0] - 5000) < 400 and abs(sizes[1] - 10000) < 400
    assert split_ids == sorted(split_ids)


def test_calculated_split():
    row_ids, split_ids = result(
        permutation_builder(make_table(12)).split_calculated("id % 3").execute()
    )
    assert split_ids == [0] * 4 + [1] * 4 + [2] * 4
    assert row_ids == [0, 3, 6, 9, 1, 4, 7, 10, 2, 5, 8, 11]


@pytest.mark.parametrize(
    "calculation,message",
    [
        ("id - 1", "gave -1 at row 0 (_rowid 0)"),
        ("CAST(id AS DOUBLE) / 4.0", "gave 0.25 at row 1 (_rowid 1)"),
        ("category", "has type string"),
        ("nope", "nope"),
    ],
)
def test_calculated_split_rejections(calculation, message):
    builder = permutation_builder(make_table(5)).split_calculated(calculation)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        builder.execute()


def test_empty_results_allowed():
    table = make_table(10)
    assert permutation_builder(table).filter("id > 99").execute().count_rows() == 0
    assert (
        permutation_builder(table)
        .filter("id > 99")
        .split_hash(["id"], [1])
        .execute()
        .count_rows()
        == 0
    )
    assert (
        permutation_builder(table)
        .filter("id > 99")
        .split_calculated("id")
        .execute()
        .count_rows()
        == 0
    )
    with pytest.raises(ValueError, match="50% of 0 rows which rounds to 0 rows"):
        permutation_builder(table).filter("id > 99").split_random(
            ratios=[0.5, 0.5]
        ).execute()


# -- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["split_random", "split_sequential"])
@pytest.mark.parametrize(
    "kwargs", [{}, {"ratios": [0.5], "counts": [1]}, {"ratios": [0.5], "fixed": 2}]
)
def test_exactly_one_size_form_is_checked_immediately(method, kwargs):
    builder = permutation_builder(make_table(10))
    with pytest.raises(
        ValueError, match="Exactly one of 'ratios', 'counts', or 'fixed' must be provided"
    ):
        getattr(builder, method)(**kwargs)


def test_builder_is_consumed_by_execute():
    builder = permutation_builder(make_table(10))
    builder.execute()
    with pytest.raises(RuntimeError, match="Builder already consumed"):
        builder.execute()
    with pytest.raises(RuntimeError, match="Builder already consumed"):
        builder.shuffle(seed=1)


def test_not_a_table():
    with pytest.raises(
        RuntimeError,
        match="Provided table does not appear to be a Table or RemoteTable instance",
    ):
        permutation_builder(pa.table({"a": [1]}))


@pytest.mark.parametrize(
    "call",
    [
        lambda b: b.split_random(fixed=-1),
        lambda b: b.split_random(counts=[1, -2]),
        lambda b: b.split_random(ratios=[0.5], seed=-1),
        lambda b: b.split_hash(["id"], [1], discard_weight=-1),
        lambda b: b.shuffle(clump_size=-3),
        lambda b: b.shuffle(seed=2**64),
    ],
)
def test_negative_integers_overflow(call):
    with pytest.raises(OverflowError):
        call(permutation_builder(make_table(10)))


@pytest.mark.parametrize(
    "configure,message",
    [
        (
            lambda b: b.shuffle(seed=1, clump_size=0),
            "Invalid input, clump size must be greater than 0",
        ),
        (
            lambda b: b.split_random(fixed=2, clump_size=0),
            "Invalid input, clump size must be greater than 0",
        ),
        (lambda b: b.split_sequential(fixed=0), "Split fixed config specified 0 splits"),
        (
            lambda b: b.split_hash([], [1]),
            "Invalid input, Hash strategy requires at least one column",
        ),
        (
            lambda b: b.split_hash(["id"], []),
            "Invalid input, Hash strategy requires at least one split weight",
        ),
        (
            lambda b: b.split_hash(["id"], [1, 0]),
            "Invalid input, Split weights must be greater than 0",
        ),
        (lambda b: b.split_hash(["nope"], [1]), "nope"),
        (
            lambda b: b.split_sequential(fixed=2, split_names=["only_one"]),
            "1 split names were given for 2 splits",
        ),
        (
            lambda b: b.split_hash(["id"], [1, 1], split_names=["a", "a"]),
            "split name 'a' is given more than once",
        ),
        (lambda b: b.filter("nope > 1"), "nope"),
    ],
)
def test_execute_errors(configure, message):
    builder = configure(permutation_builder(make_table(10)))
    with pytest.raises(ValueError, match=message):
        builder.execute()


def test_builder_pins_the_table_version():
    table = make_table(10)
    builder = permutation_builder(table)
    table.add(pa.table({"id": [10], "label": [0], "category": ["A"]}))
    assert builder.execute().count_rows() == 10


def test_recipe_metadata_over_a_directory_table(tmp_path):
    db = riffledb.connect(tmp_path)
    table = db.create_table("t", pa.table({"id": pa.array(range(50), pa.int64())}))
    table.add(pa.table({"id": pa.array(range(50, 60), pa.int64())}))
    perm = (
        permutation_builder(table)
        .filter("id >= 5")
        .split_random(counts=[20, 10], seed=np.uint64(3), split_names=["a", "b"])
        .shuffle(seed=4, clump_size=2)
        .execute()
    )
    metadata = perm.schema.metadata
    assert metadata[b"riffledb:base_version"] == b"2"
    assert json.loads(metadata[b"riffledb:recipe"]) == {
        "format": 2,
        "base": f"{tmp_path}/t.riffle",  # the base table's location
        "filter": "id >= 5",
        "split": {"counts": [20, 10], "kind": "random", "seed": 3, "names": ["a", "b"]},
        "shuffle": {"seed": 4, "clump_size": 2},
    }
    assert set(json.loads(metadata[b"riffledb:split_digests"])) == {"0", "1"}


def test_recipe_records_the_drawn_seeds(tmp_path):
    table = riffledb.connect(tmp_path).create_table("t", make_table(40).to_arrow())
    perm = permutation_builder(table).split_random(fixed=2).shuffle().execute()
    recipe = json.loads(perm.schema.metadata[b"riffledb:recipe"])
    seeds = (recipe["split"]["seed"], recipe["shuffle"]["seed"])
    assert all(isinstance(seed, int) and 0 <= seed < 2**64 for seed in seeds)
    again = (
        permutation_builder(table)
        .split_random(fixed=2, seed=seeds[0])
        .shuffle(seed=seeds[1])
        .execute()
    )
    assert result(again) == result(perm)
