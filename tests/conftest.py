"""Every test runs offline, with its own MFM_HOME (the record of the last trained mapper)."""
import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_mfm_home(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("MFM_HOME", str(tmp_path_factory.mktemp("mfm_home")))
