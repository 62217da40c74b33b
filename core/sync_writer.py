"""Writing one sync run's records and numbers into its cache generation, in committed batches.

:mod:`core.sync` streams the CRM's pages, has their phone fields parsed and hands them to a :class:`Writer`;
the run's begin and finish steps (which make the generation active, or not) stay there.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from core.connector.base import FetchedRecord
from core.models import CachedNumber, CachedRecord, SyncRun
from core.sync_worker import ParsedField

_record = CachedRecord.__table__  # type: ignore[attr-defined]
_number = CachedNumber.__table__  # type: ignore[attr-defined]
_run = SyncRun.__table__  # type: ignore[attr-defined]

MAX_EXAMPLES = 10
"""Unparsable numbers kept as examples on a run."""

_RECORD_COLUMNS = ("id", "integration_id", "generation", "record_id", "fields")
_NUMBER_COLUMNS = ("integration_id", "generation", "record_pk", "e164", "suffix", "raw", "label", "national")


def _compiled(connection: Connection, table: sa.Table, columns: Sequence[str]) -> str:
    """A Core ``insert()`` of ``columns`` compiled for the connection's dialect (positional parameters)."""
    return str(sa.insert(table).compile(dialect=connection.dialect, column_keys=list(columns)))


@dataclass
class _Rows:
    """Rows waiting to be written: records, and numbers pointing at a record by its index in ``records``."""

    records: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    # (record, e164, suffix, raw, label, national)
    numbers: list[tuple[int, str, str, str, str, str]] = field(default_factory=list)


@dataclass
class Counts:
    """What a run counted so far."""

    records: int = 0
    numbers: int = 0
    unparsed: int = 0
    examples: list[str] = field(default_factory=list)
    shared: int = 0


class Writer:
    """Collects parsed pages and writes them into one generation in committed batches."""

    def __init__(self, engine: Engine, integration_id: int, generation: int) -> None:
        self.engine = engine
        self.integration_id = integration_id
        self.generation = generation
        self.counts = Counts()
        self.rows = _Rows()

    def add(self, records: Sequence[FetchedRecord], parsed: Sequence[ParsedField]) -> None:
        """Queue one page's records with their parsed phone fields (in the order of ``record.phones``)."""
        fields = iter(parsed)
        for record in records:
            index = len(self.rows.records)
            self.rows.records.append((record.record_id, record.fields))
            seen: set[str] = set()
            for label, _raw in record.phones:
                found, unparsed = next(fields)
                for e164, suffix, piece, national in found:
                    if e164 not in seen:
                        seen.add(e164)
                        self.rows.numbers.append((index, e164, suffix, piece[:200], label[:60], national))
                self._unparsed(record, unparsed)
        self.counts.records += len(records)

    def _unparsed(self, record: FetchedRecord, pieces: Sequence[str]) -> None:
        self.counts.unparsed += len(pieces)
        for piece in pieces:
            if len(self.counts.examples) < MAX_EXAMPLES:
                who = record.fields.get("DisplayName", "").strip() or record.record_id
                self.counts.examples.append(f"{who[:60]}: {piece[:60]}")

    @property
    def pending(self) -> int:
        """Records queued and not yet written."""
        return len(self.rows.records)

    def take(self) -> _Rows:
        """The queued rows, leaving the queue empty."""
        rows, self.rows = self.rows, _Rows()
        self.counts.numbers += len(rows.numbers)
        return rows

    def write(self, rows: _Rows) -> None:
        """Write rows in one transaction (called in a worker thread)."""
        if not rows.records:
            return
        with self.engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                self._copy(connection, rows)
            else:
                self._insert(connection, rows)

    def _insert(self, connection: Connection, rows: _Rows) -> None:
        """SQLite: take the write lock, number the records after the highest id, insert both with executemany.

        The statements are Core ``insert()`` constructs compiled once; the rows go to the driver's
        ``executemany`` as tuples, which skips per-row parameter processing (a third of the time). Holding the
        write lock from the first statement on, nobody else can take the ids in between.
        """
        connection.execute(sa.update(_run).where(_run.c.id == self.generation).values(numbers=_run.c.numbers))
        top = connection.execute(sa.select(sa.func.coalesce(sa.func.max(_record.c.id), 0))).scalar_one()
        keys = range(top + 1, top + 1 + len(rows.records))
        iid, gen = self.integration_id, self.generation
        connection.exec_driver_sql("PRAGMA cache_size=-65536")  # 64 MB while the indexes are being filled
        try:
            connection.exec_driver_sql(
                _compiled(connection, _record, _RECORD_COLUMNS),
                [
                    (pk, iid, gen, record_id, json.dumps(fields, ensure_ascii=False))
                    for pk, (record_id, fields) in zip(keys, rows.records, strict=True)
                ],
            )
            if rows.numbers:
                connection.exec_driver_sql(
                    _compiled(connection, _number, _NUMBER_COLUMNS),
                    [(iid, gen, keys[i], *number) for i, *number in rows.numbers],
                )
        finally:
            connection.exec_driver_sql("PRAGMA cache_size=-2000")

    def _copy(self, connection: Connection, rows: _Rows) -> None:
        """PostgreSQL: ids drawn from the sequence, then both tables filled with COPY."""
        keys = (
            connection.execute(
                sa.text("SELECT nextval(pg_get_serial_sequence('cachedrecord', 'id')) FROM generate_series(1, :n)"),
                {"n": len(rows.records)},
            )
            .scalars()
            .all()
        )
        iid, gen = self.integration_id, self.generation
        cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            with cursor.copy(f"COPY cachedrecord ({', '.join(_RECORD_COLUMNS)}) FROM STDIN") as copy:
                for pk, (record_id, fields) in zip(keys, rows.records, strict=True):
                    copy.write_row((pk, iid, gen, record_id, json.dumps(fields, ensure_ascii=False)))
            with cursor.copy(f"COPY cachednumber ({', '.join(_NUMBER_COLUMNS)}) FROM STDIN") as copy:
                for i, *number in rows.numbers:
                    copy.write_row((iid, gen, keys[i], *number))
        finally:
            cursor.close()
