"""Shared fixtures for checkpoint resolution tests.

`FakeHub` is a fake of the Hugging Face Hub boundary only (the `HubClient` protocol): it serves the
reconstructed Hub metadata under tests/fixtures/hub/repos (see its README). Everything behind the
boundary (parsing, verification, Marlin rules, ranking) is the real code.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autoquant.checkpoints.hub import (
    DownloadPlan,
    GatedRepo,
    HubRepo,
    HubSettings,
    HubUnavailable,
    RepoNotFound,
)
from autoquant.modelspec import from_hf_config

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
HUB = FIXTURES / "hub" / "repos"
HF_CONFIGS = FIXTURES / "hf-configs"


class FakeHub:
    """Fake of the Hub boundary (HubClient protocol) over recorded fixture metadata."""

    def __init__(self, root: Path = HUB, *, unreachable: bool = False, token_set: bool = False):
        self.root = root
        self.unreachable = unreachable
        self.token_set = token_set
        self.calls: list[tuple[str, str]] = []
        self.repos = {}
        for d in sorted(root.iterdir()):
            info = json.loads((d / "info.json").read_text())
            self.repos[info["id"].lower()] = (d, info)

    def _net(self, what: str, arg: str) -> None:
        self.calls.append((what, arg))
        if self.unreachable:
            raise HubUnavailable("the Hugging Face Hub is not reachable (ConnectError)")

    def _get(self, repo: str) -> tuple[Path, dict]:
        hit = self.repos.get(repo.lower())
        if hit is None:
            raise RepoNotFound(repo, self.token_set)
        if hit[1].get("gated") and not self.token_set:
            raise GatedRepo(hit[1]["id"], self.token_set)
        return hit

    @staticmethod
    def _repo(info: dict, with_files: bool) -> HubRepo:
        return HubRepo(id=info["id"], sha=info.get("sha"), tags=list(info.get("tags", [])),
                       base_models=list(info.get("base_models", [])), library_name=info.get("library_name"),
                       gated=info.get("gated"), downloads=info.get("downloads"),
                       files=[(p, s) for p, s in info["files"]] if with_files else [])

    def search(self, *, filter=None, author=None, search=None, limit=100):
        self._net("search", f"{filter}|{author}|{search}")
        out = []
        for _, info in self.repos.values():
            if filter and filter not in info.get("tags", []):
                continue
            if author and info["id"].split("/")[0].lower() != author.lower():
                continue
            if search and search.lower() not in info["id"].lower():
                continue
            out.append(self._repo(info, with_files=False))
        return out[:limit]

    def repo_info(self, repo, revision=None):
        self._net("repo_info", repo)
        _, info = self._get(repo)
        return self._repo(info, with_files=True)

    def read_json(self, repo, filename, revision=None):
        self._net("read_json", f"{repo}/{filename}")
        d, _ = self._get(repo)
        p = d / filename
        return json.loads(p.read_text()) if p.is_file() else None

    def gguf_header(self, repo, filename, revision=None):
        self._net("gguf_header", f"{repo}/{filename}")
        d, _ = self._get(repo)
        p = d / "gguf_headers.json"
        return json.loads(p.read_text()).get(filename) if p.is_file() else None

    def download(self, repo, *, revision=None, allow_patterns=None, local_dir=None, dry_run=False):
        import fnmatch

        self._net("download", repo)
        _, info = self._get(repo)
        files = [(p, s, False) for p, s in info["files"]
                 if not allow_patterns or any(fnmatch.fnmatch(p, pat) for pat in allow_patterns)]
        return DownloadPlan(repo=info["id"], revision=revision, files=files,
                            path=None if dry_run else str(local_dir or "/tmp/fake-snapshot"))


def spec(config_dir: str, model_id: str):
    """A base ModelSpec from a real published config fixture, under the id asked for."""
    config = json.loads((HF_CONFIGS / config_dir / "config.json").read_text())
    return from_hf_config(config, model_id, "config")


@pytest.fixture
def fake_hub() -> FakeHub:
    return FakeHub()


@pytest.fixture
def settings(tmp_path: Path) -> HubSettings:
    """Online, no token, an empty HF cache under tmp_path (the user's real cache is never read)."""
    return HubSettings(offline=False, token_set=False, cache_dir=str(tmp_path / "hf-cache"))


@pytest.fixture
def make_hub():
    """FakeHub factory (e.g. make_hub(unreachable=True))."""
    return FakeHub


@pytest.fixture
def spec_of():
    return spec
