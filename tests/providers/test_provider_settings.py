"""Provider settings: a ``[providers.X]`` table is merged over the built-in default, never
dropping ``api_key_env``; older key names still work; the registry resolves names."""

from __future__ import annotations

from pathlib import Path

import pytest

from promptlab.providers import ProviderNotConfigured, Providers, ProviderSettings, merge_providers
from promptlab.settings import load_settings


def test_a_table_for_a_builtin_provider_changes_only_what_it_names() -> None:
    merged = merge_providers({"openai": {"api_base": "http://127.0.0.1:9/v1"}})
    assert merged["openai"].api_base == "http://127.0.0.1:9/v1"
    assert merged["openai"].api_key_env == "OPENAI_API_KEY"
    assert merged["simulated"].kind == "simulated"


def test_the_config_file_merges_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "promptlab.toml"
    config.write_text(
        '[providers.openai]\napi_base = "http://127.0.0.1:9/v1"\n'
        '[providers.local]\napi_base = "http://127.0.0.1:8/v1"\nfallbacks = ["openai/gpt-4o-mini"]\n'
    )
    monkeypatch.chdir(tmp_path)
    settings = load_settings(config)
    assert settings.providers["openai"].api_key_env == "OPENAI_API_KEY"
    assert settings.providers["openai"].api_base == "http://127.0.0.1:9/v1"
    assert settings.providers["local"].fallbacks == ["openai/gpt-4o-mini"]


def test_older_names_are_accepted() -> None:
    cfg = ProviderSettings.model_validate({"total_timeout_s": 3, "extra_headers": {"X-A": "1"}})
    assert cfg.timeout_s == 3 and cfg.headers == {"X-A": "1"}
    assert cfg.max_response_bytes == 32 * 1024 * 1024


def test_names_resolve_and_unknown_ones_are_not_configured() -> None:
    p = Providers(merge_providers({}), default_provider="openai", environ={})
    assert p.resolve("simulated/alpha").qualified == "simulated/alpha"
    assert p.resolve("gpt-4o-mini", strict=False).qualified == "openai/gpt-4o-mini"
    assert p.resolve("meta/llama-3", strict=False).qualified == "openai/meta/llama-3"
    with pytest.raises(ProviderNotConfigured) as caught:
        p.resolve("nowhere/model")
    assert caught.value.status == 400 and caught.value.kind == "not_configured"


def test_describe_says_whether_a_key_is_there_never_the_key() -> None:
    key = "sk-test-never-print-me-0123456789"
    p = Providers(merge_providers({}), environ={"OPENAI_API_KEY": key})
    lines = p.describe()
    assert lines[0] == "openai: kind=openai base=https://api.openai.com/v1 key=yes"
    assert not any(key in line for line in lines)
