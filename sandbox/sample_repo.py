"""The sample service's git repository, with the history the demo's scenarios run on.

``python -m sandbox.sample_repo DEST`` (re)creates the bare repository ``DEST/hello-api.git``
and prints a JSON summary (its path and URL, and the commit of every branch and tag). The first
commit is the tree in ``include/sample_service``; the later commits are the small edits defined
below. Author, committer and dates are fixed, so the commit ids are the same on every machine
and every run.

Tags:

- ``demo/base`` (``v1.0.0``): the version both sites run before a release.
- ``demo/good`` (``v1.1.0``): a good change; ``main`` points here.
- ``demo/tests-fail``: a change on ``feature/plain-names`` whose unit tests fail (names lose
  their Chinese characters).
- ``demo/bad-release``: a change on ``release/1.2`` that passes its tests and the scan but never
  becomes ready in production: it requires ``CORS_ALLOWED_ORIGINS`` when
  ``ENVIRONMENT=production``, and the deployment manifest does not set it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVICE_TREE = ROOT / "include" / "sample_service"
REPOSITORY_DIR = "hello-api.git"
DEFAULT_BRANCH = "main"
AUTHOR = ("hello-api maintainers", "hello-api@example.com")
# Which ref each demo scenario runs.
SCENARIOS: Mapping[str, str] = {
    "good": "demo/good",
    "tests-fail": "demo/tests-fail",
    "bad-release": "demo/bad-release",
}

# Left out of the repository: what running the tests or the service leaves in the tree.
_SKIP_DIRS = frozenset({"__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache"})
_SKIP_FILES = frozenset({".coverage", "coverage.xml", "junit.xml", "BUILD_INFO.json"})


class SampleRepoError(RuntimeError):
    """The repository cannot be built: an edit no longer fits the service tree, or git failed."""


@dataclass(frozen=True)
class Edit:
    """Replace the one occurrence of ``old`` in ``path`` by ``new``; ``old=None`` writes the file."""

    path: str
    old: str | None
    new: str


@dataclass(frozen=True)
class Change:
    """One commit: its message, when it was made, what it edits and which tags point at it."""

    message: str
    date: str
    edits: tuple[Edit, ...] = ()
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Branch:
    """A line of commits starting from ``start`` (a tag of an earlier branch, or none)."""

    name: str
    start: str | None
    changes: tuple[Change, ...]


@dataclass(frozen=True)
class RepositorySummary:
    """Where the repository is and what its refs point at."""

    path: Path
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.path.as_uri()

    def as_dict(self) -> dict[str, object]:
        return {
            "repository": str(self.path),
            "url": self.url,
            "default_branch": DEFAULT_BRANCH,
            "branches": self.branches,
            "tags": self.tags,
            "scenarios": {name: self.tags[tag] for name, tag in SCENARIOS.items()},
        }


def _replace(path: str, old: str, new: str) -> Edit:
    return Edit(path, old, new)


_JAPANESE_AND_KOREAN = Change(
    message="Greet in Japanese and Korean",
    date="2026-11-05T14:20:00+08:00",
    edits=(
        _replace(
            "hello_api/greetings.py",
            '    "de": "Hallo, {name}!",\n}',
            '    "de": "Hallo, {name}!",\n    "ja": "こんにちは、{name}！",\n'
            '    "ko": "안녕하세요, {name}!",\n}',
        ),
        _replace(
            "hello_api/greetings.py",
            '    "de": "Welt",\n}',
            '    "de": "Welt",\n    "ja": "世界",\n    "ko": "세계",\n}',
        ),
        _replace(
            "tests/test_greetings.py",
            "def test_clean_name_trims_and_collapses_whitespace() -> None:",
            "def test_greets_in_japanese_and_korean() -> None:\n"
            '    assert greet("ひなた", "ja").message == "こんにちは、ひなた！"\n'
            '    assert greet(None, "ko").message == "안녕하세요, 세계!"\n'
            "\n\n"
            "def test_clean_name_trims_and_collapses_whitespace() -> None:",
        ),
        _replace(
            "tests/test_greetings.py",
            '        (None, "pt, it", "en"),\n',
            '        (None, "pt, it", "en"),\n        (None, "ko-KR, ja;q=0.9", "ko"),\n',
        ),
    ),
)

_RELEASE_1_1 = Change(
    message="Release 1.1.0",
    date="2026-11-06T10:05:00+08:00",
    edits=(
        _replace("hello_api/__init__.py", '__version__ = "1.0.0"', '__version__ = "1.1.0"'),
        _replace(
            "CHANGELOG.md",
            "# Changelog\n\n",
            "# Changelog\n\n## 1.1.0\n\n- Greetings in Japanese and Korean.\n\n",
        ),
    ),
    tags=("demo/good", "v1.1.0"),
)

# The bug: an ASCII-only filter drops every Chinese (and accented) character from names.
_PLAIN_NAMES = Change(
    message="Strip markup characters from names",
    date="2026-11-09T16:40:00+08:00",
    edits=(
        _replace(
            "hello_api/greetings.py", "import unicodedata\n", "import re\nimport unicodedata\n"
        ),
        _replace(
            "hello_api/greetings.py",
            '    collapsed = " ".join(visible.split())\n',
            "    # The front end shows names in HTML: keep letters, digits and a little punctuation.\n"
            '    plain = re.sub(r"[^A-Za-z0-9 .\'-]", "", visible)\n'
            '    collapsed = " ".join(plain.split())\n',
        ),
        _replace(
            "tests/test_greetings.py",
            "def test_clean_name_drops_control_characters() -> None:",
            "def test_clean_name_strips_markup() -> None:\n"
            '    assert clean_name("<b>Ada</b> <script>") == "bAdab script"\n'
            "\n\n"
            "def test_clean_name_drops_control_characters() -> None:",
        ),
    ),
    tags=("demo/tests-fail",),
)

# The bug: production refuses to be ready without CORS_ALLOWED_ORIGINS, which the tests always
# set and deploy/deployment.yaml does not.
_CORS = Change(
    message="Send CORS headers to the web front end; release 1.2.0",
    date="2026-11-12T11:15:00+08:00",
    edits=(
        _replace("hello_api/__init__.py", '__version__ = "1.1.0"', '__version__ = "1.2.0"'),
        _replace(
            "CHANGELOG.md",
            "# Changelog\n\n",
            "# Changelog\n\n## 1.2.0\n\n"
            "- CORS headers for the web front end's origins (`CORS_ALLOWED_ORIGINS`, comma\n"
            "  separated; any origin outside production).\n\n",
        ),
        _replace(
            "hello_api/config.py",
            '    default_language: str = "en"\n',
            '    default_language: str = "en"\n    allowed_origins: tuple[str, ...] = ()\n',
        ),
        _replace(
            "hello_api/config.py",
            '            default_language=env.get("DEFAULT_LANGUAGE", "en").strip().lower(),\n',
            '            default_language=env.get("DEFAULT_LANGUAGE", "en").strip().lower(),\n'
            "            allowed_origins=tuple(\n"
            "                origin.strip()\n"
            '                for origin in env.get("CORS_ALLOWED_ORIGINS", "").split(",")\n'
            "                if origin.strip()\n"
            "            ),\n",
        ),
        _replace(
            "hello_api/config.py",
            "    def problems(self) -> list[str]:",
            "    def origin_allowed(self, origin: str) -> bool:\n"
            '        """Whether a browser page from ``origin`` may read the answers."""\n'
            '        if self.environment != "production" and not self.allowed_origins:\n'
            "            return True\n"
            "        return origin in self.allowed_origins\n"
            "\n"
            "    def problems(self) -> list[str]:",
        ),
        _replace(
            "hello_api/config.py",
            "        return found\n",
            '        if self.environment == "production" and not self.allowed_origins:\n'
            '            found.append("CORS_ALLOWED_ORIGINS must list the front end origins in production")\n'
            "        return found\n",
        ),
        _replace(
            "hello_api/server.py",
            '        self.send_header("X-Request-Id", self._request_id())\n',
            '        self.send_header("X-Request-Id", self._request_id())\n'
            '        headers = getattr(self, "headers", None)\n'
            '        origin = headers.get("Origin") if headers is not None else None\n'
            "        if origin and self.server.settings.origin_allowed(origin):\n"
            '            self.send_header("Access-Control-Allow-Origin", origin)\n'
            '            self.send_header("Vary", "Origin")\n',
        ),
        _replace(
            "tests/test_config.py",
            "def test_served_by_falls_back_to_the_host_name() -> None:",
            "def test_allowed_origins() -> None:\n"
            "    settings = Settings.from_env(\n"
            '        {"ENVIRONMENT": "production", "CORS_ALLOWED_ORIGINS": "https://a.example, https://b.example"}\n'
            "    )\n"
            '    assert settings.allowed_origins == ("https://a.example", "https://b.example")\n'
            '    assert settings.origin_allowed("https://b.example")\n'
            '    assert not settings.origin_allowed("https://evil.example")\n'
            "    assert settings.problems() == []\n"
            "\n\n"
            "def test_any_origin_outside_production() -> None:\n"
            '    assert Settings(environment="development").origin_allowed("http://localhost:3000")\n'
            "\n\n"
            "def test_served_by_falls_back_to_the_host_name() -> None:",
        ),
        _replace(
            "tests/test_config.py",
            '            "BUILD_INFO_FILE": "/opt/hello/BUILD_INFO.json",\n        }',
            '            "BUILD_INFO_FILE": "/opt/hello/BUILD_INFO.json",\n'
            '            "CORS_ALLOWED_ORIGINS": "https://www.example.com",\n        }',
        ),
        _replace(
            "tests/test_config.py",
            '        build_info_path=Path("/opt/hello/BUILD_INFO.json"),\n    )',
            '        build_info_path=Path("/opt/hello/BUILD_INFO.json"),\n'
            '        allowed_origins=("https://www.example.com",),\n    )',
        ),
        _replace(
            "tests/test_server.py",
            "def test_unknown_path_and_method(serve) -> None:",
            "def test_cors_header_for_the_front_end(serve) -> None:\n"
            '    _, client = serve(environment="production", allowed_origins=("https://www.example.com",))\n'
            '    answer = client.get("/hello", {"Origin": "https://www.example.com"})\n'
            '    assert answer.headers["Access-Control-Allow-Origin"] == "https://www.example.com"\n'
            '    assert client.get("/healthz").status == 200\n'
            '    other = client.get("/hello", {"Origin": "https://evil.example"})\n'
            '    assert "Access-Control-Allow-Origin" not in other.headers\n'
            "\n\n"
            "def test_unknown_path_and_method(serve) -> None:",
        ),
    ),
    tags=("demo/bad-release",),
)

HISTORY: tuple[Branch, ...] = (
    Branch(
        name=DEFAULT_BRANCH,
        start=None,
        changes=(
            Change(
                message="hello-api: greeting service with health, version and CI steps",
                date="2026-11-02T09:30:00+08:00",
                tags=("demo/base", "v1.0.0"),
            ),
            _JAPANESE_AND_KOREAN,
            _RELEASE_1_1,
        ),
    ),
    Branch(name="feature/plain-names", start="demo/good", changes=(_PLAIN_NAMES,)),
    Branch(name="release/1.2", start="demo/good", changes=(_CORS,)),
)

Tree = dict[str, tuple[bytes, bool]]


def read_service_tree(root: Path = SERVICE_TREE) -> Tree:
    """The files of the service as they go into its repository: path -> (content, executable)."""
    tree: Tree = {}
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if d not in _SKIP_DIRS)
        for name in sorted(files):
            if name in _SKIP_FILES or name.endswith(".pyc"):
                continue
            path = Path(directory, name)
            relative = path.relative_to(root).as_posix()
            tree[relative] = (path.read_bytes(), bool(path.stat().st_mode & 0o111))
    if "hello_api/__init__.py" not in tree:
        raise SampleRepoError(f"no service tree at {root}")
    return tree


def apply_edits(tree: Tree, edits: Iterable[Edit]) -> Tree:
    """A new tree with ``edits`` applied; an edit whose text is not found exactly once fails."""
    result = dict(tree)
    for edit in edits:
        if edit.old is None:
            executable = result.get(edit.path, (b"", False))[1]
            result[edit.path] = (edit.new.encode("utf-8"), executable)
            continue
        if edit.path not in result:
            raise SampleRepoError(f"edit of {edit.path}: the file does not exist")
        content, executable = result[edit.path]
        text = content.decode("utf-8")
        count = text.count(edit.old)
        if count != 1:
            raise SampleRepoError(
                f"edit of {edit.path}: expected the text once, found it {count} times: {edit.old[:60]!r}"
            )
        result[edit.path] = (text.replace(edit.old, edit.new).encode("utf-8"), executable)
    return result


def _git_date(iso: str) -> str:
    moment = datetime.fromisoformat(iso)
    offset = moment.utcoffset()
    if offset is None:
        raise SampleRepoError(f"commit date {iso!r} needs a UTC offset")
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    return f"{int(moment.timestamp())} {sign}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}"


def fast_import_stream(base: Tree, history: Sequence[Branch]) -> bytes:
    """The whole history as one ``git fast-import`` stream (every commit lists its full tree)."""
    chunks: list[bytes] = []
    marks: dict[str, int] = {}
    trees: dict[str, Tree] = {}
    mark = 0
    name, email = AUTHOR
    for branch in history:
        if branch.start is None:
            tree, parent = base, None
        else:
            if branch.start not in marks:
                raise SampleRepoError(f"branch {branch.name} starts at unknown tag {branch.start}")
            tree, parent = trees[branch.start], marks[branch.start]
        for change in branch.changes:
            tree = apply_edits(tree, change.edits)
            mark += 1
            message = change.message.encode("utf-8") + b"\n"
            when = _git_date(change.date)
            header = [
                f"commit refs/heads/{branch.name}",
                f"mark :{mark}",
                f"author {name} <{email}> {when}",
                f"committer {name} <{email}> {when}",
                f"data {len(message)}",
            ]
            chunks.append("\n".join(header).encode("utf-8") + b"\n" + message)
            if parent is not None:
                chunks.append(f"from :{parent}\n".encode())
            chunks.append(b"deleteall\n")
            for path in sorted(tree):
                content, executable = tree[path]
                mode = "100755" if executable else "100644"
                chunks.append(f"M {mode} inline {path}\ndata {len(content)}\n".encode())
                chunks.append(content + b"\n")
            chunks.append(b"\n")
            for tag in change.tags:
                marks[tag], trees[tag] = mark, tree
                chunks.append(f"reset refs/tags/{tag}\nfrom :{mark}\n\n".encode())
            parent = mark
    return b"".join(chunks)


def _git_env() -> dict[str, str]:
    # Only this module's settings count: no user or system git configuration, no inherited repo.
    env = {key: value for key, value in os.environ.items() if not key.startswith("GIT_")}
    env.update({"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "LC_ALL": "C"})
    return env


def _git(args: Sequence[str], *, stdin: bytes | None = None) -> str:
    completed = subprocess.run(
        ["git", *args], input=stdin, capture_output=True, env=_git_env(), check=False
    )
    if completed.returncode != 0:
        detail = completed.stderr.decode("utf-8", "replace").strip()
        raise SampleRepoError(f"git {args[0]} failed (exit {completed.returncode}): {detail}")
    return completed.stdout.decode("utf-8")


def _refs(repository: Path, prefix: str) -> dict[str, str]:
    listing = _git(
        ["--git-dir", str(repository), "for-each-ref", "--format=%(refname) %(objectname)", prefix]
    )
    refs = {}
    for line in listing.splitlines():
        ref, sha = line.split(" ")
        refs[ref.removeprefix(prefix)] = sha
    return refs


def create_repository(
    dest: Path, service_tree: Path = SERVICE_TREE, history: Sequence[Branch] = HISTORY
) -> RepositorySummary:
    """(Re)create ``dest/hello-api.git``; the same inputs always give the same commit ids.

    The repository is built beside the old one and swapped in, so a reader never sees it half
    written.
    """
    stream = fast_import_stream(read_service_tree(service_tree), history)
    dest = dest.resolve()
    dest.mkdir(parents=True, exist_ok=True)
    final = dest / REPOSITORY_DIR
    staging = Path(tempfile.mkdtemp(prefix=".hello-api.", suffix=".git", dir=dest))
    try:
        staging.chmod(0o755)
        _git(["init", "--quiet", "--bare", f"--initial-branch={DEFAULT_BRANCH}", str(staging)])
        _git(["--git-dir", str(staging), "config", "uploadpack.allowReachableSHA1InWant", "true"])
        _git(["--git-dir", str(staging), "fast-import", "--quiet"], stdin=stream)
        if final.exists():
            retired = Path(tempfile.mkdtemp(prefix=".hello-api.old.", dir=dest))
            final.rename(retired / REPOSITORY_DIR)
            staging.rename(final)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return RepositorySummary(
        path=final, branches=_refs(final, "refs/heads/"), tags=_refs(final, "refs/tags/")
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sandbox.sample_repo",
        description="Create the sample service's git repository DEST/hello-api.git.",
    )
    parser.add_argument("dest", type=Path, help="directory that holds the bare repository")
    args = parser.parse_args(argv)
    try:
        summary = create_repository(args.dest)
    except (SampleRepoError, OSError) as error:
        print(f"sample_repo: {error}", file=sys.stderr)
        return 1
    print(json.dumps(summary.as_dict(), indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
