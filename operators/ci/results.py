"""Parse what a CI step reports: image, JUnit XML, Cobertura coverage, SARIF and bandit findings.

Every parser takes the result dict printed by the step (see ``operators.ci.logstream``) and
returns a small, JSON-friendly value. XML goes through ``defusedxml`` with DTDs forbidden, so
entity expansion ("billion laughs"), external entities and malformed documents are refused with
a :class:`~operators.ci.logstream.ResultError` whose message names the result kind.

Findings from all tools are normalized to the severities ``critical``, ``high``, ``medium`` and
``low``:

- SARIF: ``properties.security-severity`` when present (CVSS-like: >= 9 critical, >= 7 high,
  >= 4 medium, else low). Ruff marks every result ``error``, so ruff findings are graded by rule
  family instead: syntax errors (E9) high; pyflakes (F), bugbear (B) and security (S) rules
  medium; style and everything else low. Other tools map ``error``/``warning``/``note`` to
  high/medium/low.
- bandit JSON: ``issue_severity`` HIGH/MEDIUM/LOW to high/medium/low.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from include.params import check_image_ref
from operators.ci.logstream import ResultError

SEVERITIES = ("critical", "high", "medium", "low")
MAX_DOCUMENT_BYTES = 5 * 1024 * 1024
MAX_FAILED_CASES = 50
MAX_MESSAGE_CHARS = 300

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_RUFF_MEDIUM_PREFIXES = ("F", "B", "S")


def decode_payload(result: dict[str, Any], label: str) -> bytes:
    """The raw bytes of a result's ``data``, checked against the size limit."""
    data = result.get("data")
    if not isinstance(data, str):
        raise ResultError(f"{label}: the result has no 'data' string")
    encoding = result.get("encoding", "base64")
    if encoding == "base64":
        if len(data) > MAX_DOCUMENT_BYTES * 4 // 3 + 4:
            raise ResultError(f"{label}: refused, larger than {MAX_DOCUMENT_BYTES} bytes")
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise ResultError(f"{label}: 'data' is not valid base64") from None
    elif encoding in ("utf-8", "text", None):
        raw = data.encode("utf-8")
    else:
        raise ResultError(f"{label}: unknown encoding {encoding!r}; expected base64")
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise ResultError(f"{label}: refused, {len(raw)} bytes is over {MAX_DOCUMENT_BYTES}")
    return raw


def _parse_xml(raw: bytes, label: str) -> Any:
    from xml.etree.ElementTree import ParseError

    from defusedxml import DefusedXmlException
    from defusedxml.ElementTree import fromstring

    try:
        return fromstring(raw, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as err:
        raise ResultError(
            f"{label}: refused unsafe XML ({type(err).__name__}: DTDs and entities are not allowed)"
        ) from None
    except ParseError as err:
        raise ResultError(f"{label}: malformed XML ({err})") from None


# --- image -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageResult:
    """A built image: its digest-pinned reference and the commit it was built from."""

    image: str
    digest: str
    commit: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def parse_image(result: dict[str, Any]) -> ImageResult:
    """Check an ``image`` result: a digest-pinned reference whose digest matches."""
    image, digest, commit = result.get("image"), result.get("digest"), result.get("commit")
    try:
        check_image_ref(image)
    except ValueError as err:
        raise ResultError(f"image result: {err}") from None
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
        raise ResultError(f"image result: digest {digest!r} is not sha256:<64 hex digits>")
    if not str(image).endswith("@" + digest):
        raise ResultError(f"image result: image {image!r} is not pinned to digest {digest}")
    if not isinstance(commit, str) or not _COMMIT.fullmatch(commit):
        raise ResultError(f"image result: commit {commit!r} is not a 40-character commit id")
    return ImageResult(image=str(image), digest=digest, commit=commit)


# --- JUnit -----------------------------------------------------------------------------------


@dataclass
class JUnitReport:
    """Counts of a JUnit report and the cases that did not pass."""

    total: int = 0
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    failed_cases: list[dict[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.errors == 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe_case(self, case: dict[str, str]) -> str:
        name = f"{case['classname']}.{case['name']}" if case["classname"] else case["name"]
        return f"{name} ({case['outcome']}): {case['message']}" if case["message"] else name

    def summary_block(self) -> str:
        """A readable multi-line block for the task log."""
        lines = [
            f"tests total={self.total} passed={self.passed} failed={self.failed} "
            f"errors={self.errors} skipped={self.skipped}"
        ]
        for case in self.failed_cases:
            lines.append(f"  FAILED {self.describe_case(case)}")
        hidden = self.failed + self.errors - len(self.failed_cases)
        if hidden > 0:
            lines.append(f"  ... and {hidden} more")
        return "\n".join(lines)


def _first_line(text: str | None) -> str:
    for line in (text or "").splitlines():
        if line.strip():
            stripped = line.strip()
            if len(stripped) > MAX_MESSAGE_CHARS:
                return stripped[: MAX_MESSAGE_CHARS - 3] + "..."
            return stripped
    return ""


def parse_junit(result: dict[str, Any]) -> JUnitReport:
    """Count the test cases of a JUnit XML report (``<testsuites>`` or ``<testsuite>`` root)."""
    label = "junit report"
    root = _parse_xml(decode_payload(result, label), label)
    if root.tag not in ("testsuites", "testsuite"):
        raise ResultError(f"{label}: root element is <{root.tag}>, expected <testsuites>")
    report = JUnitReport()
    for case in root.iter("testcase"):
        report.total += 1
        outcome, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error"):
                outcome = "failed" if child.tag == "failure" else "error"
                message = _first_line(child.get("message")) or _first_line(child.text)
                break
            if child.tag == "skipped":
                outcome = "skipped"
        if outcome == "passed":
            report.passed += 1
        elif outcome == "skipped":
            report.skipped += 1
        else:
            if outcome == "failed":
                report.failed += 1
            else:
                report.errors += 1
            if len(report.failed_cases) < MAX_FAILED_CASES:
                report.failed_cases.append(
                    {
                        "classname": case.get("classname") or "",
                        "name": case.get("name") or "(unnamed)",
                        "outcome": outcome,
                        "message": message,
                    }
                )
    return report


# --- Cobertura -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CoverageReport:
    """Line coverage from a Cobertura report."""

    percent: float
    lines_covered: int | None = None
    lines_valid: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_cobertura(result: dict[str, Any]) -> CoverageReport:
    """Line coverage in percent of a Cobertura XML report."""
    label = "coverage report"
    root = _parse_xml(decode_payload(result, label), label)
    if root.tag != "coverage":
        raise ResultError(f"{label}: root element is <{root.tag}>, expected <coverage>")
    covered = _int_attr(root, "lines-covered")
    valid = _int_attr(root, "lines-valid")
    if covered is not None and valid:
        percent = 100.0 * covered / valid
    else:
        rate = root.get("line-rate")
        try:
            percent = 100.0 * float(rate) if rate is not None else -1.0
        except ValueError:
            percent = -1.0
    if not 0.0 <= percent <= 100.0:
        raise ResultError(f"{label}: no usable line-rate or lines-covered/lines-valid attributes")
    return CoverageReport(percent=round(percent, 2), lines_covered=covered, lines_valid=valid)


def _int_attr(element: Any, name: str) -> int | None:
    value = element.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


# --- findings --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """One static-analysis finding, with a normalized severity."""

    tool: str
    rule: str
    severity: str
    message: str
    path: str = ""
    line: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        where = f"{self.path}:{self.line}" if self.path else "(no location)"
        return f"{self.severity} {self.tool} {self.rule} {where} {self.message}"


def parse_findings(result: dict[str, Any]) -> list[Finding]:
    """Findings of a ``findings`` result in ``sarif`` or ``bandit-json`` format."""
    tool = str(result.get("tool") or "unknown")
    fmt = result.get("format")
    label = f"findings report (tool {tool}, format {fmt})"
    raw = decode_payload(result, label)
    try:
        document = json.loads(raw)
    except ValueError as err:
        raise ResultError(f"{label}: not valid JSON ({err})") from None
    if fmt == "sarif":
        return _sarif_findings(document, tool, label)
    if fmt == "bandit-json":
        return _bandit_findings(document, tool, label)
    raise ResultError(f"{label}: unknown format; expected sarif or bandit-json")


def _sarif_findings(document: Any, tool: str, label: str) -> list[Finding]:
    if not isinstance(document, dict) or not isinstance(document.get("runs"), list):
        raise ResultError(f"{label}: not a SARIF log (no 'runs' list)")
    findings: list[Finding] = []
    for run in document["runs"]:
        results = run.get("results") if isinstance(run, dict) else None
        for item in results or []:
            if not isinstance(item, dict):
                continue
            rule = str(item.get("ruleId") or "")
            message = _first_line((item.get("message") or {}).get("text"))
            path, line = _sarif_location(item)
            findings.append(
                Finding(tool, rule, _sarif_severity(item, tool, rule), message, path, line)
            )
    return findings


def _sarif_location(item: dict[str, Any]) -> tuple[str, int]:
    for location in item.get("locations") or []:
        physical = (location or {}).get("physicalLocation") or {}
        uri = str((physical.get("artifactLocation") or {}).get("uri") or "")
        line = (physical.get("region") or {}).get("startLine") or 0
        return uri.removeprefix("file://"), int(line) if isinstance(line, int) else 0
    return "", 0


def _sarif_severity(item: dict[str, Any], tool: str, rule: str) -> str:
    score = (item.get("properties") or {}).get("security-severity")
    if score is not None:
        try:
            value = float(score)
        except (TypeError, ValueError):
            value = -1.0
        if value >= 9.0:
            return "critical"
        if value >= 7.0:
            return "high"
        if value >= 4.0:
            return "medium"
        if value >= 0.0:
            return "low"
    if tool == "ruff":
        if rule.startswith("E9"):
            return "high"
        if rule.startswith(_RUFF_MEDIUM_PREFIXES):
            return "medium"
        return "low"
    level = item.get("level", "warning")
    return {"error": "high", "warning": "medium"}.get(str(level), "low")


def _bandit_findings(document: Any, tool: str, label: str) -> list[Finding]:
    if not isinstance(document, dict) or not isinstance(document.get("results"), list):
        raise ResultError(f"{label}: not a bandit JSON report (no 'results' list)")
    findings: list[Finding] = []
    for item in document["results"]:
        if not isinstance(item, dict):
            continue
        severity = {"HIGH": "high", "MEDIUM": "medium"}.get(
            str(item.get("issue_severity")).upper(), "low"
        )
        line = item.get("line_number")
        findings.append(
            Finding(
                tool=tool,
                rule=str(item.get("test_id") or ""),
                severity=severity,
                message=_first_line(item.get("issue_text")),
                path=str(item.get("filename") or ""),
                line=line if isinstance(line, int) else 0,
            )
        )
    return findings


def count_by_severity(findings: list[Finding]) -> dict[str, int]:
    counts = dict.fromkeys(SEVERITIES, 0)
    for finding in findings:
        counts[finding.severity] = counts.get(finding.severity, 0) + 1
    return counts


def findings_summary(findings: list[Finding], top: int = 20) -> dict[str, Any]:
    """Counts per severity and per tool, plus the most severe findings, for XCom and records."""
    order = {severity: index for index, severity in enumerate(SEVERITIES)}
    ranked = sorted(findings, key=lambda f: (order.get(f.severity, 9), f.tool, f.path, f.line))
    by_tool: dict[str, int] = {}
    for finding in findings:
        by_tool[finding.tool] = by_tool.get(finding.tool, 0) + 1
    return {
        "counts": count_by_severity(findings),
        "by_tool": by_tool,
        "total": len(findings),
        "top": [finding.to_dict() for finding in ranked[:top]],
    }
