"""Reading the Prometheus text format."""

from __future__ import annotations

import math

import pytest

from operators.gateway.base import status_class
from operators.gateway.prometheus import ExpositionError, parse_exposition

TEXT = r"""# HELP apisix_http_status HTTP status codes per service in APISIX
# TYPE apisix_http_status counter
apisix_http_status{code="200",route="web",matched_uri="/*",matched_host="a.b",service="",consumer="",node="10.0.0.1"} 42
apisix_http_status{code="502",route="we\"b",matched_uri="/x\\y",matched_host="",service="",consumer="",node="10.0.0.2"} 3 1700000000000

apisix_nginx_http_current_connections{state="active"} +Inf
apisix_etcd_reachable 1
"""


def test_reads_labels_values_and_escapes() -> None:
    samples = list(parse_exposition(TEXT))
    assert [s.name for s in samples] == [
        "apisix_http_status",
        "apisix_http_status",
        "apisix_nginx_http_current_connections",
        "apisix_etcd_reachable",
    ]
    assert samples[0].labels["node"] == "10.0.0.1" and samples[0].value == 42
    assert samples[1].labels["route"] == 'we"b' and samples[1].labels["matched_uri"] == "/x\\y"
    assert samples[1].value == 3
    assert math.isinf(samples[2].value)
    assert samples[3].labels == {}


def test_filters_by_name() -> None:
    samples = list(parse_exposition(TEXT, names=frozenset({"apisix_etcd_reachable"})))
    assert [(s.name, s.value) for s in samples] == [("apisix_etcd_reachable", 1.0)]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('m{a="1', "line 2: unterminated value"),
        ('m{a="1" 3', "line 2: label without"),
        ("m{a=1} 3", "no quoted value"),
        ("m{} x", "not a number"),
        ("m", "no value"),
    ],
)
def test_malformed_lines_name_their_number(line: str, message: str) -> None:
    with pytest.raises(ExpositionError, match=message):
        list(parse_exposition("# ok\n" + line))


def test_status_class() -> None:
    assert [status_class(c) for c in ("200", 302, "404", "503", "99", "x")] == [
        "2xx",
        "3xx",
        "4xx",
        "5xx",
        None,
        None,
    ]
