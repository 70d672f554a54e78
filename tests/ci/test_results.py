"""Result parsers: JUnit, Cobertura, SARIF, bandit, image; hostile and broken input refused."""

from __future__ import annotations

import base64
import json

import pytest

from operators.ci.logstream import ResultError
from operators.ci.results import (
    MAX_DOCUMENT_BYTES,
    count_by_severity,
    findings_summary,
    parse_cobertura,
    parse_findings,
    parse_image,
    parse_junit,
)

JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="hello-api" tests="5">
  <testcase classname="tests.test_greetings" name="test_hello" time="0.1"/>
  <testcase classname="tests.test_greetings" name="test_chinese">
    <failure message="AssertionError: assert '你好' == 'hello'&#10;second line">trace</failure>
  </testcase>
  <testcase classname="tests.test_server" name="test_boot"><error message="">RuntimeError: port in use
more</error></testcase>
  <testcase classname="tests.test_server" name="test_slow"><skipped message="slow"/></testcase>
  <testcase classname="tests.test_server" name="test_ok"/>
</testsuite></testsuites>"""

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<testsuites><testsuite><testcase name="&lol3;"/></testsuite></testsuites>"""

EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE t [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<coverage line-rate="1">&secret;</coverage>"""

COBERTURA = """<?xml version="1.0" ?>
<coverage version="7.6" line-rate="0.8869" branch-rate="0.9" lines-covered="243" lines-valid="274">
<packages/></coverage>"""


def encoded(kind: str, text: str | bytes, **extra: str) -> dict:
    raw = text.encode() if isinstance(text, str) else text
    return {"kind": kind, "encoding": "base64", "data": base64.b64encode(raw).decode(), **extra}


def test_junit_counts_and_failing_cases():
    report = parse_junit(encoded("junit", JUNIT))
    assert (report.total, report.passed, report.failed, report.errors, report.skipped) == (
        5,
        2,
        1,
        1,
        1,
    )
    assert not report.ok
    assert report.failed_cases == [
        {
            "classname": "tests.test_greetings",
            "name": "test_chinese",
            "outcome": "failed",
            "message": "AssertionError: assert '你好' == 'hello'",
        },
        {
            "classname": "tests.test_server",
            "name": "test_boot",
            "outcome": "error",
            "message": "RuntimeError: port in use",
        },
    ]
    block = report.summary_block()
    assert "tests total=5 passed=2 failed=1 errors=1 skipped=1" in block
    assert "FAILED tests.test_greetings.test_chinese (failed): AssertionError" in block


def test_junit_with_a_single_testsuite_root():
    report = parse_junit(encoded("junit", '<testsuite><testcase name="a"/></testsuite>'))
    assert report.total == report.passed == 1 and report.ok


@pytest.mark.parametrize(
    ("document", "words"),
    [
        (BILLION_LAUGHS, "refused unsafe XML"),
        (EXTERNAL_ENTITY.replace("coverage", "testsuites"), "refused unsafe XML"),
        ("<testsuites><testcase>", "malformed XML"),
        ("<html><body/></html>", "root element is <html>"),
    ],
)
def test_hostile_or_broken_junit_is_refused_clearly(document, words):
    with pytest.raises(ResultError, match=f"^junit report: {words}"):
        parse_junit(encoded("junit", document))


def test_oversized_and_undecodable_payloads_are_refused():
    with pytest.raises(ResultError, match="junit report: refused, larger than"):
        parse_junit(encoded("junit", b"<a>" + b" " * MAX_DOCUMENT_BYTES + b"</a>"))
    with pytest.raises(ResultError, match="coverage report: 'data' is not valid base64"):
        parse_cobertura({"kind": "coverage", "encoding": "base64", "data": "%%%"})
    with pytest.raises(ResultError, match="coverage report: the result has no 'data'"):
        parse_cobertura({"kind": "coverage"})


def test_cobertura_line_coverage():
    report = parse_cobertura(encoded("coverage", COBERTURA, format="cobertura"))
    assert report.percent == pytest.approx(88.69, abs=0.01)
    assert (report.lines_covered, report.lines_valid) == (243, 274)
    only_rate = parse_cobertura(encoded("coverage", '<coverage line-rate="0.5"/>'))
    assert only_rate.percent == 50.0


def test_cobertura_refuses_entities_and_nonsense():
    with pytest.raises(ResultError, match="^coverage report: refused unsafe XML"):
        parse_cobertura(encoded("coverage", EXTERNAL_ENTITY))
    with pytest.raises(ResultError, match="no usable line-rate"):
        parse_cobertura(encoded("coverage", '<coverage line-rate="7"/>'))


def sarif(results: list[dict]) -> str:
    return json.dumps({"version": "2.1.0", "runs": [{"results": results}]})


def sarif_result(rule: str, level: str = "error", **properties: object) -> dict:
    item = {
        "ruleId": rule,
        "level": level,
        "message": {"text": f"{rule} message\nmore"},
        "locations": [
            {
                "physicalLocation": {
                    "artifactLocation": {"uri": "file:///w/app.py"},
                    "region": {"startLine": 7},
                }
            }
        ],
    }
    if properties:
        item["properties"] = properties
    return item


def test_ruff_sarif_is_graded_by_rule_family():
    document = sarif(
        [sarif_result("E999"), sarif_result("F401"), sarif_result("S104"), sarif_result("D100")]
    )
    findings = parse_findings(encoded("findings", document, tool="ruff", format="sarif"))
    assert [(f.rule, f.severity) for f in findings] == [
        ("E999", "high"),
        ("F401", "medium"),
        ("S104", "medium"),
        ("D100", "low"),
    ]
    assert findings[0].path == "/w/app.py" and findings[0].line == 7
    assert findings[0].message == "E999 message"


def test_other_sarif_uses_security_severity_then_level():
    document = sarif(
        [
            sarif_result("X1", **{"security-severity": "9.8"}),
            sarif_result("X2", **{"security-severity": "7.5"}),
            sarif_result("X3", level="warning"),
            sarif_result("X4", level="note"),
        ]
    )
    findings = parse_findings(encoded("findings", document, tool="codeql", format="sarif"))
    assert [f.severity for f in findings] == ["critical", "high", "medium", "low"]


def test_bandit_json_and_summary():
    document = json.dumps(
        {
            "results": [
                {
                    "test_id": "B602",
                    "issue_severity": "HIGH",
                    "issue_text": "shell=True",
                    "filename": "a.py",
                    "line_number": 3,
                },
                {
                    "test_id": "B104",
                    "issue_severity": "MEDIUM",
                    "issue_text": "bind all",
                    "filename": "b.py",
                    "line_number": 9,
                },
                {
                    "test_id": "B101",
                    "issue_severity": "LOW",
                    "issue_text": "assert",
                    "filename": "c.py",
                    "line_number": 1,
                },
            ]
        }
    )
    findings = parse_findings(encoded("findings", document, tool="bandit", format="bandit-json"))
    assert count_by_severity(findings) == {"critical": 0, "high": 1, "medium": 1, "low": 1}
    summary = findings_summary(findings, top=2)
    assert summary["total"] == 3 and summary["by_tool"] == {"bandit": 3}
    assert [item["rule"] for item in summary["top"]] == ["B602", "B104"]


@pytest.mark.parametrize(
    ("result", "words"),
    [
        (encoded("findings", "{", tool="ruff", format="sarif"), "not valid JSON"),
        (encoded("findings", "{}", tool="ruff", format="sarif"), "not a SARIF log"),
        (
            encoded("findings", "[]", tool="bandit", format="bandit-json"),
            "not a bandit JSON report",
        ),
        (encoded("findings", "{}", tool="x", format="pmd"), "unknown format"),
    ],
)
def test_broken_findings_are_refused(result, words):
    with pytest.raises(ResultError, match=words):
        parse_findings(result)


DIGEST = "sha256:" + "ab" * 32
COMMIT = "5cb631f52ce09aa1678db0f882ba81c1d2d39642"


def test_image_result_must_be_pinned_to_its_digest():
    image = parse_image(
        {
            "kind": "image",
            "image": f"registry.local:5000/hello-api@{DIGEST}",
            "digest": DIGEST,
            "commit": COMMIT,
        }
    )
    assert image.to_dict() == {
        "image": f"registry.local:5000/hello-api@{DIGEST}",
        "digest": DIGEST,
        "commit": COMMIT,
    }
    other = "sha256:" + "cd" * 32
    for bad, words in (
        (
            {"image": "registry.local:5000/hello-api:latest", "digest": DIGEST, "commit": COMMIT},
            "pinned by digest",
        ),
        (
            {"image": f"registry.local:5000/hello-api@{other}", "digest": DIGEST, "commit": COMMIT},
            "not pinned to digest",
        ),
        (
            {
                "image": f"registry.local:5000/hello-api@{DIGEST}",
                "digest": DIGEST,
                "commit": "main",
            },
            "40-character",
        ),
    ):
        with pytest.raises(ResultError, match=words):
            parse_image({"kind": "image", **bad})
