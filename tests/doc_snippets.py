"""Read the code blocks of the documentation, so that tests can run them: the docs cannot drift from the code.

Every fenced block of ``README.md`` and ``docs/**/*.md`` is a :class:`Snippet`. What happens to it depends on
its language and on an optional HTML comment on the line just before the fence (invisible on the site):

- ``python`` blocks run, in page order, in one namespace per page (a later block may use an earlier one's
  names), in a fresh working directory per page: ``tests/integration_tests/test_doc_snippets.py``.
- ``<!-- snippet: server -->``: the block talks to ``langchain-steer serve`` on the demo model; the test
  starts one on a free loopback port and points ``http://127.0.0.1:8000`` (and ``localhost:8000``) at it.
  A ``bash`` block with this tag runs in ``bash``.
- ``<!-- snippet: vllm -->``: a ``python`` block for the vLLM engine; it runs in the vLLM suite
  (``tests/vllm_tests/test_doc_snippets.py``), in ``.venv-vllm``. ``<!-- snippet: vllm-server -->``: the
  same, against vLLM's own OpenAI server with our plugin, which that suite starts.
- ``<!-- snippet: file NAME -->``: the block is a file the reader saves as ``NAME``; the test writes it into
  the page's working directory before running the page's code.
- A ``python`` block whose first line is a ``# not run: REASON`` comment is not run; the reason is shown to
  the reader in the block itself (for example, an upload that needs a Hugging Face account).
- ``bash`` blocks without a tag are checked command by command, not run (they install packages, start
  servers, or take half an hour): each ``langchain-steer ...`` command must parse with the real CLI parser,
  each ``python path.py --option`` must name a script in the repository that defines the option, and
  ``make TARGET`` a target of the Makefile.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TAG = re.compile(r"^<!--\s*snippet:\s*(?P<tag>[\w-]+)\s*(?P<argument>.*?)\s*-->\s*$")
FENCE = re.compile(r"^```(?P<language>[\w-]*)[^\n]*\n(?P<code>.*?)^```[ \t]*$", re.S | re.M)
TAGS = frozenset({"server", "vllm", "vllm-server", "file"})
NOT_RUN = re.compile(r"^# not run: (?P<reason>.+)$")
LOOPBACK = ("http://127.0.0.1:8000", "http://localhost:8000", "localhost:8000")


@dataclasses.dataclass(frozen=True)
class Snippet:
    """One fenced code block of a page."""

    page: Path
    line: int  # the line of the opening fence, from 1
    language: str
    code: str
    tag: str = ""  # "", or one of TAGS
    argument: str = ""

    @property
    def label(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    @property
    def not_run_reason(self) -> str | None:
        first = self.code.lstrip().splitlines()[0] if self.code.strip() else ""
        match = NOT_RUN.match(first)
        return match["reason"] if match else None

    def source(self, url: str | None = None) -> str:
        """The code, padded so that tracebacks give the page's line numbers; ``url`` replaces port 8000."""
        code = self.code
        if url is not None:
            for address in LOOPBACK:
                code = code.replace(address, url if address.startswith("http") else url.split("//")[1])
        return "\n" * self.line + code


def pages() -> list[Path]:
    """Every documentation page: the README, then ``docs/`` in path order."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def read_snippets(page: Path) -> list[Snippet]:
    """The page's fenced blocks, with their tags.

    Raises:
        ValueError: an unknown tag, or a ``file`` tag without a name (naming the page and line).
    """
    text = page.read_text(encoding="utf-8")
    snippets = []
    for match in FENCE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        tag = TAG.match(before)
        snippet = Snippet(
            page,
            line,
            match["language"],
            match["code"],
            tag["tag"] if tag else "",
            tag["argument"] if tag else "",
        )
        if snippet.tag and snippet.tag not in TAGS:
            raise ValueError(f"{snippet.label}: unknown snippet tag {snippet.tag!r} (known: {sorted(TAGS)}).")
        if snippet.tag == "file" and not snippet.argument:
            raise ValueError(f"{snippet.label}: a file snippet needs a name: <!-- snippet: file NAME -->.")
        snippets.append(snippet)
    return snippets


def commands(code: str) -> list[list[str]]:
    """A shell block's commands: continuation lines joined, comments and ``VAR=value`` prefixes dropped."""
    joined = re.sub(r"\\\n", " ", code)
    result, pending = [], ""
    for line in joined.splitlines():
        pending += line + "\n"
        try:
            words = shlex.split(pending, comments=True)
        except ValueError:  # an open quote: the command goes on on the next line
            continue
        pending = ""
        while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
            words = words[1:]
        if words:
            result.append(words)
    if pending:
        raise ValueError(f"an unclosed quote in the shell block: {pending[:80]!r}")
    return result
