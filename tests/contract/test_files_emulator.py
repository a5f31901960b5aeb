"""The Azure Files emulator, driven through the unmodified azure-storage-file-share SDK."""

import os
import random
from functools import cmp_to_key
from pathlib import Path

import pytest
import requests
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
)
from azure.storage.fileshare import ContentSettings, FileProperties, ShareClient, ShareServiceClient
from azure.storage.fileshare._shared.authentication import compare as sdk_header_compare
from hypothesis import given
from hypothesis import strategies as st

from devstack.accounts import DEVSTORE_ACCOUNT_KEY, DEVSTORE_ACCOUNT_NAME
from devstack.files import FilesEmulator, StorageError
from devstack.files.sharedkey import canonicalized_headers

ACCOUNT = DEVSTORE_ACCOUNT_NAME
MIB = 1024 * 1024


@pytest.fixture
def service(files_emulator: FilesEmulator) -> ShareServiceClient:
    return ShareServiceClient.from_connection_string(files_emulator.connection_string(ACCOUNT))


@pytest.fixture
def share(service: ShareServiceClient) -> ShareClient:
    return service.create_share("jobs")


def _error_code(error: Exception) -> object:
    # The storage SDK attaches the service's x-ms-error-code to the exceptions it raises.
    return getattr(error, "error_code", None)


def _payload(size: int) -> bytes:
    return random.Random(size).randbytes(size)


# --- shares ----------------------------------------------------------------------------------


def test_created_share_reports_its_properties_and_has_a_folder(
    service: ShareServiceClient, files_emulator: FilesEmulator
) -> None:
    # Given / When a share is created with a quota and metadata
    service.create_share("reports", quota=10, metadata={"owner": "team"})

    # Then its properties come back and its folder exists
    properties = service.get_share_client("reports").get_share_properties()
    assert properties.quota == 10
    assert properties.metadata == {"owner": "team"}
    assert properties.etag
    assert (files_emulator.files_root / ACCOUNT / "reports").is_dir()


def test_creating_an_existing_share_raises_resource_exists(service: ShareServiceClient, share: ShareClient) -> None:
    with pytest.raises(ResourceExistsError) as raised:
        service.create_share("jobs")
    assert _error_code(raised.value) == "ShareAlreadyExists"


def test_missing_share_raises_resource_not_found(service: ShareServiceClient) -> None:
    with pytest.raises(ResourceNotFoundError) as raised:
        service.get_share_client("absent").get_share_properties()
    assert _error_code(raised.value) == "ShareNotFound"


def test_deleted_share_is_gone_with_its_files(
    service: ShareServiceClient, share: ShareClient, files_emulator: FilesEmulator
) -> None:
    # Given a share with a file
    share.get_file_client("result.txt").upload_file(b"done")

    # When it is deleted
    share.delete_share()

    # Then neither the share nor its folder exists
    with pytest.raises(ResourceNotFoundError):
        share.get_share_properties()
    assert not (files_emulator.files_root / ACCOUNT / "jobs").exists()


def test_shares_are_listed_by_name(service: ShareServiceClient) -> None:
    for name in ("beta", "alpha", "gamma"):
        service.create_share(name)

    assert [s.name for s in service.list_shares()] == ["alpha", "beta", "gamma"]
    assert [s.name for s in service.list_shares(name_starts_with="g")] == ["gamma"]


# --- directories -----------------------------------------------------------------------------


def test_directories_and_files_are_listed(share: ShareClient) -> None:
    # Given nested directories and files
    inputs = share.create_directory("inputs")
    inputs.create_subdirectory("raw")
    inputs.upload_file("a.csv", b"1,2\n")
    inputs.upload_file("b c.txt", b"spaced name")

    # When the directory is listed
    entries = {item.name: item for item in share.list_directories_and_files("inputs")}

    # Then directories and files are told apart and files carry their sizes
    assert set(entries) == {"raw", "a.csv", "b c.txt"}
    assert entries["raw"].is_directory
    assert not entries["a.csv"].is_directory
    assert isinstance(entries["a.csv"], FileProperties)
    assert entries["a.csv"].size == 4


def test_listing_filters_by_a_prefix_with_spaces(share: ShareClient) -> None:
    # Given names that need percent-encoding in the query string
    folder = share.create_directory("mixed")
    for name in ("run 1+2.log", "run 1+3.log", "other.log"):
        folder.upload_file(name, b"x")

    # When listed by a prefix holding a space and a plus sign (the query is part of the signature)
    names = [item.name for item in share.list_directories_and_files("mixed", name_starts_with="run 1+")]

    # Then only the matching names come back
    assert names == ["run 1+2.log", "run 1+3.log"]


def test_listing_pages_through_a_large_directory(share: ShareClient) -> None:
    # Given a directory with five files
    folder = share.create_directory("many")
    for index in range(5):
        folder.upload_file(f"f{index}", b"x")

    # When it is listed two entries per page
    pages = list(share.list_directories_and_files("many", results_per_page=2).by_page())

    # Then every entry appears exactly once across three pages
    names = [item.name for page in pages for item in page]
    assert names == ["f0", "f1", "f2", "f3", "f4"]
    assert len(pages) == 3


def test_directory_in_missing_parent_raises_resource_not_found(share: ShareClient) -> None:
    with pytest.raises(ResourceNotFoundError) as raised:
        share.create_directory("missing/child")
    assert _error_code(raised.value) == "ParentNotFound"


def test_creating_an_existing_directory_raises_resource_exists(share: ShareClient) -> None:
    share.create_directory("out")
    with pytest.raises(ResourceExistsError) as raised:
        share.create_directory("out")
    assert _error_code(raised.value) == "ResourceAlreadyExists"


def test_non_empty_directory_cannot_be_deleted(share: ShareClient) -> None:
    # Given a directory holding a file
    share.create_directory("out").upload_file("log.txt", b"line")

    # When it is deleted, then the service refuses
    with pytest.raises(ResourceExistsError) as raised:
        share.delete_directory("out")
    assert _error_code(raised.value) == "DirectoryNotEmpty"


def test_empty_directory_is_deleted(share: ShareClient) -> None:
    directory = share.create_directory("tmp")
    directory.delete_directory()
    assert not directory.exists()


# --- files -----------------------------------------------------------------------------------


def test_small_upload_downloads_identically(share: ShareClient, files_emulator: FilesEmulator) -> None:
    # Given / When a small file is uploaded
    share.get_file_client("hello.txt").upload_file(b"hello, world")

    # Then it downloads identically and is a plain file in the share folder
    assert share.get_file_client("hello.txt").download_file().readall() == b"hello, world"
    assert (files_emulator.files_root / ACCOUNT / "jobs" / "hello.txt").read_bytes() == b"hello, world"


def test_upload_larger_than_one_range_round_trips(share: ShareClient) -> None:
    # Given more data than the SDK puts in one 4 MiB range
    data = _payload(9 * MIB + 123)

    # When it is uploaded and downloaded
    file_client = share.get_file_client("big.bin")
    file_client.upload_file(data)

    # Then the bytes are the same
    assert file_client.get_file_properties().size == len(data)
    assert file_client.download_file().readall() == data


def test_big_download_is_fetched_in_ranged_chunks(files_emulator: FilesEmulator) -> None:
    # Given a client whose single GET is limited to 1 MiB, and a 3.5 MiB file
    service = ShareServiceClient.from_connection_string(
        files_emulator.connection_string(ACCOUNT), max_single_get_size=MIB, max_chunk_get_size=MIB
    )
    share = service.create_share("chunks")
    data = _payload(3 * MIB + MIB // 2)
    share.get_file_client("data.bin").upload_file(data)

    # When it is downloaded, chunk by chunk
    chunks = list(share.get_file_client("data.bin").download_file().chunks())

    # Then the chunks reassemble the file
    assert len(chunks) > 1
    assert b"".join(chunks) == data


def test_ranged_download_returns_the_requested_bytes(share: ShareClient) -> None:
    data = _payload(10_000)
    file_client = share.get_file_client("slice.bin")
    file_client.upload_file(data)

    assert file_client.download_file(offset=100, length=50).readall() == data[100:150]


def test_empty_file_downloads_as_empty(share: ShareClient) -> None:
    share.get_file_client("empty").upload_file(b"")
    assert share.get_file_client("empty").download_file().readall() == b""


def test_file_properties_report_size_and_content_settings(share: ShareClient) -> None:
    # Given a file uploaded with a content type and metadata
    file_client = share.get_file_client("report.json")
    file_client.upload_file(
        b'{"ok": true}', content_settings=ContentSettings(content_type="application/json"), metadata={"job": "j1"}
    )

    # When its properties are read
    properties = file_client.get_file_properties()

    # Then they describe it
    assert properties.size == 12
    assert properties.content_settings.content_type == "application/json"
    assert properties.metadata == {"job": "j1"}
    assert properties.last_modified is not None
    assert properties.creation_time is not None


def test_ranges_written_into_a_created_file_land_at_their_offsets(share: ShareClient) -> None:
    # Given a 2 KiB file created empty
    file_client = share.get_file_client("sparse.bin")
    file_client.create_file(2048)

    # When a range is written at 1 KiB and the first 512 bytes are cleared after a write
    file_client.upload_range(b"a" * 512, offset=0, length=512)
    file_client.upload_range(b"b" * 512, offset=1024, length=512)
    file_client.clear_range(offset=0, length=512)

    # Then the file holds zeros except where the second range was written
    assert file_client.download_file().readall() == bytes(1024) + b"b" * 512 + bytes(512)


def test_range_past_the_end_of_the_file_is_refused(share: ShareClient) -> None:
    file_client = share.get_file_client("short.bin")
    file_client.create_file(10)

    with pytest.raises(HttpResponseError) as raised:
        file_client.upload_range(b"0123456789", offset=5, length=10)
    assert raised.value.status_code == 416
    assert _error_code(raised.value) == "InvalidRange"


def test_missing_file_raises_resource_not_found(share: ShareClient) -> None:
    with pytest.raises(ResourceNotFoundError) as raised:
        share.get_file_client("absent.txt").download_file()
    assert _error_code(raised.value) == "ResourceNotFound"


def test_file_in_missing_directory_raises_resource_not_found(share: ShareClient) -> None:
    with pytest.raises(ResourceNotFoundError):
        share.get_file_client("nowhere/file.txt").upload_file(b"x")


def test_deleted_file_is_gone(share: ShareClient) -> None:
    file_client = share.get_file_client("gone.txt")
    file_client.upload_file(b"bye")

    file_client.delete_file()

    assert not file_client.exists()
    with pytest.raises(ResourceNotFoundError):
        file_client.delete_file()


def test_file_a_job_writes_into_the_share_folder_is_downloadable(
    share: ShareClient, files_emulator: FilesEmulator
) -> None:
    # Given a file written straight into the share's folder, as a job writing /mnt/out would
    out = files_emulator.share_folder(ACCOUNT, "jobs") / "out"
    out.mkdir()
    (out / "result.txt").write_bytes(b"42\n")

    # When it is listed and downloaded through the SDK
    names = [item.name for item in share.list_directories_and_files("out")]
    content = share.get_file_client("out/result.txt").download_file().readall()

    # Then the SDK sees it
    assert names == ["result.txt"]
    assert content == b"42\n"


# --- names that would leave the share -----------------------------------------------------------


def test_parent_directory_segments_are_refused(share: ShareClient, files_emulator: FilesEmulator) -> None:
    # When a client names a directory that climbs out of the share (the SDK sends its slashes
    # percent-encoded, so the ".." segments reach the service as they are)
    with pytest.raises(HttpResponseError) as raised:
        share.create_directory("a/../../../escaped")

    # Then the service refuses and nothing is created outside the share
    assert _error_code(raised.value) == "InvalidResourceName"
    assert not (files_emulator.files_root / "escaped").exists()
    assert not (files_emulator.files_root / ACCOUNT / "escaped").exists()


@pytest.mark.parametrize("share_name", ["..", "../etc", "a/b", "UPPER", "x"])
def test_share_folder_refuses_names_that_are_not_share_names(files_emulator: FilesEmulator, share_name: str) -> None:
    with pytest.raises(StorageError) as raised:
        files_emulator.share_folder(ACCOUNT, share_name)
    assert raised.value.code == "InvalidResourceName"


def test_symbolic_link_out_of_the_share_is_not_followed(
    share: ShareClient, files_emulator: FilesEmulator, tmp_path: Path
) -> None:
    # Given a job left a link in its share that points outside it
    secret = tmp_path / "outside.txt"
    secret.write_text("host file")
    os.symlink(secret, files_emulator.share_folder(ACCOUNT, "jobs") / "link.txt")

    # When the link is downloaded, then it is not there: an SMB share of Azure Files shows no symbolic links
    with pytest.raises(HttpResponseError) as raised:
        share.get_file_client("link.txt").download_file()
    assert _error_code(raised.value) == "ResourceNotFound"


def test_symbolic_links_are_never_listed_or_followed_so_a_loop_lists_once(
    share: ShareClient, files_emulator: FilesEmulator
) -> None:
    # Given a share with a file, a folder, and links a job left: one to the share's root (a loop), one to the folder
    root = files_emulator.share_folder(ACCOUNT, "jobs")
    (root / "sub").mkdir()
    (root / "sub" / "data.txt").write_text("x")
    (root / "top.txt").write_text("y")
    os.symlink(root, root / "loop")
    os.symlink(root / "sub", root / "sub-link")

    # When the root and the linked folder are listed
    names = sorted(item.name for item in share.get_directory_client().list_directories_and_files())
    with pytest.raises(HttpResponseError) as raised:
        list(share.get_directory_client("loop").list_directories_and_files())

    # Then only the real entries show, and the link cannot be entered
    assert names == ["sub", "top.txt"]
    assert _error_code(raised.value) == "ResourceNotFound"


# --- authentication --------------------------------------------------------------------------


def test_wrong_account_key_is_rejected_with_403(files_emulator: FilesEmulator, share: ShareClient) -> None:
    # Given a client signing with a key that is not the account's
    wrong = ShareServiceClient(
        files_emulator.account_url(ACCOUNT), credential={"account_name": ACCOUNT, "account_key": "d3Jvbmcga2V5"}
    )

    # When it calls the service, then the signature does not verify
    with pytest.raises(ClientAuthenticationError) as raised:
        wrong.get_share_client("jobs").get_share_properties()
    assert raised.value.status_code == 403
    assert _error_code(raised.value) == "AuthenticationFailed"


def test_request_without_authorization_is_rejected_with_403(files_emulator: FilesEmulator, share: ShareClient) -> None:
    response = requests.get(f"{files_emulator.account_url(ACCOUNT)}/jobs/?restype=share", timeout=30)

    assert response.status_code == 403
    assert response.headers["x-ms-error-code"] == "AuthenticationFailed"
    assert b"<Code>AuthenticationFailed</Code>" in response.content


def test_garbled_authorization_is_rejected_with_403(files_emulator: FilesEmulator, share: ShareClient) -> None:
    response = requests.get(
        f"{files_emulator.account_url(ACCOUNT)}/jobs/?restype=share",
        headers={"Authorization": "SharedKey not-a-signature"},
        timeout=30,
    )

    assert response.status_code == 403
    assert response.headers["x-ms-error-code"] == "AuthenticationFailed"


def test_other_accounts_are_served_with_their_own_keys(tmp_path: Path) -> None:
    # Given an emulator configured with a second account
    key = "c2Vjb25kIGFjY291bnQga2V5IGZvciB0ZXN0cw=="
    with FilesEmulator(tmp_path / "files", {ACCOUNT: DEVSTORE_ACCOUNT_KEY, "second": key}) as emulator:
        # When that account creates a share
        ShareServiceClient.from_connection_string(emulator.connection_string("second")).create_share("data")

        # Then it lives in that account's folder
        assert (tmp_path / "files" / "second" / "data").is_dir()


@given(st.lists(st.from_regex(r"\Ax-ms-[a-z0-9'-]{0,8}\Z"), min_size=2, max_size=6, unique=True))
def test_header_order_matches_the_client_signer(names: list[str]) -> None:
    # The service's order of x-ms-* headers must be the one the SDK signs with.
    headers = dict.fromkeys(names, "v")
    client_order = sorted(names, key=cmp_to_key(sdk_header_compare))
    assert canonicalized_headers(headers) == "".join(f"{name}:v\n" for name in client_order)


# --- share properties, and what is not emulated ---------------------------------------------------------------


def test_share_metadata_and_quota_are_set_and_read_back(share: ShareClient) -> None:
    share.set_share_metadata({"team": "red"})
    share.set_share_quota(7)
    properties = share.get_share_properties()
    assert (properties.metadata, properties.quota) == ({"team": "red"}, 7)


def test_a_copy_a_snapshot_and_a_lease_are_not_implemented_rather_than_misreported(share: ShareClient) -> None:
    share.get_file_client("source.txt").upload_file(b"data")
    source = share.get_file_client("source.txt").url
    with pytest.raises(HttpResponseError) as copy:
        share.get_file_client("target.txt").start_copy_from_url(source)
    with pytest.raises(HttpResponseError) as snapshot:
        share.create_snapshot()
    with pytest.raises(HttpResponseError) as lease:
        share.acquire_lease()
    for refused in (copy, snapshot, lease):
        assert (refused.value.status_code, _error_code(refused.value)) == (501, "NotImplemented")
