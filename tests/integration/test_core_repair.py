"""The seams the core repair mended, through the local runner with every emulator up and real processes running."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

import pytest
from azure.data.tables import TableClient
from azure.servicebus import ServiceBusClient
from azure.storage.blob import BlobServiceClient

from devstack.stack import EVENTS_SUBSCRIPTION, EVENTS_TOPIC, JOBS_QUEUE
from dispatcher.domain.jobs import Status
from tests.fixtures.stack import StackClient, wait_for

INLINE = "inline-value-of-job-0c1d"
INLINE_SETTINGS = {"DISPATCHER_ALLOW_INLINE_SECRETS": "true"}


@pytest.fixture
def inline_stack(make_stack: Callable[..., StackClient]) -> StackClient:
    return make_stack(extra_settings=INLINE_SETTINGS)


def everything_stored(client: StackClient) -> str:
    """Every table entity, blob and message (queue, dead letters, events) the stack holds, as text."""
    stack = client.stack
    texts = [json.dumps(dict(e), default=str) for e in client.table.list_entities()]
    blobs = BlobServiceClient.from_connection_string(stack.storage_connection_string)
    for container in blobs.list_containers():
        box = blobs.get_container_client(container.name)
        texts += [box.download_blob(b.name).readall().decode(errors="replace") for b in box.list_blobs()]
    for entity in (JOBS_QUEUE, f"{EVENTS_TOPIC}/Subscriptions/{EVENTS_SUBSCRIPTION}"):
        for summary in stack.servicebus.messages(entity) + stack.servicebus.dead_letters(entity):
            texts.append(repr(summary))
    with (
        ServiceBusClient.from_connection_string(stack.servicebus.connection_string) as bus,
        bus.get_subscription_receiver(EVENTS_TOPIC, EVENTS_SUBSCRIPTION) as receiver,
    ):
        texts += [str(m) for m in receiver.peek_messages(max_message_count=200)]
    return "\n".join(texts)


def test_an_inline_secret_reaches_every_attempts_container_and_rests_only_in_the_job_vault(
    inline_stack: StackClient,
) -> None:
    # Given an HTTP submission with an inline value, whose first attempt fails once it has checked the value
    digest = hashlib.sha256(INLINE.encode()).hexdigest()  # the command names only the value's hash
    check = (
        f'[ "$(printf %s "$TOKEN" | sha256sum | cut -c1-64)" = "{digest}" ] || exit 3; '
        "[ -f /out/once ] || { touch /out/once; exit 1; }"
    )
    spec = {
        "id": "inline-1",
        "containers": [
            {
                "name": "main",
                "image": "busybox",
                "command": ["sh", "-c", check],
                "secretEnv": {"TOKEN": {"value": INLINE}},
                "mounts": [{"volume": "out", "path": "/out"}],
            }
        ],
        "volumes": {"out": {"kind": "workspace"}},
        "retries": {"count": 1, "backoffSeconds": 0},
    }
    with inline_stack.api() as api:
        api.submit(json.dumps(spec).encode(), "application/json")
    # When it runs, fails, and is retried by the scheduler
    record = inline_stack.wait_status("inline-1", Status.SUCCEEDED, Status.FAILED, timeout=90, tick=True)
    # Then both attempts saw the real value (a mask would exit 3), and it is stored nowhere but the job vault
    assert [a.exit_codes for a in record.attempts] == [{"main": 1}, {"main": 0}]
    assert record.status is Status.SUCCEEDED
    assert INLINE not in everything_stored(inline_stack)
    with inline_stack.api() as api:
        assert INLINE not in api.job("inline-1").model_dump_json()
    name = record.owned_secrets[0]
    assert inline_stack.stack.job_vault.vault.get(name, None) is not None
    assert inline_stack.stack.keyvault.vault.get(name, None) is None


@pytest.mark.parametrize("job_ids", [["queue", "done", "state", "pool-local", "outbox", "ledger"]])
def test_ids_that_are_words_of_the_key_layout_run_as_jobs(
    make_stack: Callable[..., StackClient], job_ids: list[str]
) -> None:
    client = make_stack()
    for job_id in job_ids:
        client.send({"id": job_id, "image": "busybox", "command": ["true"]}, job_id)
    for job_id in job_ids:
        assert client.wait_status(job_id, Status.SUCCEEDED, timeout=90, tick=True).status is Status.SUCCEEDED
    # And rejected submissions keyed like index rows touch none of them
    for message_id in ("pool:local", "queue|x", "done"):
        client.send({"image": "busybox", "restartPolicy": "Always"}, message_id)
    client.send({"id": "after", "image": "busybox", "command": ["true"]}, "after")
    assert client.wait_status("after", Status.SUCCEEDED, timeout=90, tick=True).status is Status.SUCCEEDED
    assert wait_for(client.queue_empty)
    rejected = list(client.table.query_entities("Kind eq 'record' and Status eq 'Rejected'"))
    assert len(rejected) == 2  # "done" was taken by a job: its rejection is a conflict row beside it
    assert client.stack.servicebus.counts(JOBS_QUEUE).dead_letter == 0


def test_a_workspace_of_thousands_of_files_and_a_symlink_loop_gives_a_bounded_record_and_a_paged_api(
    make_stack: Callable[..., StackClient],
) -> None:
    client = make_stack()
    script = (
        "mkdir -p /out/many && cd /out/many && i=0; while [ $i -lt 3000 ]; do : > f$i; i=$((i+1)); done; "
        "ln -s /out /out/loop; ln -s /out/many /out/many/again; echo ok > /out/result.txt"
    )
    spec = {
        "id": "many-1",
        "containers": [
            {
                "name": "main",
                "image": "busybox",
                "command": ["sh", "-c", script],
                "mounts": [{"volume": "out", "path": "/out"}],
            }
        ],
        "volumes": {"out": {"kind": "workspace"}},
    }
    client.send(spec, "many-1")
    record = client.wait_status("many-1", Status.SUCCEEDED, Status.FAILED, timeout=120, tick=True)
    assert record.status is Status.SUCCEEDED
    assert record.outputs is not None
    assert (record.outputs.files, record.outputs.complete, len(record.outputs.first)) == (3001, True, 100)
    with client.api() as api:
        root = api.outputs("many-1")
        assert sorted(e.path for e in root.entries) == ["many", "result.txt"]
        files = api.output_files("many-1")
    assert len(files) == 3001
    assert "loop" not in " ".join(files)
    entity = client.table.get_entity("jobs", "job|many-1|record")
    assert sum(len(str(entity[f"Record{i}"])) for i in range(int(entity["Chunks"]))) < 64_000


def test_the_table_holds_no_row_a_job_id_can_name(shared_stack: StackClient) -> None:
    # Rows are keyed kind first (job|, queue|, done|, outbox|, pool|): nothing lives under a bare job id
    shared_stack.send({"id": "layout-1", "image": "busybox", "command": ["true"]}, "layout-1")
    shared_stack.wait_status("layout-1", Status.SUCCEEDED, timeout=90, tick=True)
    table: TableClient = shared_stack.table
    keys = [(str(e["PartitionKey"]), str(e["RowKey"])) for e in table.list_entities(select=["PartitionKey", "RowKey"])]
    assert {pk for pk, _ in keys} <= {"jobs", "ledger"}
    assert all("|" in rk for _, rk in keys)
