"""Table.search(): the plain-scan query builder and the SQL filter language.

The golden cases are (filter, expected ids) pairs; each is checked three ways, since
search().where(), count_rows() and delete() share one filter language.
"""

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import riffledb

FRAG1 = 1 << 32

NAMES = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "o'brien", "iota"]
NAMES.append("kappa")
ALL = list(range(10))


def _golden_rows(ids):
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "x": pa.array([i * 0.5 for i in ids], pa.float64()),
            "name": pa.array([NAMES[i] for i in ids], pa.string()),
            "v": pa.array([None if i % 3 == 0 else i * 10 for i in ids], pa.int64()),
            "flag": pa.array([i % 2 == 0 for i in ids], pa.bool_()),
            "a b": pa.array([100 - i for i in ids], pa.int32()),
        }
    )


GOLDEN = _golden_rows(ALL)


@pytest.fixture
def tbl(db):
    """Ids 0..9 in two fragments: row ids 0..5, then 2**32 .. 2**32 + 3."""
    t = db.create_table("golden", _golden_rows(ALL[:6]))
    t.add(_golden_rows(ALL[6:]))
    return t


def _not(ids):
    return [i for i in ALL if i not in ids]


FILTERS = [
    # comparisons
    ("id = 3", [3]),
    ("id != 3", _not([3])),
    ("id <> 3", _not([3])),
    ("id < 3", [0, 1, 2]),
    ("id <= 3", [0, 1, 2, 3]),
    ("id > 7", [8, 9]),
    ("id >= 7", [7, 8, 9]),
    ("3 < id", [4, 5, 6, 7, 8, 9]),
    ("x >= 2.5", [5, 6, 7, 8, 9]),
    ("x = 1.5", [3]),
    ("id >= 3 AND id <= 3", [3]),
    ("name = 'alpha'", [0]),
    ("name > 'i'", [5, 7, 8, 9]),
    ("name = 'o''brien'", [7]),
    ("id = 42", []),
    # boolean logic and precedence
    ("id > 2 AND id < 5", [3, 4]),
    ("id < 2 OR id > 7", [0, 1, 8, 9]),
    ("NOT id < 8", [8, 9]),
    ("NOT (id < 2 OR id > 7)", [2, 3, 4, 5, 6, 7]),
    ("id > 2 AND (id < 4 OR id = 9)", [3, 9]),
    ("id < 2 OR id > 7 AND id < 9", [0, 1, 8]),
    ("TRUE", ALL),
    ("FALSE", []),
    ("flag", [0, 2, 4, 6, 8]),
    ("flag = true", [0, 2, 4, 6, 8]),
    ("NOT flag", [1, 3, 5, 7, 9]),
    ("flag AND id > 5", [6, 8]),
    # IN, BETWEEN, LIKE
    ("id IN (1, 5, 9)", [1, 5, 9]),
    ("id NOT IN (1, 5, 9)", _not([1, 5, 9])),
    ("id IN (42)", []),
    ("name IN ('beta', 'iota')", [1, 8]),
    ("id BETWEEN 3 AND 5", [3, 4, 5]),
    ("id NOT BETWEEN 3 AND 5", _not([3, 4, 5])),
    ("name LIKE 'e%'", [4, 6]),
    ("name LIKE '%ta'", [1, 3, 5, 6, 8]),
    ("name LIKE '_eta'", [1, 5]),
    ("name NOT LIKE '%a'", [4, 7]),
    # NULL semantics (three-valued logic; only TRUE rows match)
    ("v IS NULL", [0, 3, 6, 9]),
    ("v IS NOT NULL", [1, 2, 4, 5, 7, 8]),
    ("v > 40", [5, 7, 8]),
    ("NOT (v > 40)", [1, 2, 4]),
    ("v > 40 OR id = 0", [0, 5, 7, 8]),
    ("v > 40 OR v IS NULL", [0, 3, 5, 6, 7, 8, 9]),
    ("v IN (10, 20)", [1, 2]),
    ("v NOT IN (10, 20)", [4, 5, 7, 8]),
    # arithmetic and CAST
    ("id + 1 = 4", [3]),
    ("id * 2 > 15", [8, 9]),
    ("id - 10 = -4", [6]),
    ("id % 3 = 0", [0, 3, 6, 9]),
    ("x * 2 = id", ALL),
    ("x / 2 = 1.0", [4]),
    ("(id + 1) * 2 = 8", [3]),
    ("CAST(id AS DOUBLE) = 4.0", [4]),
    ("CAST(id AS VARCHAR) = '7'", [7]),
    # quoted identifiers
    ("`a b` = 95", [5]),
    ('"a b" < 93', [8, 9]),
    ("`id` = 2", [2]),
    # system columns
    ("_rowid = 4294967296", [6]),
    ("_rowid >= 4294967296", [6, 7, 8, 9]),
    ("_rowid IN (1, 4294967297)", [1, 7]),
    ("_rowoffset < 3", [0, 1, 2]),
    ("_rowoffset = 7", [7]),
    ("_rowoffset IN (0, 9)", [0, 9]),
    # keywords are case-insensitive
    ("id > 2 and id < 5", [3, 4]),
    ("id < 1 or not id < 9", [0, 9]),
    ("v is null", [0, 3, 6, 9]),
    ("v is not null and id < 3", [1, 2]),
    ("id in (1, 2)", [1, 2]),
    ("id between 1 and 2", [1, 2]),
    ("name like 'g%'", [2]),
]

FILTER_IDS = [f for f, _ in FILTERS]


@pytest.mark.parametrize(("where", "expected"), FILTERS, ids=FILTER_IDS)
def test_where(tbl, where, expected):
    out = tbl.search().where(where).to_arrow()
    assert out.schema == GOLDEN.schema
    assert out["id"].to_pylist() == expected
    assert out.equals(GOLDEN.take(pa.array(expected, pa.int64())))


@pytest.mark.parametrize(("where", "expected"), FILTERS, ids=FILTER_IDS)
def test_count_rows_filter(tbl, where, expected):
    n = tbl.count_rows(where)
    assert type(n) is int
    assert n == len(expected)


@pytest.mark.parametrize(("where", "expected"), FILTERS, ids=FILTER_IDS)
def test_delete_filter(tbl, where, expected):
    # Guess: a delete matching no rows still commits a version (as Lance does).
    tbl.delete(where)
    assert tbl.version == 3
    assert tbl.to_arrow()["id"].to_pylist() == _not(expected)


def test_rowoffset_after_delete(tbl):
    tbl.delete("id IN (0, 2)")
    assert tbl.search().where("_rowoffset < 2").to_arrow()["id"].to_pylist() == [1, 3]
    assert tbl.count_rows("_rowoffset >= 6") == 2
    rowids = tbl.search().where("_rowid < 4").with_row_id(True).to_arrow()["_rowid"]
    assert rowids.to_pylist() == [1, 3]


# ---------------------------------------------------------------------------------------
# builder and outputs


def test_search_returns_everything_in_order(tbl):
    out = tbl.search().to_arrow()
    assert isinstance(out, pa.Table)
    assert out.equals(GOLDEN)


def test_no_default_limit(db):
    # LanceDB's vector search defaults to 10 rows; a plain scan here has no limit.
    t = db.create_table("big", pa.table({"id": pa.array(range(1000), pa.int64())}))
    out = t.search().to_arrow()
    assert out["id"].to_pylist() == list(range(1000))
    assert len(t.search().where("id >= 500").to_list()) == 500


def test_builder_methods_chain(tbl):
    q = tbl.search()
    for step in [
        lambda q: q.where("id > 0"),
        lambda q: q.select(["id"]),
        lambda q: q.limit(5),
        lambda q: q.offset(1),
        lambda q: q.with_row_id(True),
    ]:
        nxt = step(q)
        assert type(nxt) is type(q)
        q = nxt
    out = q.to_arrow()
    assert out.column_names == ["id", "_rowid"]
    assert out["id"].to_pylist() == [2, 3, 4, 5, 6]
    assert out["_rowid"].to_pylist() == [2, 3, 4, 5, FRAG1]


def test_select_list_order(tbl):
    out = tbl.search().select(["name", "id"]).to_arrow()
    assert out.column_names == ["name", "id"]
    assert out.schema.field("id").type == pa.int64()
    assert out["name"].to_pylist() == NAMES
    assert out["id"].to_pylist() == ALL


def test_select_quoted_name_in_list(tbl):
    out = tbl.search().select(["a b"]).limit(2).to_arrow()
    assert out.schema == pa.schema([("a b", pa.int32())])
    assert out["a b"].to_pylist() == [100, 99]


def test_select_dict_expressions(tbl):
    out = (
        tbl.search()
        .select(
            {
                "double_id": "id * 2",
                "name": "name",
                "xf": "CAST(id AS DOUBLE)",
                "ab1": "`a b` + 1",
                "parity": "id % 2",
            }
        )
        .where("id < 4")
        .to_arrow()
    )
    assert out.column_names == ["double_id", "name", "xf", "ab1", "parity"]
    assert out.schema.field("double_id").type == pa.int64()
    assert out.schema.field("xf").type == pa.float64()
    assert out.schema.field("parity").type == pa.int64()
    assert out["double_id"].to_pylist() == [0, 2, 4, 6]
    assert out["name"].to_pylist() == NAMES[:4]
    assert out["xf"].to_pylist() == [0.0, 1.0, 2.0, 3.0]
    assert out["ab1"].to_pylist() == [101, 100, 99, 98]
    assert out["parity"].to_pylist() == [0, 1, 0, 1]


def test_select_list_never_computes(tbl):
    # Regression: select(["id * 100"]) computed an expression; a list names columns, as in
    # LanceDB, and expressions go in a dict.
    with pytest.raises(riffledb.errors.InvalidError) as info:
        tbl.search().select(["id * 100"]).to_arrow()
    assert str(info.value) == (
        "Column 'id * 100' does not exist; available columns: id, x, name, v, flag, a b"
    )
    out = tbl.search().select({"id * 100": "id * 100"}).limit(2).to_arrow()
    assert out.to_pydict() == {"id * 100": [0, 100]}


@pytest.mark.parametrize("columns", [[1, 2], ["id", 2], ["id", None]])
def test_select_list_of_non_names_is_type_error(tbl, columns):
    # Regression: select([1, 2]) returned constant columns.
    position = next(i for i, c in enumerate(columns) if not isinstance(c, str))
    with pytest.raises(riffledb.errors.RiffledbTypeError) as info:
        tbl.search().select(columns)
    assert str(info.value) == (
        f"columns must be a list of str, got {type(columns[position]).__name__} "
        f"{columns[position]!r} at position {position}"
    )


def test_take_select_rejects_a_dict(tbl):
    # Sibling: a take's select(dict) used the keys as column names.
    with pytest.raises(riffledb.errors.RiffledbTypeError) as info:
        tbl.take_offsets([0]).select({"twice": "id * 2"})
    assert str(info.value) == (
        "A take selects columns by name: pass a list of str, got a dict (SQL "
        "expressions are only supported in search().select)"
    )


def test_filter_failing_while_scanning_names_filter_and_table(db):
    # Regression: "divide by zero" did not say which filter, nor which table.
    t = db.create_table("t", pa.table({"x": pa.array([1, 0], pa.int64())}))
    where = "10 / x > 1"
    location = "memory://t" if db.uri == "memory://" else f"{db.uri}/t.riffle"
    expected = (
        f"Filter '{where}' failed: divide by zero (scanning {location} at version 1)"
    )
    for run in (
        lambda: t.search().where(where).to_arrow(),
        lambda: t.count_rows(where),
        lambda: t.delete(where),
    ):
        with pytest.raises(riffledb.errors.InvalidError) as info:
            run()
        assert str(info.value) == expected
    with pytest.raises(riffledb.errors.InvalidError) as info:
        t.search().select({"big": "x * 9223372036854775807 * 2"}).to_arrow()
    assert str(info.value) == (
        "Column 'big' = 'x * 9223372036854775807 * 2' failed: overflow (scanning "
        f"{location} at version 1)"
    )
    assert t.version == 1


def test_decimal_column_compares_with_number_literals(db):
    # Regression: `dec > 1` failed with "Precision is not great enough".
    from decimal import Decimal

    prices = [Decimal("1.50"), Decimal("0.10"), Decimal("999.99"), None]
    t = db.create_table(
        "t",
        pa.table({"id": [0, 1, 2, 3], "dec": pa.array(prices, pa.decimal128(5, 2))}),
    )

    def ids(where):
        return t.search().where(where).select(["id"]).to_arrow()["id"].to_pylist()

    assert ids("dec > 1") == [0, 2]
    assert ids("dec < 100000") == [0, 1, 2]
    assert ids("dec = 0.1") == [1]
    assert ids("dec >= 1.5") == [0, 2]
    assert ids("dec > 0.125") == [0, 2]
    assert ids("dec IN (0.1, 1.5)") == [0, 1]
    assert ids("dec IN (1, 999.99)") == [2]
    assert ids("dec > 0") == [0, 1, 2]  # regression: a zero literal aborted the process
    assert ids("dec >= -0.0") == [0, 1, 2]
    with pytest.raises(riffledb.errors.InvalidError) as info:
        ids("dec / 0 > 1")
    assert str(info.value).startswith("Filter 'dec / 0 > 1' failed: ")
    assert ids("dec * 2 > 3") == [2]
    assert t.count_rows("dec > 1") == 2
    out = t.search().select({"twice": "dec * 2"}).limit(1).to_arrow()
    assert out["twice"].to_pylist() == [Decimal("3.00")]


def test_where_on_unselected_column(tbl):
    out = tbl.search().select(["name"]).where("id > 7").to_arrow()
    assert out.column_names == ["name"]
    assert out["name"].to_pylist() == ["iota", "kappa"]


@pytest.mark.parametrize(
    ("offset", "limit", "expected"),
    [
        (None, 3, [0, 1, 2]),
        (None, 100, ALL),
        (8, None, [8, 9]),
        (2, 3, [2, 3, 4]),
        (5, 3, [5, 6, 7]),  # crosses the fragment boundary
        (9, 5, [9]),
        (10, None, []),
        (20, 3, []),
    ],
)
def test_limit_offset(tbl, offset, limit, expected):
    q = tbl.search()
    if offset is not None:
        q = q.offset(offset)
    if limit is not None:
        q = q.limit(limit)
    out = q.to_arrow()
    assert out.schema == GOLDEN.schema
    assert out["id"].to_pylist() == expected


def test_limit_offset_apply_after_filter(tbl):
    assert tbl.search().where("id > 3").limit(2).to_arrow()["id"].to_pylist() == [4, 5]
    q = tbl.search().where("id % 2 = 1").offset(1).limit(2)
    assert q.to_arrow()["id"].to_pylist() == [3, 5]
    # The order builder methods are called in does not matter.
    q = tbl.search().limit(2).offset(1).where("id % 2 = 1")
    assert q.to_arrow()["id"].to_pylist() == [3, 5]


def test_with_row_id(tbl):
    out = tbl.search().with_row_id(True).to_arrow()
    assert out.column_names == GOLDEN.column_names + ["_rowid"]
    assert out.schema.field("_rowid").type == pa.uint64()
    expected = [0, 1, 2, 3, 4, 5] + [FRAG1 + i for i in range(4)]
    assert out["_rowid"].to_pylist() == expected
    assert out.drop_columns(["_rowid"]).equals(GOLDEN)


def test_with_row_id_false(tbl):
    out = tbl.search().with_row_id(False).to_arrow()
    assert out.column_names == GOLDEN.column_names


def test_with_row_id_select_where(tbl):
    out = tbl.search().select(["name"]).where("id >= 5").with_row_id(True).to_arrow()
    assert out.column_names == ["name", "_rowid"]
    assert out.to_pydict() == {
        "name": NAMES[5:],
        "_rowid": [5, FRAG1, FRAG1 + 1, FRAG1 + 2, FRAG1 + 3],
    }


def test_to_batches(tbl):
    batches = list(tbl.search().where("id > 1").select(["id", "name"]).to_batches())
    assert batches
    assert all(isinstance(b, pa.RecordBatch) for b in batches)
    combined = pa.Table.from_batches(batches)
    assert combined.column_names == ["id", "name"]
    assert combined["id"].to_pylist() == list(range(2, 10))
    assert combined["name"].to_pylist() == NAMES[2:]


def test_to_batches_empty_result(tbl):
    batches = list(tbl.search().where("id > 100").to_batches())
    assert sum(b.num_rows for b in batches) == 0
    assert all(b.schema == GOLDEN.schema for b in batches)


def test_to_list(tbl):
    rows = tbl.search().where("id IN (0, 3)").select(["id", "v", "a b"]).to_list()
    assert rows == [{"id": 0, "v": None, "a b": 100}, {"id": 3, "v": None, "a b": 97}]


def test_to_pandas(tbl):
    pd = pytest.importorskip("pandas")
    df = tbl.search().where("id > 6").to_pandas()
    assert isinstance(df, pd.DataFrame)
    pd.testing.assert_frame_equal(df, GOLDEN.take([7, 8, 9]).to_pandas())


def test_search_on_empty_table(db):
    t = db.create_table("empty", schema=GOLDEN.schema)
    out = t.search().where("id > 1").to_arrow()
    assert out.num_rows == 0
    assert out.schema == GOLDEN.schema
    assert t.count_rows("id > 1") == 0


def test_search_reads_checked_out_version(tbl):
    tbl.delete("id < 5")
    tbl.checkout(2)
    assert tbl.search().where("id < 5").to_arrow()["id"].to_pylist() == [0, 1, 2, 3, 4]
    assert tbl.count_rows("id < 5") == 5


# ---------------------------------------------------------------------------------------
# errors


BAD_SYNTAX = [
    "id >",
    "id = = 3",
    "(id = 1",
    "id = 1)",
    "id = 'unterminated",
    "id IN (1, 2",
    "AND id = 1",
    "id 3",
    "id BETWEEN 1",
]


@pytest.mark.parametrize("bad", BAD_SYNTAX)
def test_parse_error_where(tbl, bad):
    with pytest.raises(ValueError, match="position"):
        tbl.search().where(bad).to_arrow()


@pytest.mark.parametrize("bad", BAD_SYNTAX)
def test_parse_error_count_rows(tbl, bad):
    with pytest.raises(ValueError, match="position"):
        tbl.count_rows(bad)


@pytest.mark.parametrize("bad", BAD_SYNTAX)
def test_parse_error_delete_changes_nothing(tbl, bad):
    with pytest.raises(ValueError, match="position"):
        tbl.delete(bad)
    assert tbl.version == 2
    assert tbl.count_rows() == 10


@pytest.mark.parametrize("empty", ["", "   "])
def test_delete_empty_filter_deletes_nothing(tbl, empty):
    # Guess: an empty predicate is an error for delete (never "delete everything"), as
    # in Lance; where("") / count_rows("") are left unspecified.
    with pytest.raises(ValueError):
        tbl.delete(empty)
    assert tbl.version == 2
    assert tbl.count_rows() == 10


@pytest.mark.parametrize(
    ("where", "column"),
    [
        ("nosuchcol = 1", "nosuchcol"),
        ("id = 1 AND missing_col > 2", "missing_col"),
        ("`no such` = 1", "no such"),
        ("Id = 1", "Id"),  # Guess: column names are case-sensitive, as in Lance.
    ],
)
def test_unknown_column_in_filter(tbl, where, column):
    with pytest.raises(ValueError) as info:
        tbl.search().where(where).to_arrow()
    assert column in str(info.value)
    with pytest.raises(ValueError) as info:
        tbl.count_rows(where)
    assert column in str(info.value)
    with pytest.raises(ValueError) as info:
        tbl.delete(where)
    assert column in str(info.value)
    assert tbl.version == 2


def test_unknown_column_in_select(tbl):
    # Guess: an unknown projected column is a ValueError, like an unknown filter column.
    with pytest.raises(ValueError) as info:
        tbl.search().select(["id", "ghost_col"]).to_arrow()
    assert "ghost_col" in str(info.value)
    with pytest.raises(ValueError) as info:
        tbl.search().select({"y": "ghost_col + 1"}).to_arrow()
    assert "ghost_col" in str(info.value)


# ---------------------------------------------------------------------------------------
# property: count_rows(filter) == pyarrow.compute evaluation of the same predicate

_CMP = {
    "=": pc.equal,
    "!=": pc.not_equal,
    "<": pc.less,
    "<=": pc.less_equal,
    ">": pc.greater,
    ">=": pc.greater_equal,
}


@st.composite
def _predicate(draw, cols, depth=0):
    """Returns (sql, fn) where fn(table) -> boolean array with SQL NULL semantics."""
    kinds = ["cmp", "null", "in", "between"] + (["and", "or", "not"] if depth < 2 else [])
    kind = draw(st.sampled_from(kinds))
    col = draw(st.sampled_from(cols))
    lit = st.integers(-20, 20)
    if kind == "cmp":
        op, v = draw(st.sampled_from(sorted(_CMP))), draw(lit)
        return f"{col} {op} {v}", lambda t: _CMP[op](t[col], pa.scalar(v))
    if kind == "null":
        neg = draw(st.booleans())
        sql = f"{col} IS {'NOT ' if neg else ''}NULL"
        return sql, (lambda t: pc.is_valid(t[col])) if neg else (
            lambda t: pc.is_null(t[col])
        )
    if kind == "in":
        vals = draw(st.lists(lit, min_size=1, max_size=4))

        def f_in(t):
            # OR of equalities: NULL IN (...) is NULL, unlike pc.is_in.
            out = pc.equal(t[col], pa.scalar(vals[0]))
            for v in vals[1:]:
                out = pc.or_kleene(out, pc.equal(t[col], pa.scalar(v)))
            return out

        return f"{col} IN ({', '.join(map(str, vals))})", f_in
    if kind == "between":
        lo, hi = draw(lit), draw(lit)

        def f_between(t):
            return pc.and_kleene(
                pc.greater_equal(t[col], pa.scalar(lo)),
                pc.less_equal(t[col], pa.scalar(hi)),
            )

        return f"{col} BETWEEN {lo} AND {hi}", f_between
    if kind == "not":
        sql, fn = draw(_predicate(cols, depth + 1))
        return f"NOT ({sql})", lambda t: pc.invert(fn(t))
    (ls, lf), (rs, rf) = (
        draw(_predicate(cols, depth + 1)),
        draw(_predicate(cols, depth + 1)),
    )
    if kind == "and":
        return f"({ls}) AND ({rs})", lambda t: pc.and_kleene(lf(t), rf(t))
    return f"({ls}) OR ({rs})", lambda t: pc.or_kleene(lf(t), rf(t))


@st.composite
def _table_and_predicates(draw):
    ncols = draw(st.integers(1, 3))
    names = [f"c{i}" for i in range(ncols)]
    rnd = draw(st.randoms(use_true_random=False))
    null_rate = draw(st.sampled_from([0.0, 0.2]))

    def chunk(n):
        return pa.table(
            {
                c: pa.array(
                    [
                        None if rnd.random() < null_rate else rnd.randint(-20, 20)
                        for _ in range(n)
                    ],
                    pa.int64(),
                )
                for c in names
            }
        )

    parts = [chunk(draw(st.integers(0, 300))) for _ in range(draw(st.integers(1, 3)))]
    preds = draw(st.lists(_predicate(names), min_size=1, max_size=4))
    return parts, preds


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=_table_and_predicates())
def test_count_rows_matches_pyarrow_compute(case):
    parts, preds = case
    t = riffledb.connect("memory://").create_table("p", parts[0])
    for part in parts[1:]:
        t.add(part)
    model = pa.concat_tables(parts)
    for sql, fn in preds:
        mask = fn(model)
        expected = mask.to_pylist().count(True)
        assert t.count_rows(sql) == expected, sql
        got = t.search().where(sql).to_arrow()
        assert got.equals(model.filter(pc.fill_null(mask, False))), sql
    sql, fn = preds[0]
    t.delete(sql)
    assert t.to_arrow().equals(model.filter(pc.invert(pc.fill_null(fn(model), False))))
