"""The pool ledger on Azure Table Storage: the PoolLedger port over the ``ledger`` partition (see :mod:`.layout`).

Admission reads a pool's ``state`` row alone, then writes it (conditional on its ETag) and creates the
reservation row in one entity group transaction, so concurrent admissions to a pool serialize and never
over-commit. A release deletes the reservation row and writes the counts back the same way.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient, TableEntity, TableTransactionError, UpdateMode

from dispatcher.adapters.azure.errors import translated
from dispatcher.adapters.azure.tables import layout
from dispatcher.adapters.azure.tables.jobs import read
from dispatcher.domain.errors import CloudError
from dispatcher.domain.placement import PoolState, Reservation, TeamState
from dispatcher.settings import Pool

MAX_RACES = 8


def guarded(row: dict[str, Any], etag: str | None) -> tuple[Any, ...]:
    """The operation that writes ``row``: a create for a new one, else conditional on the ETag it was read with."""
    if etag is None:
        return ("create", row)
    conditional = {"mode": UpdateMode.REPLACE, "etag": etag, "match_condition": MatchConditions.IfNotModified}
    return ("update", row, conditional)


def _state_operation(state: PoolState) -> tuple[Any, ...]:
    return guarded(layout.state_entity(state), state.etag)


def _team_operation(team: TeamState) -> tuple[Any, ...]:
    return guarded(layout.team_entity(team), team.etag)


class TableLedger:
    """The PoolLedger port."""

    def __init__(self, table: TableClient) -> None:
        self._table = table

    def state(self, pool: Pool) -> PoolState:
        entity = read(self._table, layout.LEDGER, layout.state_row(pool), f"read pool {pool.name}")
        return layout.state_from(pool, entity) if entity is not None else PoolState(pool)

    def _rows(self, pool: Pool) -> tuple[PoolState, list[TableEntity]]:
        low, high = layout.prefix_range(layout.pool_prefix(pool))
        state, held = PoolState(pool), []
        with translated(f"read pool {pool.name}"):
            for entity in self._table.query_entities(
                "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high",
                parameters={"pk": layout.LEDGER, "low": low, "high": high},
            ):
                if entity["RowKey"] == layout.state_row(pool):
                    state = layout.state_from(pool, entity)
                else:
                    held.append(entity)
        return state, held

    def active(self, pool: Pool) -> tuple[PoolState, list[Reservation]]:
        state, held = self._rows(pool)
        return state, [layout.reservation_from(e) for e in held]

    def _transact(self, operations: list[tuple[Any, ...]], pool: Pool) -> list[Mapping[str, Any]] | None:
        """Submit; ``None`` when a condition failed (the state changed, or the reservation did or did not exist)."""
        with translated(f"write pool {pool.name}"):
            try:
                return list(self._table.submit_transaction(operations))
            except TableTransactionError as exc:
                if exc.status_code in (404, 409, 412):
                    return None
                raise

    def _as_written(self, after: PoolState, parts: Sequence[Mapping[str, Any]]) -> PoolState:
        etag = parts[0].get("etag") if parts else None
        return dataclasses.replace(after, etag=str(etag)) if etag else self.state(after.pool)

    def team_state(self, team: str) -> TeamState:
        entity = read(self._table, layout.LEDGER, layout.team_row(team), f"read team {team}")
        return layout.team_from(team, entity) if entity is not None else TeamState(team)

    def reserve(
        self, state: PoolState, reservation: Reservation, now: dt.datetime, team: TeamState | None = None
    ) -> PoolState | None:
        after = state.with_reservation(reservation, now)
        row = layout.reservation_entity(state.pool, reservation)
        operations = [_state_operation(after), ("create", row)]
        if team is not None:
            operations.append(_team_operation(team.taking(reservation)))
        parts = self._transact(operations, state.pool)
        return None if parts is None else self._as_written(after, parts)

    def _team_release(self, reservation: Reservation) -> list[tuple[Any, ...]]:
        """The write that gives the reservation's share back to its team's row, read now (none without a team)."""
        if reservation.team is None:
            return []
        return [_team_operation(self.team_state(reservation.team).giving_back(reservation))]

    def release(
        self, state: PoolState, reservation: Reservation, now: dt.datetime, *, deleted: bool = False
    ) -> PoolState:
        pool = state.pool
        row = {"PartitionKey": layout.LEDGER, "RowKey": layout.reservation_row(pool, reservation.group)}
        if state.etag is not None:
            # The state row unchanged since it was read (its ETag) says no reservation came or went meanwhile,
            # so the reservation row is as read: it is deleted without a condition of its own.
            after = state.without_reservation(reservation, now, deleted=deleted)
            parts = self._transact([_state_operation(after), ("delete", row), *self._team_release(reservation)], pool)
            if parts is not None:
                return self._as_written(after, parts)
        for _ in range(MAX_RACES):
            current, found = self._rows(pool)
            entity = next((e for e in found if e["RowKey"] == row["RowKey"]), None)
            if entity is None:
                return current  # released already
            held = layout.reservation_from(entity)
            after = current.without_reservation(held, now, deleted=deleted)
            conditional = {"etag": str(entity.metadata["etag"]), "match_condition": MatchConditions.IfNotModified}
            operations = [_state_operation(after), ("delete", entity, conditional), *self._team_release(held)]
            parts = self._transact(operations, pool)
            if parts is not None:
                return self._as_written(after, parts)
        raise CloudError(
            f"pool {pool.name}: the state kept changing while {reservation.group} was released; a later run does it",
            code="Conflict",
            transient=True,
        )

    def mark(self, pool: Pool, group: str, *, started: bool = False, cancel_requested: bool = False) -> None:
        flags: dict[str, Any] = {}
        if started:
            flags["Started"] = True
        if cancel_requested:
            flags["CancelRequested"] = True
        if not flags:
            return
        row = {"PartitionKey": layout.LEDGER, "RowKey": layout.reservation_row(pool, group), **flags}
        with translated(f"mark {group} in pool {pool.name}"), contextlib.suppress(ResourceNotFoundError):
            self._table.update_entity(row, mode=UpdateMode.MERGE)

    def find(self, pool: Pool, group: str) -> Reservation | None:
        row = layout.reservation_row(pool, group)
        entity = read(self._table, layout.LEDGER, row, f"read {group} in pool {pool.name}")
        return layout.reservation_from(entity) if entity is not None else None

    def saturate(self, pool: Pool, until: dt.datetime) -> None:
        row: dict[str, Any] = {"PartitionKey": layout.LEDGER, "RowKey": layout.state_row(pool), "Kind": "pool"}
        row.update({"Layout": layout.LAYOUT, "SaturatedUntil": until.isoformat()})
        with translated(f"mark pool {pool.name} saturated"):
            self._table.upsert_entity(row, mode=UpdateMode.MERGE)
