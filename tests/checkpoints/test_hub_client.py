"""HfHubClient's edges without a network: settings from the environment and error mapping of real
huggingface_hub exception classes."""

from __future__ import annotations

import pytest
from huggingface_hub.errors import GatedRepoError, OfflineModeIsEnabled, RepositoryNotFoundError

from autoquant.checkpoints.hub import (
    GatedRepo,
    HfHubClient,
    HubSettings,
    HubUnavailable,
    RepoNotFound,
    map_hub_error,
)


def _raised(cls: type[Exception], message: str) -> Exception:
    """An instance of huggingface_hub's own class, built without its HTTP response (its __init__ varies
    across versions; the mapping only looks at the class)."""
    exc = cls.__new__(cls)
    Exception.__init__(exc, message)
    return exc


def test_settings_read_from_env_not_import(tmp_path):
    s = HubSettings.from_env({"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path), "HF_TOKEN": "hf_secret"})
    assert s.offline and s.token_set and s.cache_dir == str(tmp_path / "hub")
    assert "hf_secret" not in repr(s)  # only whether a token is set is kept
    assert not HubSettings.from_env({"HF_HOME": str(tmp_path)}).offline


def test_gated_error_names_repo_and_token():
    exc = _raised(GatedRepoError, "403 gated")
    mapped = map_hub_error(exc, "meta-llama/Llama-3.1-405B-Instruct-FP8", token_set=False)
    assert isinstance(mapped, GatedRepo)
    assert "meta-llama/Llama-3.1-405B-Instruct-FP8" in str(mapped) and "HF_TOKEN" in str(mapped)


def test_not_found_and_offline_mapped():
    assert isinstance(map_hub_error(_raised(RepositoryNotFoundError, "404"), "a/b", False),
                      RepoNotFound)
    assert isinstance(map_hub_error(OfflineModeIsEnabled("offline"), "a/b", False), HubUnavailable)
    assert map_hub_error(ValueError("bug"), "a/b", False) is None


def test_offline_client_never_calls_the_library():
    client = HfHubClient(HubSettings(offline=True))
    with pytest.raises(HubUnavailable, match="HF_HUB_OFFLINE"):
        client.repo_info("a/b")
    assert client._api is None
