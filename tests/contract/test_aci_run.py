"""Run mode: container groups really run as sandboxed processes, observed through the real ACI SDK."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.containerinstance import ContainerInstanceManagementClient
from azure.mgmt.containerinstance.models import AzureFileVolume, InitContainerDefinition, Volume, VolumeMount

from devstack.aci import AciEmulator
from tests.fixtures.aci import (
    RESOURCE_GROUP,
    job_container,
    job_group,
    processes_with,
    wait_for,
    wait_for_group_state,
)

FINISHED = {"Succeeded", "Failed"}
MakeEmulator = Callable[..., AciEmulator]
MakeClient = Callable[[AciEmulator], ContainerInstanceManagementClient]


def test_job_exiting_zero_succeeds_with_its_logs(aci_client: ContainerInstanceManagementClient) -> None:
    # Given a job that prints two lines and exits 0
    group = job_group(job_container("job", ["/bin/sh", "-c", "echo first line; echo second line >&2"]))

    # When it is created and runs to the end
    created = aci_client.container_groups.begin_create_or_update(RESOURCE_GROUP, "ok-job", group).result()
    finished = wait_for_group_state(aci_client, "ok-job", FINISHED)

    # Then the group succeeded, the container terminated with exit code 0, and its logs hold both streams
    assert created.provisioning_state == "Succeeded"
    assert finished.instance_view.state == "Succeeded"
    state = finished.containers[0].instance_view.current_state
    assert (state.state, state.exit_code, state.detail_status) == ("Terminated", 0, "Completed")
    assert state.start_time is not None
    assert state.finish_time is not None
    logs = aci_client.containers.list_logs(RESOURCE_GROUP, "ok-job", "job")
    assert logs.content == "first line\nsecond line\n"
    tail = aci_client.containers.list_logs(RESOURCE_GROUP, "ok-job", "job", tail=1, timestamps=True)
    assert tail.content.endswith("Z second line\n")
    assert "first line" not in tail.content


def test_job_exiting_three_fails_the_group(aci_client: ContainerInstanceManagementClient) -> None:
    # Given a job that exits 3
    group = job_group(job_container("job", ["/bin/sh", "-c", "exit 3"]))

    # When it runs
    aci_client.container_groups.begin_create_or_update(RESOURCE_GROUP, "bad-job", group).result()
    finished = wait_for_group_state(aci_client, "bad-job", FINISHED)

    # Then the group is Failed and the container reports exit code 3
    assert finished.instance_view.state == "Failed"
    state = finished.containers[0].instance_view.current_state
    assert (state.state, state.exit_code) == ("Terminated", 3)


def test_file_written_to_azure_file_mount_lands_in_the_share_folder(
    aci_emulator: AciEmulator, aci_client: ContainerInstanceManagementClient
) -> None:
    # Given share "outputs" of account "jobstore" exists as a folder under files_root
    share = aci_emulator.config.files_root / "jobstore" / "outputs"
    share.mkdir(parents=True)
    volume = Volume(
        name="out",
        azure_file=AzureFileVolume(share_name="outputs", storage_account_name="jobstore", storage_account_key="a2V5"),
    )
    job = job_container("job", ["/bin/sh", "-c", "echo result > /mnt/out/report.txt"], mounts={"out": "/mnt/out"})

    # When a job writes into the mounted share
    aci_client.container_groups.begin_create_or_update(
        RESOURCE_GROUP, "writer", job_group(job, volumes=[volume])
    ).result()
    finished = wait_for_group_state(aci_client, "writer", FINISHED)

    # Then the file is in files_root/jobstore/outputs, and GET does not return the storage key
    assert finished.instance_view.state == "Succeeded"
    assert (share / "report.txt").read_text() == "result\n"
    assert finished.volumes[0].azure_file.storage_account_key is None


def test_read_only_azure_file_mount_refuses_writes(
    aci_emulator: AciEmulator, aci_client: ContainerInstanceManagementClient
) -> None:
    # Given a share mounted read-only
    share = aci_emulator.config.files_root / "jobstore" / "inputs"
    share.mkdir(parents=True)
    (share / "input.txt").write_text("data\n")
    volume = Volume(
        name="in",
        azure_file=AzureFileVolume(share_name="inputs", storage_account_name="jobstore", read_only=True),
    )
    command = ["/bin/sh", "-c", "cat /mnt/in/input.txt && touch /mnt/in/new"]
    job = job_container("job", command, read_only_mounts={"in": "/mnt/in"})

    # When the job reads it and tries to write into it
    aci_client.container_groups.begin_create_or_update(
        RESOURCE_GROUP, "reader", job_group(job, volumes=[volume])
    ).result()
    finished = wait_for_group_state(aci_client, "reader", FINISHED)

    # Then reading worked, writing failed, and the share is unchanged
    assert finished.instance_view.state == "Failed"
    assert aci_client.containers.list_logs(RESOURCE_GROUP, "reader", "job").content.startswith("data\n")
    assert sorted(p.name for p in share.iterdir()) == ["input.txt"]


def test_secret_volume_is_readable_inside_the_job_and_absent_from_get(
    aci_client: ContainerInstanceManagementClient,
) -> None:
    # Given a secret volume holding a password file
    secret = Volume(name="creds", secret={"password": base64.b64encode(b"hunter2").decode()})
    job = job_container(
        "job",
        ["/bin/sh", "-c", "cat /etc/creds/password; touch /etc/creds/x || echo read-only"],
        mounts={"creds": "/etc/creds"},
    )

    # When the job reads the file
    aci_client.container_groups.begin_create_or_update(
        RESOURCE_GROUP, "secret-file", job_group(job, volumes=[secret])
    ).result()
    finished = wait_for_group_state(aci_client, "secret-file", FINISHED)

    # Then it saw the decoded value on a read-only mount, and GET shows the volume without its contents
    logs = aci_client.containers.list_logs(RESOURCE_GROUP, "secret-file", "job").content
    assert logs.startswith("hunter2")
    assert "read-only" in logs
    assert finished.volumes[0].secret == {}
    raw = aci_client.container_groups.get(RESOURCE_GROUP, "secret-file").as_dict()
    assert "aHVudGVyMg==" not in str(raw)


def test_secure_environment_value_is_set_in_the_job_and_absent_from_get(
    aci_client: ContainerInstanceManagementClient,
) -> None:
    # Given a job with a plain and a secure environment variable
    job = job_container(
        "job",
        ["/bin/sh", "-c", "echo plain=$PLAIN secure=$TOKEN home=$HOME; env | sort | tr '\\n' ' '"],
        env={"PLAIN": "visible"},
        secure_env={"TOKEN": "s3cr3t-token"},
    )

    # When it runs
    aci_client.container_groups.begin_create_or_update(RESOURCE_GROUP, "secure-env", job_group(job)).result()
    finished = wait_for_group_state(aci_client, "secure-env", FINISHED)

    # Then both values were set (and nothing else of the host's environment), but GET never returns the secure one
    logs = aci_client.containers.list_logs(RESOURCE_GROUP, "secure-env", "job").content
    assert logs.startswith("plain=visible secure=s3cr3t-token home=/root\n")
    variables = set(logs.splitlines()[1].split())
    assert {v.split("=")[0] for v in variables} <= {"HOME", "PATH", "PLAIN", "TOKEN", "PWD", "SHLVL", "_"}
    by_name = {v.name: v for v in finished.containers[0].environment_variables}
    assert by_name["PLAIN"].value == "visible"
    assert by_name["TOKEN"].secure_value is None
    assert by_name["TOKEN"].value is None
    assert "s3cr3t-token" not in str(aci_client.container_groups.get(RESOURCE_GROUP, "secure-env").as_dict())


def test_on_failure_policy_restarts_a_failing_container(
    make_aci_emulator: MakeEmulator, make_aci_client: MakeClient
) -> None:
    # Given an emulator with a short restart back-off, and a job that always fails under OnFailure
    emulator = make_aci_emulator(restart_backoff_seconds=0.1)
    client = make_aci_client(emulator)
    job = job_container("job", ["/bin/sh", "-c", "echo attempt; exit 4"])

    # When it runs for a while
    client.container_groups.begin_create_or_update(
        RESOURCE_GROUP, "flaky", job_group(job, restart_policy="OnFailure")
    ).result()

    def restarted_twice() -> object:
        view = client.container_groups.get(RESOURCE_GROUP, "flaky").containers[0].instance_view
        return view if view is not None and view.restart_count >= 2 else None

    view = wait_for(restarted_twice)

    # Then restartCount grows, the previous state keeps the failed exit code, and the group keeps running
    assert view.previous_state.state == "Terminated"
    assert view.previous_state.exit_code == 4
    assert client.container_groups.get(RESOURCE_GROUP, "flaky").instance_view.state == "Running"
    assert client.containers.list_logs(RESOURCE_GROUP, "flaky", "job").content.count("attempt") >= 2


def test_init_containers_run_in_order_before_the_app_container(
    aci_client: ContainerInstanceManagementClient,
) -> None:
    # Given two init containers that append to a shared emptyDir, and an app container that prints it
    def init(name: str) -> InitContainerDefinition:
        return InitContainerDefinition(
            name=name,
            image="busybox",
            command=["/bin/sh", "-c", f"sleep 0.2; echo {name} >> /scratch/order"],
            volume_mounts=[VolumeMount(name="scratch", mount_path="/scratch")],
        )

    app = job_container("app", ["/bin/cat", "/scratch/order"], mounts={"scratch": "/scratch"})
    group = job_group(app, volumes=[Volume(name="scratch", empty_dir={})], init_containers=[init("one"), init("two")])

    # When the group runs
    aci_client.container_groups.begin_create_or_update(RESOURCE_GROUP, "ordered", group).result()
    finished = wait_for_group_state(aci_client, "ordered", FINISHED)

    # Then the init containers ran one after the other, each terminated with 0, before the app container
    assert aci_client.containers.list_logs(RESOURCE_GROUP, "ordered", "app").content == "one\ntwo\n"
    inits = {c.name: c.instance_view.current_state for c in finished.init_containers}
    assert {name: (s.state, s.exit_code) for name, s in inits.items()} == {
        "one": ("Terminated", 0),
        "two": ("Terminated", 0),
    }
    assert inits["one"].finish_time <= inits["two"].start_time
    assert finished.instance_view.state == "Succeeded"


def test_failing_init_container_fails_the_group_without_starting_the_app(
    aci_client: ContainerInstanceManagementClient,
) -> None:
    # Given an init container that fails
    init = InitContainerDefinition(name="setup", image="busybox", command=["/bin/sh", "-c", "exit 2"])
    group = job_group(job_container("app", ["/bin/echo", "never"]), init_containers=[init])

    # When the group is created
    aci_client.container_groups.begin_create_or_update(RESOURCE_GROUP, "bad-init", group).result()
    finished = wait_for_group_state(aci_client, "bad-init", {"Failed"})

    # Then the app container never started
    assert finished.init_containers[0].instance_view.current_state.exit_code == 2
    assert finished.containers[0].instance_view.current_state.state == "Waiting"
    assert aci_client.containers.list_logs(RESOURCE_GROUP, "bad-init", "app").content == ""


def test_stop_kills_the_running_process(aci_client: ContainerInstanceManagementClient) -> None:
    # Given a long-running job, recognisable on the host by a marker in its command line
    marker = f"marker-{uuid.uuid4().hex}"
    job = job_container("job", ["/bin/sh", "-c", f"sleep 3600; echo {marker}"])
    aci_client.container_groups.begin_create_or_update(RESOURCE_GROUP, "sleeper", job_group(job)).result()
    wait_for(lambda: processes_with(marker))

    # When the group is stopped
    aci_client.container_groups.stop(RESOURCE_GROUP, "sleeper")

    # Then no process of it is left and the group shows Stopped with the container killed
    wait_for(lambda: not processes_with(marker))
    stopped = aci_client.container_groups.get(RESOURCE_GROUP, "sleeper")
    assert stopped.instance_view.state == "Stopped"
    assert stopped.containers[0].instance_view.current_state.exit_code == 137


def test_start_runs_a_stopped_group_again(aci_client: ContainerInstanceManagementClient) -> None:
    # Given a stopped long-running group
    marker = f"marker-{uuid.uuid4().hex}"
    job = job_container("job", ["/bin/sh", "-c", f"sleep 3600; echo {marker}"])
    aci_client.container_groups.begin_create_or_update(RESOURCE_GROUP, "again", job_group(job)).result()
    aci_client.container_groups.stop(RESOURCE_GROUP, "again")
    wait_for(lambda: not processes_with(marker))

    # When it is started
    aci_client.container_groups.begin_start(RESOURCE_GROUP, "again").result()

    # Then it runs again
    wait_for(lambda: processes_with(marker))
    assert wait_for_group_state(aci_client, "again", {"Running"}).instance_view.state == "Running"


def test_delete_kills_the_running_process(aci_client: ContainerInstanceManagementClient) -> None:
    # Given a long-running job
    marker = f"marker-{uuid.uuid4().hex}"
    job = job_container("job", ["/bin/sh", "-c", f"sleep 3600; echo {marker}"])
    aci_client.container_groups.begin_create_or_update(RESOURCE_GROUP, "doomed", job_group(job)).result()
    wait_for(lambda: processes_with(marker))

    # When the group is deleted
    aci_client.container_groups.begin_delete(RESOURCE_GROUP, "doomed").result()

    # Then its process is gone and so is the group
    wait_for(lambda: not processes_with(marker))
    assert [g.name for g in aci_client.container_groups.list_by_resource_group(RESOURCE_GROUP)] == []


def test_a_group_deleted_at_once_after_its_create_leaves_no_process(
    aci_client: ContainerInstanceManagementClient, aci_emulator: AciEmulator
) -> None:
    # Given groups whose containers wait forever for each other, each deleted the moment it is created (a delete can
    # land while bubblewrap is still forking its sandbox)
    emptydir = [Volume(name="scratch", empty_dir={})]
    for n in range(30):
        producer = job_container("producer", ["sh", "-c", "echo x > /scratch/data; touch /scratch/done"])
        waiter = job_container("waiter", ["sh", "-c", "while [ ! -f /scratch/never ]; do sleep 0.2; done"])
        for container in (producer, waiter):
            container.volume_mounts = [VolumeMount(name="scratch", mount_path="/scratch")]
        group = job_group(producer, waiter, volumes=emptydir)
        aci_client.container_groups.begin_create_or_update(RESOURCE_GROUP, f"brief-{n}", group, polling=False).result()
        aci_client.container_groups.begin_delete(RESOURCE_GROUP, f"brief-{n}", polling=False).result()
    # Then no sandbox of this emulator is left running
    assert wait_for(lambda: not processes_with(str(aci_emulator.config.state_dir)), timeout=15)


def test_missing_share_fails_the_mount(aci_client: ContainerInstanceManagementClient) -> None:
    # Given a volume on a share that does not exist
    volume = Volume(name="v", azure_file=AzureFileVolume(share_name="nope", storage_account_name="jobstore"))
    group = job_group(job_container("job", ["/bin/true"], mounts={"v": "/mnt/v"}), volumes=[volume])

    # When the group is created
    poller = aci_client.container_groups.begin_create_or_update(RESOURCE_GROUP, "no-share", group)
    wait_for(poller.done)

    # Then provisioning failed with a FailedMount event while the group still exists, as in ACI
    got = aci_client.container_groups.get(RESOURCE_GROUP, "no-share")
    assert got.provisioning_state == "Failed"
    assert got.instance_view.state == "Pending"
    events = {e.name: e.message for e in got.instance_view.events}
    assert "mount error(2)" in events["FailedMount"]


def test_wrong_storage_key_fails_the_mount_with_permission_denied(
    make_aci_emulator: MakeEmulator, make_aci_client: MakeClient
) -> None:
    # Given an emulator that knows the key of account "jobstore", and a share that exists
    emulator = make_aci_emulator(storage_accounts={"jobstore": "right-key"})
    client = make_aci_client(emulator)
    (emulator.config.files_root / "jobstore" / "data").mkdir(parents=True)
    volume = Volume(
        name="v",
        azure_file=AzureFileVolume(share_name="data", storage_account_name="jobstore", storage_account_key="wrong"),
    )
    group = job_group(job_container("job", ["/bin/true"], mounts={"v": "/mnt/v"}), volumes=[volume])

    # When a group mounts it with a wrong key
    poller = client.container_groups.begin_create_or_update(RESOURCE_GROUP, "bad-key", group)
    wait_for(poller.done)

    # Then the mount fails with permission denied
    got = client.container_groups.get(RESOURCE_GROUP, "bad-key")
    assert got.provisioning_state == "Failed"
    events = {e.name: e.message for e in got.instance_view.events}
    assert "mount error(13): Permission denied" in events["FailedMount"]


def test_restart_reruns_the_container_in_place(aci_client: ContainerInstanceManagementClient) -> None:
    # Given a long-running job
    marker = f"marker-{uuid.uuid4().hex}"
    job = job_container("job", ["/bin/sh", "-c", f"sleep 3600; echo {marker}"])
    aci_client.container_groups.begin_create_or_update(RESOURCE_GROUP, "bounce", job_group(job)).result()
    first = wait_for(lambda: processes_with(marker))

    # When the group is restarted
    aci_client.container_groups.begin_restart(RESOURCE_GROUP, "bounce").result()

    # Then a new process replaced the old one and the restart is counted
    # (the old sandbox's inner processes die with it, a moment after the restart call returns)
    second = wait_for(lambda: [pid for pid in processes_with(marker) if pid not in first] or None)
    assert second
    assert wait_for(lambda: not set(first) & set(processes_with(marker)), what="the old processes to go")
    view = wait_for_group_state(aci_client, "bounce", {"Running"}).containers[0].instance_view
    assert view.restart_count == 1


def test_run_mode_without_bubblewrap_says_how_to_install_it(
    aci_client: ContainerInstanceManagementClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Given bwrap cannot be found on PATH
    monkeypatch.setenv("PATH", str(tmp_path))

    # When a group is created in run mode
    with pytest.raises(HttpResponseError) as caught:
        aci_client.container_groups.begin_create_or_update(
            RESOURCE_GROUP, "no-sandbox", job_group(job_container("job", ["/bin/true"]))
        )

    # Then creation fails, saying how to install bubblewrap, rather than running unsandboxed
    assert caught.value.status_code == 400
    assert "apt-get install bubblewrap" in caught.value.error.message


def test_a_job_sees_no_devstack_state_and_no_other_jobs_folders(
    aci_client: ContainerInstanceManagementClient, aci_emulator: AciEmulator
) -> None:
    # Given devstack state beside the emulator's (a vault's secrets file) and another job's emptyDir on the host
    state = Path(aci_emulator.config.state_dir)
    (state / "vault-secrets.json").write_text('{"storage-account-key": "the-real-key"}')
    writer = job_container("job", ["sh", "-c", "echo other-job-data > /scratch/f; sleep 30"], mounts={"s": "/scratch"})
    other = job_group(writer, volumes=[Volume(name="s", empty_dir={})])
    aci_client.container_groups.begin_create_or_update(RESOURCE_GROUP, "other-job", other).result()
    wait_for(lambda: list(state.rglob("f")), what="the other job's file")
    # When a job reads what it can name: the state folder, the secrets file, every file of the host it can find
    probe = f"ls {state} 2>&1; cat {state}/vault-secrets.json 2>&1; grep -rs other-job-data /tmp /root /etc /dev; ls /"
    group = job_group(job_container("job", ["sh", "-c", probe]))
    aci_client.container_groups.begin_create_or_update(RESOURCE_GROUP, "nosy", group).result()
    wait_for_group_state(aci_client, "nosy", FINISHED, timeout=60)
    logs = aci_client.containers.list_logs(RESOURCE_GROUP, "nosy", "job").content or ""
    # Then it saw none of it: its root holds the system folders and its own, nothing else
    assert "the-real-key" not in logs
    assert "other-job-data" not in logs
    assert logs.count("No such file or directory") == 2
    listed = set(logs.strip().split("\n")[-12:])
    assert {"usr", "etc", "tmp", "proc"} <= listed
    assert state.name not in listed


def test_a_job_cannot_reach_the_emulators_or_anything_on_the_host(
    aci_client: ContainerInstanceManagementClient, aci_emulator: AciEmulator
) -> None:
    port = aci_emulator.url.rsplit(":", 1)[1].split("/")[0]
    probe = f"echo > /dev/tcp/127.0.0.1/{port} && echo reached || echo refused"
    group = job_group(job_container("job", ["bash", "-c", probe]))
    aci_client.container_groups.begin_create_or_update(RESOURCE_GROUP, "no-net", group).result()
    wait_for_group_state(aci_client, "no-net", FINISHED)
    logs = aci_client.containers.list_logs(RESOURCE_GROUP, "no-net", "job").content or ""
    assert "refused" in logs
    assert "reached" not in logs


def test_a_secure_value_is_on_no_command_line_of_the_host(aci_client: ContainerInstanceManagementClient) -> None:
    value = f"secure-{uuid.uuid4().hex}"
    container = job_container("job", ["sh", "-c", "sleep 20"], secure_env={"TOKEN": value})
    aci_client.container_groups.begin_create_or_update(RESOURCE_GROUP, "quiet", job_group(container)).result()
    wait_for_group_state(aci_client, "quiet", {"Running"})
    assert processes_with("sleep 20")  # the sandbox runs
    assert not processes_with(value)  # and no command line holds the value
