"""Micro-batching through SteeredChatModel on a tiny random Llama: batches, concurrency, cancel, bounds."""

import asyncio
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from helpers import hook_count, random_vector, run_in_threads

from langchain_steer import SteeredChatModel
from langchain_steer.batching import GenerationRequest
from langchain_steer.models import load_model
from langchain_steer.scheduler import MicroBatcher, QueueFullError

STEERINGS = [
    {"cost": c / 4, "age": a / 2} for c in range(-4, 5, 2) for a in (-1, 0, 1)
]  # 15 settings


@pytest.fixture(scope="module")
def vectors(tiny_path):
    model, _ = load_model(tiny_path)
    return {
        "cost": random_vector(model, "cost", layers=(0, 1, 2), seed=1, functional_range=0.2),
        "age": random_vector(model, "age", layers=(1,), seed=2, functional_range=0.2),
    }


def _llm(tiny_path, vectors, **fields):
    fields.setdefault("max_tokens", 10)
    return SteeredChatModel(model=tiny_path, vectors=vectors, **fields)


@pytest.fixture(scope="module")
def solo(tiny_path, vectors):
    """Each prompt/steering pair decoded alone (max_batch_size=1)."""
    llm = _llm(tiny_path, vectors, max_batch_size=1)
    cache: dict = {}

    def get(prompt, steering):
        key = (prompt, tuple(sorted(steering.items())))
        if key not in cache:
            cache[key] = llm.invoke(prompt, steering=steering).content
        return cache[key]

    return get


def _stats(llm):
    return llm.batcher().stats


def test_batch_of_8_steerings_is_one_batch_matching_solo(tiny_path, vectors, solo):
    llm = _llm(tiny_path, vectors, batch_window_ms=1.0)  # a fresh batcher, for clean stats
    prompts = [f"hello {i}" for i in range(8)]
    steerings = STEERINGS[:8]
    replies = llm.batch(prompts, steering=steerings)
    assert [r.content for r in replies] == [
        solo(p, s) for p, s in zip(prompts, steerings, strict=False)
    ]
    assert [r.response_metadata["steering"] for r in replies] == steerings
    stats = _stats(llm)
    assert stats.largest_batch == 8 and stats.requests == 8 and stats.joins == 0
    assert len({r.content for r in replies}) > 4


async def test_abatch_with_per_input_steering(tiny_path, vectors, solo):
    llm = _llm(tiny_path, vectors, batch_window_ms=2.0)
    steerings = STEERINGS[3:9]
    replies = await llm.abatch(["hi"] * 6, steering=steerings)
    assert [r.content for r in replies] == [solo("hi", s) for s in steerings]
    assert _stats(llm).largest_batch == 6


async def test_32_concurrent_ainvokes_are_uncontaminated(tiny_path, vectors, solo):
    llm = _llm(tiny_path, vectors, batch_window_ms=3.0)
    calls = [(f"user {i}", STEERINGS[i % len(STEERINGS)]) for i in range(32)]
    expected = [solo(p, s) for p, s in calls]
    replies = await asyncio.gather(*(llm.ainvoke(p, steering=s) for p, s in calls))
    assert [r.content for r in replies] == expected
    assert [r.response_metadata["steering"] for r in replies] == [s for _, s in calls]
    stats = _stats(llm)
    assert stats.requests == 32 and 1 < stats.largest_batch <= 8
    assert stats.row_steps > stats.steps  # rows really shared forward passes


def test_threads_share_batches(tiny_path, vectors, solo):
    llm = _llm(tiny_path, vectors, batch_window_ms=4.0)
    results = [None] * 12

    def run(i):
        results[i] = llm.invoke("thread", steering=STEERINGS[i]).content

    run_in_threads(run, 12)
    assert results == [solo("thread", s) for s in STEERINGS[:12]]
    assert _stats(llm).largest_batch > 1


async def test_cancelling_one_of_8_streams_leaves_the_others_complete(tiny_path, vectors, solo):
    llm = _llm(tiny_path, vectors, batch_window_ms=5.0, max_tokens=40)
    long_solo = _llm(tiny_path, vectors, max_batch_size=1, max_tokens=40)
    steerings = STEERINGS[:8]
    expected = [long_solo.invoke("stream", steering=s).content for s in steerings]
    started = asyncio.Event()

    async def consume(i):
        text = ""
        async for chunk in llm.astream("stream", steering=steerings[i]):
            text += chunk.content
            if i == 3:
                started.set()
                await asyncio.sleep(3600)  # parked until cancelled
        return text

    tasks = [asyncio.create_task(consume(i)) for i in range(8)]
    await started.wait()
    tasks[3].cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(results[3], asyncio.CancelledError)
    assert [r for i, r in enumerate(results) if i != 3] == [
        e for i, e in enumerate(expected) if i != 3
    ]
    model, _ = load_model(tiny_path)
    for _ in range(100):  # the cancelled stream is finalised by the event loop a moment later
        if hook_count(model) == 0:
            break
        await asyncio.sleep(0.02)
    assert hook_count(model) == 0


def test_queue_full_error_and_wait(tiny_path):
    model, _ = load_model(tiny_path)
    strict = MicroBatcher(model, max_batch_size=1, max_queue=1, queue_full="error")
    long = GenerationRequest([1, 5, 9], 30)
    first = strict.submit(long)
    tokens = iter(first)
    first_tokens = next(tokens)  # the first request is decoding: the batch (of 1) is full
    second = strict.submit(long)  # so this one waits in the queue, which is now full
    with pytest.raises(QueueFullError, match="max_queue=1"):
        strict.submit(long)
    assert len(first_tokens + [i for ids in tokens for i in ids]) == 30
    assert len([i for ids in second for i in ids]) == 30
    patient = MicroBatcher(model, max_batch_size=1, max_queue=1, queue_full="wait")
    tickets = []
    threads = [
        threading.Thread(target=lambda: tickets.append(patient.submit(long))) for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(tickets) == 4
    assert all(len([i for ids in t for i in ids]) == 30 for t in tickets)
    strict.close()
    patient.close()
    with pytest.raises(RuntimeError, match="closed"):
        strict.submit(long)


def test_cancelled_request_leaves_the_queue_at_once(tiny_path):
    model, _ = load_model(tiny_path)
    batcher = MicroBatcher(model, max_batch_size=1, window=0.0)
    running = batcher.submit(GenerationRequest([1, 5], 200))
    queued = batcher.submit(GenerationRequest([1, 6], 200))
    queued.cancel()
    assert queued.wait(timeout=1) and queued.finish_reason == "cancelled"
    assert list(queued) == []
    running.cancel()
    assert running.wait(timeout=30) and running.finish_reason == "cancelled"
    assert batcher.pending == 0
    batcher.close()


def test_batching_settings_are_validated(tiny_path, vectors):
    for fields, message in [
        ({"max_batch_size": 0}, "max_batch_size"),
        ({"max_batch_size": 1000}, "max_batch_size"),
        ({"batch_window_ms": -1}, "batch_window_ms"),
        ({"batch_window_ms": 5000}, "batch_window_ms"),
        ({"max_queue": 0}, "max_queue"),
        ({"queue_full": "drop"}, "queue_full"),
    ]:
        with pytest.raises(ValueError, match=message):
            _llm(tiny_path, vectors, **fields)
    llm = _llm(tiny_path, vectors)
    with pytest.raises(ValueError, match="3 entries for 2 inputs"):
        llm.batch(["a", "b"], steering=[{}, {}, {}])


def test_exit_during_generation_is_clean(tiny_path, tmp_path):
    """A script may end while a reply is being generated: the worker is stopped before exit."""
    script = tmp_path / "exit_mid_generation.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys, threading, time
            sys.path.insert(0, {str(Path(__file__).parent)!r})
            from langchain_steer import SteeredChatModel
            llm = SteeredChatModel(model={tiny_path!r}, max_tokens=900)
            threading.Thread(target=lambda: llm.invoke("go"), daemon=True).start()
            batcher = llm.batcher()
            while batcher.stats.steps < 5:
                time.sleep(0.01)
            print("leaving", flush=True)
            """
        )
    )
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "leaving" in result.stdout and "terminate called" not in result.stderr


def test_a_failing_worker_fails_the_waiting_requests_and_the_next_one_starts_afresh(
    tiny_path, monkeypatch
):
    import langchain_steer.scheduler as scheduler

    model, _ = load_model(tiny_path)
    batcher = MicroBatcher(model, max_batch_size=2, window=0.0)
    real = scheduler.BatchDecoder

    def broken(*args, **kwargs):
        raise RuntimeError("injected decoder failure")

    monkeypatch.setattr(scheduler, "BatchDecoder", broken)
    ticket = batcher.submit(GenerationRequest([1, 5], 5))
    assert ticket.wait(timeout=10), "the waiting request hung instead of failing"
    assert ticket.finish_reason == "error"
    with pytest.raises(RuntimeError, match="injected decoder failure"):
        list(ticket)
    monkeypatch.setattr(scheduler, "BatchDecoder", real)
    again = batcher.submit(GenerationRequest([1, 5], 5))  # a fresh worker
    assert len([i for ids in again for i in ids]) == 5
    batcher.close()


def test_closing_a_shared_batcher_evicts_it(tiny_path):
    from langchain_steer.scheduler import batcher_for

    model, _ = load_model(tiny_path)
    shared = batcher_for(model, max_batch_size=3, window=0.001)
    assert batcher_for(model, max_batch_size=3, window=0.001) is shared
    shared.close()
    fresh = batcher_for(model, max_batch_size=3, window=0.001)
    assert fresh is not shared  # other models with these settings keep working
    assert len([i for ids in fresh.submit(GenerationRequest([1, 5], 4)) for i in ids]) == 4
    fresh.close()


def test_steer_blocks_and_extraction_never_run_inside_a_batch(tiny_path, vectors, solo):
    """The model lock: a steer() block and extraction share the model with 8 batched chat calls."""
    import torch

    from langchain_steer import Example, steer
    from langchain_steer.extract import collect_activations

    model, tokenizer = load_model(tiny_path)
    loud = {"loud": random_vector(model, "loud", layers=(0, 1, 2), seed=9, functional_range=8.0)}
    ids = tokenizer("a steered probe", return_tensors="pt")["input_ids"]
    with torch.no_grad(), steer(model, loud, {"loud": 1.0}):
        steered_reference = model(input_ids=ids).logits
    examples = [Example(f"request {i}", f"reply number {i}") for i in range(6)]
    activations_reference = collect_activations(model, tokenizer, examples, batch_size=3, progress=False)

    done = threading.Event()
    counts = {"steer": 0, "extract": 0}
    problems: list[str] = []

    def guarded(loop):
        def run():
            try:
                loop()
            except Exception as error:  # a pass that broke under another caller's hooks
                problems.append(repr(error))

        return threading.Thread(target=run)

    def steer_loop():
        while not done.is_set():
            with torch.no_grad(), steer(model, loud, {"loud": 1.0}):
                logits = model(input_ids=ids).logits  # a batch's row hooks must not reach this pass
                done.wait(0.002)  # hold the hooks a while, as a hand-written block would
            counts["steer"] += 1
            if not torch.equal(logits, steered_reference):
                problems.append("a steer() block ran under a batch's hooks")

    def extract_loop():
        while not done.is_set():
            got = collect_activations(model, tokenizer, examples, batch_size=3, progress=False)
            counts["extract"] += 1
            if not torch.equal(got, activations_reference):
                problems.append("extraction recorded a steered pass")

    llm = _llm(tiny_path, vectors, batch_window_ms=5.0)
    prompts = [f"question {i}" for i in range(8)]
    steerings = STEERINGS[:8]
    expected = [solo(p, s) for p, s in zip(prompts, steerings, strict=True)]
    threads = [guarded(steer_loop), guarded(extract_loop)]
    for thread in threads:
        thread.start()
    try:
        rounds = [[r.content for r in llm.batch(prompts, steering=steerings)] for _ in range(4)]
    finally:
        done.set()
        for thread in threads:
            thread.join(30)
    assert problems == []
    assert counts["steer"] > 0 and counts["extract"] > 0  # they did run alongside the chat calls
    assert all(replies == expected for replies in rounds)
    assert hook_count(model) == 0


def test_a_chat_call_inside_a_steer_block_on_the_same_model_fails_at_once(tiny_path, vectors):
    from langchain_steer import steer

    model, _ = load_model(tiny_path)
    llm = _llm(tiny_path, vectors)
    with steer(model, vectors, {"cost": 0.5}):
        with pytest.raises(RuntimeError, match="steer\\(\\) block"):
            llm.invoke("hello")  # waiting for the worker would hang: it needs the lock we hold
    assert llm.invoke("hello").content  # outside the block it runs
