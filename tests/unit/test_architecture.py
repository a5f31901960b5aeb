"""The architecture, checked: the import-linter contracts in pyproject.toml hold (``make lint`` runs them too)."""

from importlinter.cli import lint_imports


def test_the_layers_hold_and_only_adapters_and_the_composition_root_import_the_azure_sdks() -> None:
    # The core once imported the ACI mapping (and through it the SDK's private serializer) for names and tags.
    assert lint_imports(no_logo=True, no_cache=True) == 0
