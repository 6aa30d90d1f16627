"""The changed-customers journal on the real Redis: marks, takes after a cursor, trims; the
writers mark before they write (the job's OnlineWriter, Feast's writes through our store)."""

from __future__ import annotations

import pyarrow as pa
import redis as redis_lib
from feast import ValueType

from segmentation.journal import Journal, SegmentState, mark_changed
from segmentation.memberships import membership_prefix
from tests.support.segmentation.repo import FeastRepo, stored_rows
from xiva_source.feast_plugin.changed import MARK_CHUNK, journal_keys


def test_marks_are_taken_after_a_cursor_and_trimmed(redis_url: str, redis_ns: str) -> None:
    client = redis_lib.Redis.from_url(redis_url)
    journal = Journal(client, redis_ns, membership_prefix(redis_ns))
    assert journal.take(0) == (0, [])
    assert mark_changed(client, redis_ns, ["a", "b", "a"]) == 2
    seq, ids = journal.take(0)
    assert seq == 1 and sorted(ids or []) == ["a", "b"]
    mark_changed(client, redis_ns, ["b", "c"])  # b marked again: one entry, its latest number
    seq2, ids2 = journal.take(seq)
    assert seq2 == 2 and sorted(ids2 or []) == ["b", "c"]
    assert journal.count(0) == 3 and journal.count(seq2) == 0
    # Trimming keeps what the slowest segment has not passed.
    with client.pipeline(transaction=True) as tx:
        journal.queue_states(
            tx, {"x": SegmentState(seq, "t", "f"), "y": SegmentState(seq2, "t", "f")}
        )
        tx.execute()
    assert journal.trim() == 1  # only "a" (number 1) is behind both cursors
    assert sorted(journal.take(0)[1] or []) == ["b", "c"]
    journal.forget("x")
    assert journal.trim() == 2 and journal.take(0)[1] == []
    assert journal.states(["y", "z"]) == {"y": SegmentState(seq2, "t", "f"), "z": None}
    client.close()


def test_a_mark_of_many_customers_fits_luas_unpack_limit(redis_url: str, redis_ns: str) -> None:
    # A whole MARK_CHUNK in one script used to fail ("too many results to unpack": Lua's unpack
    # takes ~8,000 values, a chunk is two per member): every full load of 10,000 rows failed.
    client = redis_lib.Redis.from_url(redis_url)
    journal = Journal(client, redis_ns, membership_prefix(redis_ns))
    ids = [f"C{i:06d}" for i in range(2 * MARK_CHUNK + 7)]
    assert mark_changed(client, redis_ns, ids) == len(ids)
    seq, taken = journal.take(0)
    assert seq == 3  # one number per chunk of MARK_CHUNK
    assert sorted(taken or []) == ids
    client.close()


def test_a_full_journal_records_an_overflow(redis_url: str, redis_ns: str) -> None:
    client = redis_lib.Redis.from_url(redis_url)
    journal = Journal(client, redis_ns, membership_prefix(redis_ns))
    mark_changed(client, redis_ns, ["a", "b"], limit=2)
    assert journal.take(0) == (1, ["a", "b"])
    mark_changed(client, redis_ns, ["c"], limit=2)  # full: dropped, its number recorded
    assert journal.take(0) == (2, None) and journal.take(1) == (2, None)
    assert journal.take(2) == (2, [])  # a refresh past the overflow reads the journal again
    client.close()


def test_unreadable_state_reads_as_none(redis_url: str, redis_ns: str) -> None:
    client = redis_lib.Redis.from_url(redis_url)
    journal = Journal(client, redis_ns, membership_prefix(redis_ns))
    client.hset(journal.state_key, "s", "not json")
    assert journal.states(["s"]) == {"s": None}
    client.close()


def test_the_jobs_writer_marks_before_writing(seg_repo: FeastRepo) -> None:
    from xiva_source.jobs.writes import OnlineWriter

    store = seg_repo.store
    writer = OnlineWriter(store, store._get_provider().online_store)
    assert writer.bulk is not None
    client = writer.bulk.client
    journal = Journal(client, store.project, membership_prefix(store.project))
    before = journal.sequence()
    ids = ["C00003", "C00004"]
    rows = stored_rows(seg_repo.frame.loc[ids])
    fv = store.get_feature_view("customer_features")
    writer.write(
        fv, pa.Table.from_pandas(rows, preserve_index=False), {"customer_id": ValueType.STRING}
    )
    writer.flush()
    seq, marked = journal.take(before)
    assert seq == before + 2 and sorted(marked or []) == ids  # before the write, and after


def test_keys_share_the_memberships_prefix() -> None:
    assert journal_keys("shop")[:2] == (
        "segmentation:shop:changed",
        "segmentation:shop:changed:seq",
    )
    assert journal_keys("shop", cluster=True)[0] == "segmentation:{shop}:changed"
