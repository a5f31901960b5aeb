"""Loading a v2 function_app.py and indexing its functions from the app's own metadata."""

import textwrap
from pathlib import Path

import pytest

from devstack.host.loader import FunctionAppError, load_function_app
from tests.fixtures.host import SAMPLE_APP


def _app(tmp_path: Path, body: str) -> Path:
    (tmp_path / "function_app.py").write_text(
        "import azure.functions as func\n\napp = func.FunctionApp()\n\n" + textwrap.dedent(body)
    )
    return tmp_path


def test_every_function_is_indexed_with_its_trigger() -> None:
    # When the sample app is loaded
    loaded = load_function_app(SAMPLE_APP)
    # Then its functions come with the triggers their decorators declared
    functions = loaded.functions
    assert functions["echo"].trigger_type == "httpTrigger"
    assert functions["echo"].trigger["route"] == "echo/{id?}"
    assert functions["echo"].wants_context
    assert functions["on_job"].trigger_type == "serviceBusTrigger"
    assert functions["on_job"].trigger["queueName"] == "%JOBS_QUEUE%"
    assert functions["heartbeat"].trigger["runOnStartup"] is True
    assert functions["slow_tick"].is_async
    assert not functions["heartbeat"].is_async


def test_each_load_gets_its_own_module() -> None:
    first = load_function_app(SAMPLE_APP)
    second = load_function_app(SAMPLE_APP)
    assert first.module is not second.module
    assert first.module.RECORDED is not second.module.RECORDED


def test_a_function_name_decorator_renames_the_function(tmp_path: Path) -> None:
    app_dir = _app(
        tmp_path,
        """
        @app.function_name("Renamed")
        @app.route(route="x")
        def original(req: func.HttpRequest) -> str:
            return "x"
        """,
    )
    assert list(load_function_app(app_dir).functions) == ["Renamed"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            """
            @app.blob_trigger(arg_name="blob", path="c/{name}", connection="S")
            def on_blob(blob):
                pass
            """,
            "blobTrigger",
        ),
        (
            """
            @app.route(route="x")
            @app.queue_output(arg_name="out", queue_name="q", connection="S")
            def with_output(req, out):
                pass
            """,
            "queue",
        ),
        (
            """
            @app.route(route="x")
            def extra(req, surprise):
                pass
            """,
            "surprise",
        ),
    ],
)
def test_what_the_runner_cannot_drive_is_refused_by_name(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(FunctionAppError, match=message):
        load_function_app(_app(tmp_path, body))


def test_a_script_without_a_function_app_is_refused(tmp_path: Path) -> None:
    (tmp_path / "function_app.py").write_text("x = 1\n")
    with pytest.raises(FunctionAppError, match="exactly one FunctionApp"):
        load_function_app(tmp_path)


def test_a_missing_script_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FunctionAppError, match=r"no function_app\.py"):
        load_function_app(tmp_path)
