"""BatchDecoder mechanics on tiny random models of every supported architecture.

Greedy decoding of random weights makes outputs sensitive to every number, so equal token sequences are a
strong check that batching, padding, joining and per-row steering leave each row's computation intact.
"""

import pytest
import torch
from helpers import all_layers, hook_count, random_vector
from tiny_models import ARCHITECTURES, tiny_model

from langchain_steer.batching import BatchDecoder, GenerationRequest, Ticket
from langchain_steer.hooks import layer_offsets

PROMPTS = [
    [1, 5, 9, 13, 17, 21],
    [1, 7, 3],
    [1, 30, 31, 32, 33, 34, 35, 36, 37, 38],
    [1, 50, 60, 70],
]
TOKENS = 8


def _requests(model, strengths, prompts=PROMPTS, tokens=TOKENS, **settings):
    vectors = {
        "cost": random_vector(model, "cost", layers=all_layers(model), seed=4, functional_range=0.1)
    }
    return [
        GenerationRequest(p, tokens, offsets=layer_offsets(vectors, {"cost": s}), **settings)
        for p, s in zip(prompts, strengths, strict=False)
    ]


def _decode(model, requests, join_at=None):
    """Decode ``requests``; with ``join_at=k`` the last one joins after ``k`` steps of the others."""
    tickets = [Ticket(r) for r in requests]
    late = tickets[-1:] if join_at is not None else []
    decoder = BatchDecoder(model)
    try:
        decoder.admit(tickets[: len(tickets) - len(late)])
        steps = 0
        while decoder.rows or late:
            if late and steps == join_at:
                assert decoder.free_slots(8) > 0 or not decoder.joinable
                if decoder.free_slots(8):
                    decoder.admit(late)
                    late = []
            if decoder.rows:
                for ticket, reason, error in decoder.step():
                    ticket.finish(reason, error)
            elif late:
                decoder.admit(late)
                late = []
            steps += 1
    finally:
        decoder.close()
    return [[i for ids in t for i in ids] for t in tickets]


@pytest.fixture(params=sorted(ARCHITECTURES))
def model(request):
    return tiny_model(request.param, seed=1)


def test_solo_decoding_matches_hf_generate(model):
    [request] = _requests(model, [0.0], prompts=[PROMPTS[0]], eos_token_ids=frozenset({2}))
    [ours] = _decode(model, [request])
    inputs = torch.tensor([PROMPTS[0]])
    with torch.no_grad():
        reference = model.generate(
            inputs,
            attention_mask=torch.ones_like(inputs),
            max_new_tokens=TOKENS,
            eos_token_id=2,
            do_sample=False,
            pad_token_id=0,
        )[0, inputs.shape[1] :].tolist()
    assert ours == reference


def test_batched_rows_match_their_solo_runs(model):
    strengths = [1.0, -1.0, 0.5, 0.0]
    requests = _requests(model, strengths)
    solo = [_decode(model, [r])[0] for r in _requests(model, strengths)]
    assert _decode(model, requests) == solo
    assert len({tuple(s) for s in solo}) > 1  # the steering did change something
    assert hook_count(model) == 0


def test_a_row_joining_mid_batch_matches_its_solo_run(model):
    strengths = [1.0, -1.0, 0.0]
    prompts = [PROMPTS[0], PROMPTS[1], PROMPTS[2]]  # the late row has the longest prompt
    solo = [_decode(model, [r])[0] for r in _requests(model, strengths, prompts=prompts)]
    assert _decode(model, _requests(model, strengths, prompts=prompts), join_at=3) == solo
    assert hook_count(model) == 0


def test_rows_leave_when_they_finish():
    model = tiny_model("llama", seed=1)
    requests = [GenerationRequest(p, n) for p, n in zip(PROMPTS, (2, 5, 9, 1), strict=False)]
    tickets = [Ticket(r) for r in requests]
    decoder = BatchDecoder(model)
    sizes = []
    try:
        decoder.admit(tickets)
        while decoder.rows:
            sizes.append(len(decoder.rows))
            for ticket, reason, error in decoder.step():
                ticket.finish(reason, error)
    finally:
        decoder.close()
    assert sizes == [4, 3, 2, 2, 2, 1, 1, 1, 1]
    assert [len([i for ids in t for i in ids]) for t in tickets] == [2, 5, 9, 1]
    assert {t.finish_reason for t in tickets} == {"length"}


def test_eos_and_cancel_end_only_their_row():
    model = tiny_model("llama", seed=1)
    [first] = _decode(model, _requests(model, [0.0], prompts=[PROMPTS[0]]))
    eos = first[2]  # make the third greedy token an end-of-sequence token for this row only
    requests = _requests(model, [0.0, 0.0, 0.0], prompts=PROMPTS[:3])
    requests[0].eos_token_ids = frozenset({eos})
    tickets = [Ticket(r) for r in requests]
    decoder = BatchDecoder(model)
    try:
        decoder.admit(tickets)
        tickets[1].cancel()
        while decoder.rows:
            for ticket, reason, error in decoder.step():
                ticket.finish(reason, error)
    finally:
        decoder.close()
    assert [t.finish_reason for t in tickets] == ["stop", "cancelled", "length"]
    assert [i for ids in tickets[0] for i in ids] == first[: first.index(eos) + 1]
    assert list(tickets[1]) == []
    assert len([i for ids in tickets[2] for i in ids]) == TOKENS


def test_a_failing_processor_fails_only_its_row():
    model = tiny_model("llama", seed=1)

    def broken(ids, scores):
        raise RuntimeError("processor exploded")

    requests = _requests(model, [0.0, 0.0], prompts=PROMPTS[:2])
    requests[0].processors = [broken]
    tickets = [Ticket(r) for r in requests]
    decoder = BatchDecoder(model)
    try:
        decoder.admit(tickets)
        while decoder.rows:
            for ticket, reason, error in decoder.step():
                ticket.finish(reason, error)
    finally:
        decoder.close()
    with pytest.raises(RuntimeError, match="processor exploded"):
        list(tickets[0])
    assert tickets[1].finish_reason == "length"
    assert len([i for ids in tickets[1] for i in ids]) == TOKENS


def test_seeded_sampling_does_not_depend_on_the_batch():
    model = tiny_model("llama", seed=1)
    settings = dict(temperature=1.5, top_p=0.9, seed=11)
    alone = _decode(model, _requests(model, [0.5], prompts=[PROMPTS[0]], **settings))[0]
    together = _decode(model, _requests(model, [0.5, -1.0, 1.0], prompts=PROMPTS[:3], **settings))[
        0
    ]
    other_seed = _decode(
        model, _requests(model, [0.5], prompts=[PROMPTS[0]], temperature=1.5, seed=12)
    )
    assert alone == together
    assert alone != other_seed[0]


def test_generated_positions_policy_in_a_batch():
    """``positions="generated"`` steers only the last prompt position, per row, under left padding."""
    model = tiny_model("llama", seed=1)
    strengths = [1.0, -1.0, 0.5]
    prompts = PROMPTS[:3]
    solo = [
        _decode(model, [r])[0]
        for r in _requests(model, strengths, prompts=prompts, positions="generated")
    ]
    mixed = _requests(model, strengths, prompts=prompts, positions="generated")
    mixed[1].positions = "all"
    all_solo = [_decode(model, [r])[0] for r in _requests(model, strengths, prompts=prompts)]
    assert _decode(model, mixed) == [solo[0], all_solo[1], solo[2]]
    assert solo != all_solo  # the two policies do steer differently


def test_request_validation():
    with pytest.raises(ValueError, match="at least one prompt token"):
        GenerationRequest([], 4)
    with pytest.raises(ValueError, match="max_new_tokens"):
        GenerationRequest([1], 0)
    with pytest.raises(ValueError, match="positions"):
        GenerationRequest([1], 4, positions="prompt")  # type: ignore[arg-type]


def test_async_ticket_timeout_message_on_every_python(monkeypatch):
    import asyncio

    # Before Python 3.11, asyncio.wait_for raised asyncio.TimeoutError, a class apart from the
    # builtin TimeoutError. Stand one in, to check the friendly message survives there too.
    class LegacyTimeout(Exception):
        pass

    async def wait_for(awaitable, timeout):
        awaitable.close()
        raise LegacyTimeout

    monkeypatch.setattr(asyncio, "TimeoutError", LegacyTimeout)
    monkeypatch.setattr(asyncio, "wait_for", wait_for)
    monkeypatch.delattr(asyncio, "timeout", raising=False)  # as before 3.11: the ticket uses wait_for

    async def consume():
        ticket = Ticket(GenerationRequest([1, 2], 3), asyncio.get_running_loop(), timeout=0.5)
        return [ids async for ids in ticket]

    with pytest.raises(TimeoutError, match="No token arrived for 0.5 s"):
        asyncio.run(consume())


def test_a_cancellation_that_arrives_with_a_token_is_not_lost():
    import asyncio

    # The token wakes the consumer's get and the cancel lands in the same loop step: the race in
    # which ``asyncio.wait_for`` before Python 3.12 returned the token and forgot the cancellation.
    async def main():
        ticket = Ticket(GenerationRequest([1, 2], 3), asyncio.get_running_loop())
        received = []

        async def consume():
            async for ids in ticket:
                received.append(ids)

        task = asyncio.create_task(consume())
        await asyncio.sleep(0)  # the consumer now waits for a token
        ticket._queue.put_nowait([7])
        task.cancel()
        ticket.finish("stop")  # were the cancel lost, the iteration would end normally here
        with pytest.raises(asyncio.CancelledError):
            await task
        return received

    assert asyncio.run(main()) == []
