"""ContactStore: the contact life cycle, its ordered route history, races, and paging."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta, timezone

import pytest

from orchestrator.persistence import (
    ContactRecord,
    ContactStatus,
    Database,
    DuplicateContactError,
    NotFoundError,
    RouteEventKind,
    TransitionError,
    VersionConflictError,
)
from routing.model import Channel

Kind = RouteEventKind
T0 = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def create(db: Database, contact_id: str, *, queue: str = "billing", t: float = 0) -> ContactRecord:
    return db.contacts.create(
        contact_id=contact_id,
        queue=queue,
        channel=Channel.VOICE,
        caller_region="es",
        landing_site="madrid",
        at=at(t),
    )


def test_a_new_contact_is_queued_with_its_offer_in_the_history(db: Database) -> None:
    created = db.contacts.create(
        queue="billing",
        channel=Channel.CHAT,
        caller_region="es",
        landing_site="madrid",
        at=at(0),
        detail={"customer": "+34600000001"},
    )

    contact = db.contacts.get(created.id)

    assert contact.status is ContactStatus.QUEUED
    assert (contact.queue, contact.channel, contact.caller_region, contact.landing_site) == (
        "billing",
        Channel.CHAT,
        "es",
        "madrid",
    )
    assert contact.created_at == at(0)
    assert contact.serving_site is contact.serving_agent is contact.answered_at is None
    assert [(e.seq, e.kind, e.site, e.detail) for e in contact.history] == [
        (1, Kind.OFFERED, "madrid", {"customer": "+34600000001"})
    ]


def test_an_answered_contact_carries_its_times_and_its_agent(db: Database) -> None:
    create(db, "c1")
    db.contacts.record("c1", Kind.RESERVED, at=at(5), site="paris", agent="bob")
    db.contacts.record("c1", Kind.TRANSFERRED, at=at(6), site="paris", detail={"from": "madrid"})
    db.contacts.record("c1", Kind.CONFIRMED, at=at(9), site="paris", agent="bob")
    finished = db.contacts.record("c1", Kind.FINISHED, at=at(200))

    contact = db.contacts.get("c1")

    assert finished.status is contact.status is ContactStatus.FINISHED
    assert (contact.serving_site, contact.serving_agent) == ("paris", "bob")
    assert (contact.reserved_at, contact.answered_at, contact.ended_at) == (at(5), at(9), at(200))
    assert contact.abandoned_at is None
    assert [(e.seq, e.kind) for e in contact.history] == [
        (1, Kind.OFFERED),
        (2, Kind.RESERVED),
        (3, Kind.TRANSFERRED),
        (4, Kind.CONFIRMED),
        (5, Kind.FINISHED),
    ]
    assert contact.history[2].detail == {"from": "madrid"}
    assert contact.last_seq == 5


def test_history_keeps_the_order_events_were_recorded_in_even_when_clocks_disagree(
    db: Database,
) -> None:
    create(db, "c1", t=10)
    db.contacts.record("c1", Kind.RESERVED, at=at(12), site="madrid", agent="ana")
    # The site's clock is a little behind the router's.
    db.contacts.record("c1", Kind.REJECTED, at=at(11), site="madrid", agent="ana")
    db.contacts.record("c1", Kind.QUEUED, at=at(11), site="madrid")

    history = db.contacts.get("c1").history

    assert [e.kind for e in history] == [Kind.OFFERED, Kind.RESERVED, Kind.REJECTED, Kind.QUEUED]
    assert [e.at for e in history] == [at(10), at(12), at(11), at(11)]


def test_a_rejected_or_unanswered_reservation_puts_the_contact_back_in_queue(
    db: Database,
) -> None:
    create(db, "c1")
    db.contacts.record("c1", Kind.RESERVED, at=at(1), site="madrid", agent="ana")
    rejected = db.contacts.record("c1", Kind.REJECTED, at=at(2), site="madrid", agent="ana")
    assert rejected.status is ContactStatus.QUEUED
    assert rejected.serving_agent is rejected.reserved_at is None

    db.contacts.record("c1", Kind.RESERVED, at=at(3), site="paris", agent="bob")
    redirected = db.contacts.record("c1", Kind.REDIRECTED, at=at(20), site="paris", agent="bob")
    assert redirected.status is ContactStatus.QUEUED
    assert redirected.serving_site is redirected.serving_agent is None

    db.contacts.record("c1", Kind.RESERVED, at=at(21), site="paris", agent="eve")
    answered = db.contacts.record("c1", Kind.CONFIRMED, at=at(22))
    assert (answered.status, answered.serving_agent, answered.answered_at) == (
        ContactStatus.CONNECTED,
        "eve",
        at(22),
    )


def test_an_answer_after_a_transfer_back_to_queue_keeps_the_first_answer_time(
    db: Database,
) -> None:
    create(db, "c1")
    db.contacts.record("c1", Kind.RESERVED, at=at(1), site="madrid", agent="ana")
    db.contacts.record("c1", Kind.CONFIRMED, at=at(2))
    db.contacts.record("c1", Kind.QUEUED, at=at(60), site="madrid", detail={"by": "ana"})
    db.contacts.record("c1", Kind.RESERVED, at=at(61), site="madrid", agent="luis")
    second = db.contacts.record("c1", Kind.CONFIRMED, at=at(70))

    assert (second.serving_agent, second.answered_at) == ("luis", at(2))


def test_an_abandon_ends_the_contact(db: Database) -> None:
    create(db, "c1")
    db.contacts.record("c1", Kind.RESERVED, at=at(1), site="madrid", agent="ana")

    abandoned = db.contacts.record("c1", Kind.ABANDONED, at=at(4))

    assert abandoned.status is ContactStatus.ABANDONED
    assert abandoned.abandoned_at == abandoned.ended_at == at(4)


@pytest.mark.parametrize(
    ("steps", "refused"),
    [
        ([], Kind.CONFIRMED),
        ([], Kind.FINISHED),
        ([], Kind.OFFERED),
        ([(Kind.RESERVED, "ana")], Kind.RESERVED),
        ([(Kind.ABANDONED, None)], Kind.RESERVED),
        ([(Kind.ABANDONED, None)], Kind.TRANSFERRED),
        ([(Kind.RESERVED, "ana"), (Kind.CONFIRMED, None), (Kind.FINISHED, None)], Kind.QUEUED),
        ([(Kind.RESERVED, "ana"), (Kind.CONFIRMED, None)], Kind.ABANDONED),
    ],
    ids=[
        "confirm-unreserved",
        "finish-unanswered",
        "offer-again",
        "reserve-twice",
        "reserve-abandoned",
        "transfer-abandoned",
        "queue-finished",
        "abandon-connected",
    ],
)
def test_an_event_the_status_does_not_allow_is_refused_and_not_recorded(
    db: Database, steps: list[tuple[Kind, str | None]], refused: Kind
) -> None:
    create(db, "c1")
    for kind, agent in steps:
        db.contacts.record("c1", kind, at=at(1), site="madrid", agent=agent)
    before = db.contacts.get("c1")

    with pytest.raises(TransitionError):
        db.contacts.record("c1", refused, at=at(2), site="madrid", agent="bob")

    assert db.contacts.get("c1") == before


def test_a_reservation_names_its_site_and_agent(db: Database) -> None:
    create(db, "c1")
    with pytest.raises(ValueError, match="site and agent"):
        db.contacts.record("c1", Kind.RESERVED, at=at(1), site="madrid")


def test_a_retried_create_does_not_make_a_second_contact(db: Database) -> None:
    create(db, "c1")

    with pytest.raises(DuplicateContactError):
        create(db, "c1", queue="other")

    assert db.contacts.get("c1").queue == "billing"
    assert len(db.contacts.list().items) == 1


def test_unknown_contacts_are_not_found(db: Database) -> None:
    with pytest.raises(NotFoundError):
        db.contacts.get("nobody")
    with pytest.raises(NotFoundError):
        db.contacts.record("nobody", Kind.ABANDONED, at=at(1))


def test_an_event_decided_on_stale_state_is_a_conflict(db: Database) -> None:
    seen = create(db, "c1").last_seq
    db.contacts.record("c1", Kind.RESERVED, at=at(1), site="madrid", agent="ana")

    with pytest.raises(VersionConflictError):
        db.contacts.record("c1", Kind.ABANDONED, at=at(2), expected_seq=seen)

    assert db.contacts.get("c1").status is ContactStatus.RESERVED
    db.contacts.record("c1", Kind.ABANDONED, at=at(2), expected_seq=seen + 1)


def test_racing_writers_on_one_contact_never_lose_or_duplicate_an_event(db: Database) -> None:
    create(db, "c1")
    writers = 6
    start = threading.Barrier(writers)
    recorded: list[int] = []
    conflicts: list[int] = []

    def write(n: int) -> None:
        start.wait()
        try:
            db.contacts.record("c1", Kind.TRANSFERRED, at=at(n), detail={"writer": n})
            recorded.append(n)
        except VersionConflictError:
            conflicts.append(n)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    history = db.contacts.get("c1").history
    assert len(recorded) + len(conflicts) == writers
    assert recorded
    assert [e.seq for e in history] == list(range(1, len(recorded) + 2))
    assert sorted(e.detail["writer"] for e in history[1:]) == sorted(recorded)


def test_contacts_are_listed_oldest_first_in_pages_by_status_and_queue(db: Database) -> None:
    for n in range(7):
        create(db, f"c{n}", queue="billing" if n % 2 else "tech", t=n)
    # Two contacts at the same instant are ordered by id.
    create(db, "c3b", queue="billing", t=3)
    for contact_id in ("c1", "c5"):
        db.contacts.record(contact_id, Kind.ABANDONED, at=at(30))

    def all_pages(**filters: object) -> list[list[str]]:
        pages, cursor = [], None
        while True:
            page = db.contacts.list(limit=2, cursor=cursor, **filters)  # type: ignore[arg-type]
            pages.append([c.id for c in page.items])
            if page.next_cursor is None:
                return pages
            cursor = page.next_cursor

    assert all_pages() == [["c0", "c1"], ["c2", "c3"], ["c3b", "c4"], ["c5", "c6"]]
    assert all_pages(queue="billing") == [["c1", "c3"], ["c3b", "c5"]]
    assert all_pages(status=ContactStatus.QUEUED, queue="billing") == [["c3", "c3b"]]
    assert all_pages(status=ContactStatus.ABANDONED) == [["c1", "c5"]]


def test_open_contacts_come_with_their_histories_oldest_first_in_pages(db: Database) -> None:
    for n in range(5):
        create(db, f"c{n}", t=n)
    create(db, "c2b", t=2)  # the same instant as c2: after it, by id
    db.contacts.record("c1", Kind.RESERVED, at=at(10), site="madrid", agent="ana")
    db.contacts.record("c3", Kind.ABANDONED, at=at(11))
    db.contacts.record("c4", Kind.RESERVED, at=at(12), site="paris", agent="bob")
    db.contacts.record("c4", Kind.CONFIRMED, at=at(13))

    def read(*statuses: ContactStatus, page: int) -> dict[str, list[str]]:
        details = db.contacts.details(statuses, page=page)
        return {d.id: [str(e.kind) for e in d.history] for d in details}

    for page in (1, 2, 10):  # a page boundary between c2 and c2b, at the end, none
        found = read(ContactStatus.QUEUED, ContactStatus.RESERVED, page=page)
        assert list(found) == ["c0", "c1", "c2", "c2b"]
        assert found["c1"] == ["offered", "reserved"] and found["c2b"] == ["offered"]
    assert read(ContactStatus.CONNECTED, page=3) == {"c4": ["offered", "reserved", "confirmed"]}
    # Each history is the one its row's status came from, as get() reads it.
    for detail in db.contacts.details([ContactStatus.RESERVED]):
        assert detail.history == db.contacts.get(detail.id).history


def test_contacts_arriving_while_a_client_pages_neither_repeat_nor_shift_pages(
    db: Database,
) -> None:
    for n in range(4):
        create(db, f"c{n}", t=n)
    first = db.contacts.list(limit=2)
    create(db, "early", t=0.5)  # sorts into the page already read
    create(db, "late", t=99)

    second = db.contacts.list(limit=2, cursor=first.next_cursor)
    third = db.contacts.list(limit=2, cursor=second.next_cursor)

    assert [c.id for c in first.items + second.items + third.items] == [
        "c0",
        "c1",
        "c2",
        "c3",
        "late",
    ]
    assert third.next_cursor is None


def test_a_malformed_cursor_or_limit_is_refused(db: Database) -> None:
    with pytest.raises(ValueError, match="malformed cursor"):
        db.contacts.list(cursor="not a cursor")
    with pytest.raises(ValueError, match="limit"):
        db.contacts.list(limit=0)


def test_times_come_back_in_utc_whatever_zone_they_were_given_in(db: Database) -> None:
    madrid_summer = timezone(timedelta(hours=2))
    create(db, "c1")
    db.contacts.record(
        "c1", Kind.ABANDONED, at=datetime(2025, 3, 14, 11, 0, 30, tzinfo=madrid_summer)
    )

    assert db.contacts.get("c1").abandoned_at == at(30)
    assert db.contacts.get("c1").abandoned_at.tzinfo is not None  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="naive datetime"):
        db.contacts.create(
            queue="billing",
            channel=Channel.VOICE,
            caller_region="es",
            landing_site="madrid",
            at=datetime(2025, 3, 14, 9, 1),
        )
