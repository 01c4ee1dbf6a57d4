"""Retrieval-augmented generation: cited passages within a token budget, and optionally an answer."""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import StreamingResponse

from api.deps import get_service, require_api_key
from api.schemas import error_responses
from api.schemas_rag import Answer, GenerateOptions, Message, PassageOut, RagQuery, RagResponse
from textlatent.errors import TextLatentError
from textlatent.retrieval.generate_llm import check_generation
from textlatent.retrieval.rag import get_generator, rag_context
from textlatent.service import TextLatent

log = logging.getLogger("textlatent.api")
router = APIRouter(prefix="/rag", tags=["rag"], dependencies=[Depends(require_api_key)])


def _sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


@router.post(
    "/query",
    response_model=RagResponse,
    responses={200: {"content": {"text/event-stream": {}},
                     "description": "JSON, or with generate.stream server-sent events: `passages` (this "
                                    "reply without answer), `delta` ({text}) pieces, then `done` ({answer, model}), "
                                    "or `error` ({error}) when generation fails after the stream has begun (a "
                                    "failure before the first piece is a 502/503 instead)"},
               **error_responses(400, 401, 404, 422, 502, 503)},
    summary="Ranked, cited passages and a prompt within a token budget; optionally an answer",
)
def rag_query(body: RagQuery, service: TextLatent = Depends(get_service)) -> Any:
    options = GenerateOptions() if body.generate is True else body.generate or None
    generator = None
    if options is not None:  # configuration and option errors are a 4xx now, not an in-band error later
        check_generation(options.max_new_tokens, options.temperature)
        generator = get_generator(service.settings, options.backend)
    try:
        ctx = rag_context(service, body.collection, body.query, k=body.k, mode=body.mode, rerank=body.rerank,
                          max_context_tokens=body.max_context_tokens, filter=body.filter)
    except TextLatentError as exc:
        if exc.param == "name":  # the library's name for it; this body calls it `collection`
            exc.param = "collection"
        raise
    reply = RagResponse(
        query=body.query, collection=body.collection, mode=body.mode, reranked=body.rerank,
        passages=[PassageOut(citation=p.citation, id=p.id, score=p.score, text=p.text, parent_id=p.parent_id,
                             start=p.start, end=p.end, truncated=p.truncated, metadata=p.metadata)
                  for p in ctx.passages],
        prompt=ctx.prompt, messages=[Message(**m) for m in ctx.messages], prompt_tokens=ctx.prompt_tokens,
        max_context_tokens=ctx.max_context_tokens, token_counter=ctx.token_counter, dropped=ctx.dropped,
    )
    if options is None or generator is None:
        return reply
    n, temperature = options.max_new_tokens, options.temperature
    if not options.stream:
        text = generator.generate(ctx.messages, max_new_tokens=n, temperature=temperature)
        reply.answer = Answer(text=text, model=generator.name)
        return reply

    # The first piece is awaited before the response starts: an endpoint that is down, refuses or
    # answers an error status is then a real 502/503, not a 200 whose stream says so.
    stream = generator.stream(ctx.messages, max_new_tokens=n, temperature=temperature)
    first = next(stream, None)

    def events() -> Iterator[str]:
        yield _sse("passages", reply.model_dump())
        pieces: list[str] = []
        try:
            for piece in itertools.chain([] if first is None else [first], stream):
                pieces.append(piece)
                yield _sse("delta", {"text": piece})
        except TextLatentError as exc:  # headers are sent: report in-band
            yield _sse("error", {"error": {"message": exc.message, "type": exc.code, "param": exc.param,
                                           "code": exc.status_code}})
            return
        except Exception as exc:  # anything else still ends the stream with an event, never silently
            log.exception("generation failed mid-stream")
            yield _sse("error", {"error": {"message": f"generation failed: {type(exc).__name__}",
                                           "type": "server_error", "param": "generate", "code": 500}})
            return
        yield _sse("done", {"answer": "".join(pieces).strip(), "model": generator.name})

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
