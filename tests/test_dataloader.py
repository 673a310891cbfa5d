"""torch DataLoader workers under every start method: each row of a split exactly once.

For each start method (``fork``, ``spawn``, ``forkserver``) one ``spawn`` child runs every
scenario of that method (harness.dataloader_scenarios) — a table read through
``__getitems__``, ``Permutation.identity`` and a shuffled 70 % split — through
``DataLoader(num_workers=2, shuffle=True)`` with a batch size (33) that divides neither
999 nor 699, so the last short batch is checked too. The child reports each scenario's
batches; the checks run here. A scenario making no progress for
harness.hang.PROGRESS_TIMEOUT seconds is a failure (with the stacks of the child's
threads; its process group is killed), never a hang. One child per method, not per
scenario: importing torch in a fresh process takes seconds, and each child imports it
once.

The forkserver child preloads torch, riffledb and the harness into the fork server (what
docs/dataloader.md recommends), so its workers start fast; spawn workers import torch
each. Memory tables run under fork and forkserver (under forkserver their rows travel in
the pickle); they have three fragments and deleted rows, so row ids are not offsets.
"""

import collections
import math
import multiprocessing as mp

import pytest
from harness import hang
from harness.data import BATCH, KINDS, N_ROWS, check_rows, dataset, rows
from harness.dataloader_scenarios import STORES, dataloader_scenarios

import riffledb

torch = pytest.importorskip("torch")

METHODS = ["fork", "spawn", "forkserver"]

pytestmark = pytest.mark.skipif(
    not all(m in mp.get_all_start_methods() for m in METHODS),
    reason="needs fork, spawn and forkserver (Linux)",
)


@pytest.fixture(scope="module")
def db_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("dataloader")
    riffledb.connect(path).create_table("t", rows(0, N_ROWS))
    return str(path)


@pytest.fixture(scope="module")
def outcomes(db_path):
    """start method -> Outcome. The three children start together on first use (most
    of their time is spent importing torch, in parallel on separate processes)."""
    running = {}

    def get(method):
        if not running:
            for m in METHODS:
                running[m] = hang.Child(
                    dataloader_scenarios,
                    m,
                    db_path,
                    what=f"DataLoader scenarios ({m} workers)",
                )
        return running[method].outcome()

    yield get
    for child in running.values():  # kill any no test waited for (-k, -x)
        child.close()


def check_epoch(batches, expected, parent_pid, *, from_workers=True):
    """Every row of ``expected`` exactly once, whole rows, full batches but the last,
    produced by two worker processes."""
    got = collections.Counter(i for b in batches for i in b["id"])
    want = collections.Counter(expected)
    assert got == want, (
        f"missing {sorted((want - got).elements())[:10]}, "
        f"duplicated or foreign {sorted((got - want).elements())[:10]}"
    )
    for b in batches:
        check_rows(b["id"], b["x"])
    sizes = [len(b["id"]) for b in batches]
    n = len(expected)
    assert n % BATCH != 0
    assert sizes == [BATCH] * (n // BATCH) + [n % BATCH]
    if from_workers:
        pids = {b["pid"] for b in batches}
        assert len(pids) == 2 and parent_pid not in pids, pids
        assert {b["worker"] for b in batches} == {0, 1}
    # shuffle=True really shuffled: not the dataset's own order.
    assert [i for b in batches for i in b["id"]] != list(expected)


CASES = [
    (method, store, kind)
    for method in METHODS
    for store in STORES[method]
    for kind in KINDS
]


@pytest.mark.slow
@pytest.mark.parametrize("method,store,kind", CASES, ids=["-".join(c) for c in CASES])
def test_epoch_delivers_every_row_exactly_once(outcomes, method, store, kind):
    result = outcomes(method).get(f"{store}-{kind}")
    expected = result["expected"]
    assert len(expected) == (N_ROWS if kind != "split" else round(0.7 * N_ROWS))
    assert len(set(expected)) == len(expected)
    if store == "dir" and kind != "split":
        assert sorted(expected) == list(range(N_ROWS))
    check_epoch(result["batches"], expected, result["parent"])


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_persistent_workers_two_epochs(outcomes, method):
    result = outcomes(method).get("persistent")
    first, second = result["epochs"]
    for epoch in (first, second):
        check_epoch(epoch, result["expected"], result["parent"])
    # The same two workers served both epochs, in a different order.
    assert {b["pid"] for b in first} == {b["pid"] for b in second}
    assert [b["id"] for b in first] != [b["id"] for b in second]


def _check_distributed(ranks, expected, num_replicas):
    n = len(expected)
    per_rank = math.ceil(n / num_replicas)
    padding = per_rank * num_replicas - n
    seen = []
    for rank in ranks:
        assert len(rank) == per_rank
        seen.extend(rank)
    counts = collections.Counter(seen)
    assert set(counts) == set(expected), "the ranks together miss rows"
    # drop_last=False pads by repeating the first `padding` indices: exactly that many
    # rows are read twice, none more.
    assert sum(c - 1 for c in counts.values()) == padding
    assert all(c <= 2 for c in counts.values())
    for a in range(num_replicas):
        for b in range(a + 1, num_replicas):
            assert len(set(ranks[a]) & set(ranks[b])) <= padding


@pytest.mark.slow
def test_distributed_sampler_fork_workers(outcomes):
    """Two simulated ranks, each with its own two fork workers."""
    result = outcomes("fork").get("distributed")
    expected = result["expected"]
    assert len(expected) % 2 == 1  # so the sampler pads one row
    ranks = []
    for rank in result["ranks"]:
        ids = [i for b in rank["batches"] for i in b["id"]]
        # The batches are exactly the rows at the sampler's offsets, in its order.
        assert ids == [expected[i] for i in rank["indices"]]
        for b in rank["batches"]:
            check_rows(b["id"], b["x"])
        assert {b["pid"] for b in rank["batches"]} & {result["parent"]} == set()
        ranks.append(ids)
    _check_distributed(ranks, expected, 2)


@pytest.mark.parametrize("num_replicas", [2, 8])
def test_distributed_sampler_covers_split(tmp_db, num_replicas):
    """In process: DistributedSampler ranks over a Permutation, several epochs."""
    table = tmp_db.create_table("t", rows(0, N_ROWS))
    perm, collate, expected = dataset(table, "split")
    assert len(expected) % num_replicas != 0
    orders = []
    for epoch in range(2):
        ranks = []
        for rank in range(num_replicas):
            sampler = torch.utils.data.DistributedSampler(
                perm,
                num_replicas=num_replicas,
                rank=rank,
                shuffle=True,
                seed=5,
                drop_last=False,
            )
            sampler.set_epoch(epoch)
            loader = torch.utils.data.DataLoader(
                perm, batch_size=BATCH, sampler=sampler, collate_fn=collate
            )
            batches = list(loader)
            ids = [i for b in batches for i in b["id"]]
            assert ids == [expected[i] for i in sampler]
            for b in batches:
                check_rows(b["id"], b["x"])
            ranks.append(ids)
        _check_distributed(ranks, expected, num_replicas)
        orders.append(ranks)
    assert orders[0] != orders[1]  # set_epoch reshuffles
