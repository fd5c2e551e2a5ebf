"""Settings: the documented file, environment overrides and clear errors."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from pydantic import BaseModel

from promptlab.settings import Settings, SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "config" / "promptlab.toml"


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PROMPTLAB_CONFIG", raising=False)


def _keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            keys += _keys(ann, f"{prefix}{name}.")
        else:
            keys.append(f"{prefix}{name}")
    return keys


def test_embedded_defaults_need_no_file() -> None:
    settings = load_settings()
    assert settings.nats.url == "embedded"
    assert settings.server.host == "127.0.0.1"
    assert settings.server.port == 8787
    assert settings.storage.url.startswith("sqlite+aiosqlite:///")
    assert set(settings.providers) >= {"openai", "simulated"}


def test_documented_file_equals_embedded_defaults() -> None:
    assert load_settings(CONFIG) == Settings()


def test_every_setting_is_documented_in_the_file() -> None:
    text = CONFIG.read_text()
    missing = [
        key
        for key in _keys(Settings)
        if key != "providers"
        and not re.search(rf"^#?\s*{re.escape(key.split('.')[-1])}\s*=", text, re.M)
    ]
    assert missing == []


def test_issue_keys_work_as_shown(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text(
        '[server]\nhost = "0.0.0.0"\nport = 9001\napi_keys = ["k1"]\nadmin_keys = ["a1"]\n'
        '[nats]\nurl = "nats://10.0.0.5:4222"\ndata_dir = "d/nats"\n'
        '[storage]\nurl = "postgresql+asyncpg://u@h/db"\n'
        '[providers.openai]\nkind = "openai"\napi_base = "http://x/v1"\napi_key_env = "K"\n'
        '[prompts]\ndir = "p"\n'
        "[learner.promotion]\nthreshold = 0.9\nmin_samples = 50\nmin_lift = 0.02\nalpha = 0.01\n"
    )
    s = load_settings(path)
    assert (s.server.host, s.server.port) == ("0.0.0.0", 9001)
    assert [k.get_secret_value() for k in s.server.api_keys] == ["k1"]
    assert s.nats.url == "nats://10.0.0.5:4222" and s.nats.data_dir == Path("d/nats")
    assert s.storage.url == "postgresql+asyncpg://u@h/db"
    assert s.providers["openai"].api_base == "http://x/v1"
    assert "simulated" in s.providers
    assert s.prompts.dir == Path("p")
    promo = s.learner.promotion
    assert (promo.threshold, promo.min_samples, promo.min_lift, promo.alpha) == (
        0.9,
        50,
        0.02,
        0.01,
    )


def test_environment_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "p.toml"
    path.write_text("[server]\nport = 9001\n")
    monkeypatch.setenv("PROMPTLAB_CONFIG", str(path))
    monkeypatch.setenv("PROMPTLAB_SERVER__PORT", "9100")
    monkeypatch.setenv("PROMPTLAB_LEARNER__PROMOTION__THRESHOLD", "0.99")
    s = load_settings()
    assert s.server.port == 9100
    assert s.learner.promotion.threshold == 0.99


def test_wrong_value_names_file_key_and_expectation(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[server]\nport = "eighty"\n[learner.promotion]\nthreshold = 2\n')
    with pytest.raises(SettingsError) as info:
        load_settings(path)
    message = str(info.value)
    assert f"{path}: [server] port: Input should be a valid integer" in message
    assert "[learner.promotion] threshold: Input should be less than 1" in message
    assert "(got 2)" in message


def test_unknown_key_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[server]\nprot = 1\n")
    with pytest.raises(SettingsError, match=r"\[server\] prot: unknown key"):
        load_settings(path)


def test_wrong_environment_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMPTLAB_NATS__EMBEDDED_PORT", "-3")
    with pytest.raises(
        SettingsError, match="environment PROMPTLAB_NATS__EMBEDDED_PORT: \\[nats\\] embedded_port"
    ):
        load_settings()


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="config file not found"):
        load_settings(tmp_path / "nope.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[server\nport = 1\n")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings(broken)


def test_default_file_in_working_directory_is_used(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "promptlab.toml").write_text("[server]\nport = 9200\n")
    assert load_settings().server.port == 9200


def test_shipped_file_is_valid_toml() -> None:
    assert tomllib.loads(CONFIG.read_text())["server"]["port"] == 8787
