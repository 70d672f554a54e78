from __future__ import annotations

from pathlib import Path

import pytest
from hello_api.config import DEFAULT_BUILD_INFO, ConfigError, Settings


def test_defaults() -> None:
    settings = Settings.from_env({})
    assert (settings.host, settings.port, settings.environment) == (
        "127.0.0.1",
        8080,
        "development",
    )
    assert settings.build_info_path == DEFAULT_BUILD_INFO
    assert settings.problems() == []


def test_reads_the_environment() -> None:
    settings = Settings.from_env(
        {
            "HOST": "::1",
            "PORT": "9090",
            "ENVIRONMENT": "Production",
            "SITE_NAME": "site-b",
            "DEFAULT_LANGUAGE": "zh",
            "BUILD_INFO_FILE": "/opt/hello/BUILD_INFO.json",
        }
    )
    assert settings == Settings(
        host="::1",
        port=9090,
        environment="production",
        site_name="site-b",
        default_language="zh",
        build_info_path=Path("/opt/hello/BUILD_INFO.json"),
    )
    assert settings.served_by == "site-b"
    assert settings.problems() == []


@pytest.mark.parametrize("port", ["http", "70000", "-1"])
def test_unusable_port_is_an_error(port: str) -> None:
    with pytest.raises(ConfigError, match="PORT"):
        Settings.from_env({"PORT": port})


def test_problems_name_the_setting() -> None:
    settings = Settings.from_env({"ENVIRONMENT": "prod", "DEFAULT_LANGUAGE": "tlh"})
    problems = settings.problems()
    assert len(problems) == 2
    assert problems[0].startswith("ENVIRONMENT must be one of")
    assert problems[1].startswith("DEFAULT_LANGUAGE must be one of")


def test_served_by_falls_back_to_the_host_name() -> None:
    assert Settings().served_by
