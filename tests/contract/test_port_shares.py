"""One contract for the Shares port, run against the fake and the Files adapter over the Azure Files emulator."""

from __future__ import annotations

import pytest

from dispatcher.domain.errors import CloudError
from tests.contract.conftest import Workspaces


def test_ensure_and_delete_are_idempotent(workspaces: Workspaces) -> None:
    workspaces.shares.ensure("ws-a")
    workspaces.shares.ensure("ws-a")
    workspaces.shares.delete("ws-a")
    workspaces.shares.delete("ws-a")
    assert workspaces.shares.summary("ws-a", 100).files == 0


def test_a_folder_is_listed_a_page_at_a_time_with_file_sizes(workspaces: Workspaces) -> None:
    workspaces.shares.ensure("ws-a")
    for n in range(5):
        workspaces.put("ws-a", f"f{n}.txt", b"x" * n)
    workspaces.put("ws-a", "sub/deep.csv", b"a,b")
    entries, token = [], None
    while True:
        page = workspaces.shares.page("ws-a", "", token, 2)
        entries += page.entries
        token = page.continuation
        if token is None:
            break
    assert sorted((e.name, e.is_directory, e.size) for e in entries) == [
        *[(f"f{n}.txt", False, n) for n in range(5)],
        ("sub", True, 0),
    ]
    (deep,) = workspaces.shares.page("ws-a", "sub", None, 10).entries
    assert (deep.name, deep.size) == ("deep.csv", 3)


def test_a_missing_folder_is_a_not_found_cloud_error(workspaces: Workspaces) -> None:
    workspaces.shares.ensure("ws-a")
    with pytest.raises(CloudError) as missing:
        workspaces.shares.page("ws-a", "nope", None, 10)
    assert missing.value.status == 404


def test_a_summary_counts_files_and_bytes_and_stops_at_its_bound(workspaces: Workspaces) -> None:
    workspaces.shares.ensure("ws-a")
    for n in range(4):
        workspaces.put("ws-a", f"d/f{n}", b"12")
    full = workspaces.shares.summary("ws-a", 100)
    assert (full.files, full.bytes, full.complete) == (4, 8, True)
    assert sorted(full.first) == [f"d/f{n}" for n in range(4)]
    bounded = workspaces.shares.summary("ws-a", 3)
    assert (bounded.files < 4, bounded.complete) == (True, False)


def test_a_file_reads_whole_and_a_missing_one_is_none(workspaces: Workspaces) -> None:
    workspaces.shares.ensure("ws-a")
    workspaces.put("ws-a", "out/result.txt", b"42\n")
    assert workspaces.shares.read("ws-a", "out/result.txt") == b"42\n"
    assert workspaces.shares.read("ws-a", "out/missing.txt") is None
