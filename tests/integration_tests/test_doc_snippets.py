"""Every code block of the docs, run or checked (the rules are in ``tests/doc_snippets.py``).

Python blocks run on the embedded demo model, page by page, each page in its own working directory; blocks
for a server run against ``langchain-steer serve`` started here; shell blocks are checked against the CLI
parser, the scripts and the Makefile. The vLLM blocks run in ``tests/vllm_tests/test_doc_snippets.py``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import re
import subprocess
from pathlib import Path

import pytest
import tomllib
from doc_snippets import ROOT, Snippet, commands, pages, read_snippets
from server_process import Server

from langchain_steer.cli import build_parser

VLLM_TAGS = ("vllm", "vllm-server")


def _runs_here(snippet: Snippet) -> bool:
    return (
        snippet.language == "python" and snippet.tag not in VLLM_TAGS and snippet.not_run_reason is None
    ) or snippet.tag == "file"


PAGES = [page for page in pages() if any(_runs_here(s) for s in read_snippets(page))]
SHELL = [
    page for page in pages() if any(s.language in ("bash", "sh") and not s.tag for s in read_snippets(page))
]


def _page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


@pytest.fixture(scope="module")
def doc_server(tmp_path_factory):
    """``langchain-steer serve`` on the demo model, with no API keys (loopback only), on a free port."""
    server = Server(tmp_path_factory.mktemp("doc-server"), keys=False).start()
    yield server.url
    server.stop()


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_the_pages_code_runs(page, tmp_path, monkeypatch, request):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__doc_snippets__"}
    for snippet in read_snippets(page):
        if not _runs_here(snippet) and not (snippet.tag == "server" and snippet.language == "bash"):
            continue
        if snippet.tag == "file":
            target = tmp_path / snippet.argument
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(snippet.code, encoding="utf-8")
            continue
        url = request.getfixturevalue("doc_server") if snippet.tag == "server" else None
        if snippet.language == "bash":
            done = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", snippet.source(url)],
                capture_output=True, text=True, timeout=600,
            )  # fmt: skip
            output = done.stdout + done.stderr
            assert done.returncode == 0, f"{snippet.label} failed:\n{output[-3000:]}"
            assert '"error"' not in output, f"{snippet.label} got an error response:\n{output[-3000:]}"
            continue
        try:
            exec(compile(snippet.source(url), str(page), "exec"), namespace)  # noqa: S102 - the docs' own code
        except Exception as error:
            raise AssertionError(f"{snippet.label} raised {type(error).__name__}: {error}") from error


def _extras() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return set(project.get("optional-dependencies", {}))


def _check_command(words: list[str]) -> str | None:
    """What is wrong with one documented shell command (``None``: nothing, or not ours to check)."""
    program = words[0].rsplit("/", 1)[-1]
    if program == "langchain-steer":
        stderr = io.StringIO()
        try:
            with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
                build_parser().parse_args(words[1:])
        except SystemExit as exit_:
            if exit_.code:
                return f"the CLI refuses it: {stderr.getvalue().strip().splitlines()[-1]}"
        return None
    if re.fullmatch(r"python3?(\.\d+)?", program) and len(words) > 1:
        if words[1] == "-m":
            module = words[2]
            if module.startswith("langchain_steer") and importlib.util.find_spec(module) is None:
                return f"no module {module}"
            return None
        if words[1].endswith(".py"):
            script = ROOT / words[1]
            if not script.exists():
                return f"no script {words[1]} in the repository"
            text = script.read_text()
            options = [w.split("=")[0] for w in words[2:] if w.startswith("--")]
            missing = [option for option in options if f'"{option}"' not in text]
            return f"{words[1]} has no option {', '.join(missing)}" if missing else None
        return None
    if program == "make":
        makefile = (ROOT / "Makefile").read_text()
        targets = [t for t in words[1:] if not t.startswith("-")]
        missing = [t for t in targets if not re.search(rf"^{re.escape(t)}:", makefile, re.M)]
        return f"no Makefile target {', '.join(missing)}" if missing else None
    if program == "pip" or words[1:3] == ["-m", "pip"]:
        wanted = {e for w in words for e in re.findall(r"\[([\w,-]+)\]", w) for e in e.split(",")}
        unknown = wanted - _extras()
        return f"no extra {', '.join(sorted(unknown))} in pyproject.toml" if unknown else None
    return None


@pytest.mark.parametrize("page", SHELL, ids=_page_id)
def test_the_pages_shell_commands_match_the_cli_scripts_and_makefile(page):
    problems = [
        f"{snippet.label}: {' '.join(words)}: {problem}"
        for snippet in read_snippets(page)
        if snippet.language in ("bash", "sh") and not snippet.tag
        for words in commands(snippet.code)
        if (problem := _check_command(words))
    ]
    assert not problems, "\n".join(problems)


def test_the_checker_catches_drift():
    """The shell check fails on what the docs could get wrong, so its passing means something."""
    assert _check_command(["langchain-steer", "chat", "hi", "--stear", "cost=1"])
    assert _check_command(["langchain-steer", "serve", "--engine", "tgi"])
    assert _check_command(["python", "benchmarks/overhead.py", "--no-such-option"])
    assert _check_command(["python", "examples/no_such_script.py"])
    assert _check_command(["make", "no-such-target"])
    assert _check_command(["pip", "install", "langchain-steer[no-such-extra]"])
    assert _check_command(["langchain-steer", "chat", "hi", "--steer", "cost=1"]) is None
    assert _check_command(["make", "demo"]) is None


def test_every_snippet_tag_is_known_and_every_not_run_block_says_why():
    for page in pages():
        for snippet in read_snippets(page):  # raises on an unknown tag
            if snippet.language == "python" and snippet.code.lstrip().startswith("# not run"):
                assert snippet.not_run_reason, f"{snippet.label}: '# not run: REASON' needs a reason"
