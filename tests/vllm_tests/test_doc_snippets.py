"""The docs' vLLM code blocks, run on vLLM's CPU build (the rules are in ``tests/doc_snippets.py``).

``<!-- snippet: vllm -->`` blocks run in this process, page by page, in one namespace per page.
``<!-- snippet: vllm-server -->`` blocks run against vLLM's own OpenAI server with our plugin, started here
on the demo model and served as ``steered``, as the page's command does for a larger model.
"""

from __future__ import annotations

import pytest
from doc_snippets import ROOT, pages, read_snippets
from server_process import VLLMServer

PAGES = [
    page
    for page in pages()
    if any(s.tag in ("vllm", "vllm-server") and s.not_run_reason is None for s in read_snippets(page))
]


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_the_pages_vllm_code_runs(page, tmp_path, monkeypatch, vllm_llm):
    monkeypatch.chdir(tmp_path)
    snippets = [s for s in read_snippets(page) if s.tag in ("vllm", "vllm-server") and not s.not_run_reason]
    namespace: dict = {"__name__": "__doc_snippets__"}
    server = None
    try:
        for snippet in snippets:
            url = None
            if snippet.tag == "vllm-server":
                if server is None:
                    server = VLLMServer(vllm_llm.batcher().folder, tmp_path / "vllm.log", name="steered")
                    server.__enter__()
                url = server.url
            try:
                exec(compile(snippet.source(url), str(page), "exec"), namespace)  # noqa: S102 - the docs' code
            except Exception as error:
                raise AssertionError(f"{snippet.label} raised {type(error).__name__}: {error}") from error
    finally:
        if server is not None:
            server.__exit__()
