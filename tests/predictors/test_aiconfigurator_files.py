"""The config.json the AIC predictor writes for a model AIC does not bundle: on a full disk the error names
that file and leaves no partial one (a half-written config.json would be read as the model's)."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoquant.errors import describe
from autoquant.predictors import aiconfigurator as aic


@pytest.fixture
def full_disk(full_disk):
    """Writing config.json (or a .tmp file) fails; every other file is untouched."""
    full_disk(lambda name: name == "config.json" or name.endswith(".tmp"))


def _predictor(root: Path) -> aic.AICPredictor:
    p = aic.AICPredictor(estimate=lambda *a, **k: None, versions={}, bundled=frozenset(), aic_version="test")
    p._root = str(root)  # its temporary folder, here under tmp_path
    return p


def test_model_folder_holds_config_json(tmp_path, model):
    folder = Path(_predictor(tmp_path)._model_path(model("meta-llama__Llama-3.1-8B-Instruct")))
    assert [p.name for p in folder.iterdir()] == ["config.json"]


def test_full_disk_names_config_json_and_leaves_no_partial_file(tmp_path, model, full_disk):
    with pytest.raises(OSError) as info:
        _predictor(tmp_path)._model_path(model("meta-llama__Llama-3.1-8B-Instruct"))
    [folder] = tmp_path.iterdir()
    assert describe(info.value) == f"{folder / 'config.json'}: No space left on device"
    assert list(folder.iterdir()) == []
