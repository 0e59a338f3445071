"""An OpenAI-compatible HTTP server for a transformers causal LM (``agentrm serve policy``).

Endpoints (the subset of the OpenAI API that agents, the official ``openai`` client and ``vllm serve``
clients use), with vLLM's conventions where OpenAI leaves a choice:

* ``GET /v1/models`` - the served model;
* ``POST /v1/completions`` - ``prompt`` (string or list), ``n``, ``temperature``, ``top_p``,
  ``max_tokens`` (0 with ``echo`` scores the prompt only), ``stop``, ``seed``, ``echo`` (the prompt is put
  before the text, and its tokens into the log-probs: the first one has none), ``logprobs=k`` (``tokens``,
  ``token_logprobs``, ``top_logprobs``: the ``k`` most likely tokens at each position plus the sampled one,
  and ``text_offset``: where each token starts in the choice's ``text``), ``stream``;
* ``POST /v1/chat/completions`` - ``messages`` (``content`` a string or a list of ``{"type": "text",
  "text": ...}`` parts, joined by newlines as vLLM does) rendered with the tokenizer's chat template (the
  plain format of :mod:`agentrm_gym.agents.prompts` where it has none), ``n``, ``temperature``, ``top_p``,
  ``max_tokens`` / ``max_completion_tokens``, ``stop``, ``seed``, ``logprobs`` (bool) with
  ``top_logprobs=k``, ``stream``.

``stream=True`` answers with server-sent events, ``data: {chunk}\n\n`` lines ending with
``data: [DONE]``: ``chat.completion.chunk`` objects whose choices carry a ``delta`` (the role first, then
one token of content at a time, then the ``finish_reason``), or ``text_completion`` chunks carrying the text
piece by piece; ``stream_options={"include_usage": true}`` adds a last chunk with the usage. The samples
are generated first and then streamed token by token (the sampler is not incremental), so a client sees
the same chunk sequence as from vLLM, later.

Errors have OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``: 400 for an invalid
request (a field out of range, a wrong type, unsupported content, an empty prompt, text with a lone
surrogate, a ``seed`` beyond 64 bits, ``max_tokens`` that leaves no room for the prompt in the context),
401 without the ``api_key`` the server was started with, 404 for a model that is not served or an unknown
path, 413 for a body over ``max_request_bytes`` (1 MB by default; :mod:`agentrm_gym.serve.guard`); the
``openai`` client raises ``BadRequestError`` / ``NotFoundError`` / ``AuthenticationError`` with the message.

All samples of a request come from one batched sampling call (:class:`agentrm_gym.agents.hf.HFGenerator`);
the top log-probs and the prompt's log-probs (``echo``) take one more forward pass per choice, under the
raw logits (temperature 1) as the sampled tokens' log-probs. Requests are served one at a time.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

from agentrm_gym.extras import is_available, require_extra
from agentrm_gym.serve.guard import (
    DEFAULT_MAX_REQUEST_BYTES,
    RequestGuard,
    text_problem,
    warn_if_exposed,
)

# request schemas live at module level so FastAPI can resolve the (string) annotations
#: The range of a request's ``seed``: a signed 64-bit integer, as vLLM takes it (torch takes no more).
SEED_MIN, SEED_MAX = -(2**63), 2**63 - 1

if is_available("pydantic"):  # pydantic comes with fastapi ([serve] extra)
    from typing import Annotated

    from pydantic import AfterValidator, BaseModel, ConfigDict, Field

    def _valid_text(value: str) -> str:
        problem = text_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    #: A string the tokenizer can take: no lone surrogates (400 instead of a tokenizer crash).
    Text = Annotated[str, AfterValidator(_valid_text)]

    class StreamOptions(BaseModel):
        include_usage: bool = False

    class CompletionRequest(BaseModel):
        model: str | None = None
        prompt: Text | list[Text]
        n: int = Field(1, ge=1, le=128)
        best_of: int | None = Field(None, ge=1, le=128)
        temperature: float = Field(1.0, ge=0.0, le=5.0)
        top_p: float = Field(1.0, gt=0.0, le=1.0)
        max_tokens: int | None = Field(16, ge=0, le=4096)
        stop: Text | list[Text] | None = None
        logprobs: int | None = Field(None, ge=0, le=20)
        echo: bool = False
        seed: int | None = Field(None, ge=SEED_MIN, le=SEED_MAX)
        stream: bool = False
        stream_options: StreamOptions | None = None
        suffix: str | None = None

    class ContentPart(BaseModel):
        model_config = ConfigDict(extra="allow")
        type: str
        text: Text | None = None

    class ChatMessage(BaseModel):
        role: Text
        content: Text | list[ContentPart] | None = None
        name: Text | None = None

    class ChatRequest(BaseModel):
        model: str | None = None
        messages: list[ChatMessage]
        n: int = Field(1, ge=1, le=128)
        temperature: float = Field(1.0, ge=0.0, le=5.0)
        top_p: float = Field(1.0, gt=0.0, le=1.0)
        max_tokens: int | None = Field(None, ge=1, le=4096)
        max_completion_tokens: int | None = Field(None, ge=1, le=4096)
        stop: Text | list[Text] | None = None
        logprobs: bool = False
        top_logprobs: int | None = Field(None, ge=0, le=20)
        seed: int | None = Field(None, ge=SEED_MIN, le=SEED_MAX)
        stream: bool = False
        stream_options: StreamOptions | None = None


class APIError(Exception):
    """An error answered in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``."""

    def __init__(self, status: int, message: str, type: str = "invalid_request_error",  # noqa: A002
                 param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def _require_serve() -> None:
    require_extra(("fastapi", "uvicorn"), "serve", "agentrm serve")


def _sse(chunks: list[dict[str, Any]]) -> Iterator[str]:
    for chunk in chunks:
        yield f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"
    yield "data: [DONE]\n\n"


def message_text(content: Any) -> str:
    """A chat message's content as text: a string, or its text parts joined by newlines (as vLLM does)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    texts = []
    for part in content:
        if part.type != "text" or part.text is None:
            raise APIError(400, f"content parts of type {part.type!r} are not supported by this text-only model; "
                                "send {'type': 'text', 'text': ...} parts", param="messages")
        texts.append(part.text)
    return "\n".join(texts)


def add_error_handlers(app: Any) -> None:
    """OpenAI-shaped bodies for :class:`APIError`, validation errors (400) and HTTP errors (404...)."""
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    @app.exception_handler(APIError)
    async def _api_error(request: Any, exc: APIError) -> Any:
        return JSONResponse(status_code=exc.status, content=exc.body())

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Any, exc: RequestValidationError) -> Any:
        errors = list(exc.errors())
        # a value error of our own (a lone surrogate) says more than the other branches of a union
        ours = [e for e in errors if str(e.get("msg", "")).startswith("Value error, ")]
        parts, param = [], None
        for err in ours or errors:
            # pydantic names union branches in the location ("function-after[...]", "list[str]"): not fields
            loc = ".".join(str(x) for x in err.get("loc", ())
                           if x != "body" and not (isinstance(x, str) and ("[" in x or x in ("str", "int"))))
            msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
            param = param or loc or None
            part = f"{loc}: {msg}" if loc else msg
            if part not in parts:
                parts.append(part)
        err = APIError(400, "invalid request: " + "; ".join(parts), param=param)
        return JSONResponse(status_code=400, content=err.body())

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Any, exc: StarletteHTTPException) -> Any:
        status = exc.status_code
        message = str(exc.detail)
        if status == 404:
            message = f"{request.url.path}: not found (this server has GET /v1/models, POST /v1/completions, " \
                      "POST /v1/chat/completions)"
        err = APIError(status, message, "invalid_request_error" if status < 500 else "server_error",
                       code="not_found" if status == 404 else None)
        return JSONResponse(status_code=status, content=err.body())

    @app.exception_handler(Exception)
    async def _internal(request: Any, exc: Exception) -> Any:  # a bug, still answered in OpenAI's shape
        err = APIError(500, f"internal server error ({type(exc).__name__})", "server_error")
        return JSONResponse(status_code=500, content=err.body())


def openai_error_body(status: int, message: str) -> dict[str, Any]:
    """An OpenAI-shaped error body (the :class:`RequestGuard` replies: 401, 413)."""
    kind = {401: "authentication_error", 413: "invalid_request_error"}.get(status, "invalid_request_error")
    code = {401: "invalid_api_key", 413: "request_too_large"}.get(status)
    return APIError(status, message, kind, code=code).body()


def create_app(model_path: str | None = None, *, model: Any = None, tokenizer: Any = None,
               model_name: str | None = None, device: str | None = None,
               max_request_bytes: int | None = DEFAULT_MAX_REQUEST_BYTES, api_key: str | None = None) -> Any:
    """The FastAPI app serving ``model_path`` (or an already loaded ``model`` + ``tokenizer``).

    ``max_request_bytes`` bounds a request body (413 above it; ``0``: no limit); with ``api_key`` every
    request but ``GET /health`` needs ``Authorization: Bearer <api_key>`` (401 without it)."""
    _require_serve()
    from fastapi import FastAPI
    from fastapi.responses import StreamingResponse

    from agentrm_gym.agents.hf import HFGenerator, load_model
    from agentrm_gym.agents.prompts import render

    if model is None:
        if model_path is None:
            raise ValueError("pass model_path or model and tokenizer")
        model, tokenizer = load_model(model_path, device)
    engine = HFGenerator(model, tokenizer)
    name = model_name or model_path or getattr(model.config, "name_or_path", "") or "model"
    lock = threading.Lock()
    import torch

    def check_model(requested: str | None) -> None:
        if requested and requested != name:
            raise APIError(404, f"The model {requested!r} does not exist: this server serves {name!r} "
                                "(GET /v1/models)", param="model", code="model_not_found")

    def check_max_tokens(max_tokens: int, param: str = "max_tokens") -> None:
        """At least one prompt token must fit next to the completion (the sampler cuts the prompt's start)."""
        ctx = engine.context_length
        if max_tokens >= ctx:
            raise APIError(400, f"{param}={max_tokens} does not fit: this model's context is {ctx} tokens, so "
                                f"{param} can be at most {ctx - 1} (the prompt keeps at least one token)",
                           param=param, code="context_length_exceeded")

    def encode(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    def run(prompts: list[str], n: int, temperature: float, top_p: float, max_tokens: int,
            stop: str | list[str] | None, seed: int | None) -> list[list[Any]]:
        stops = [stop] if isinstance(stop, str) else list(stop or [])
        with lock:
            if seed is not None:  # a seeded request samples the same whatever was served before it
                engine.seed(seed)
            return engine.generate(prompts, n, temperature, max_tokens, stop=stops, top_p=top_p)

    def usage(prompts: list[str], rows: list[list[Any]]) -> dict[str, int]:
        p = sum(engine.count_tokens(x) for x in prompts)
        c = sum(len(s.token_ids) for row in rows for s in row)
        return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}

    def pieces(ids: list[int]) -> list[str]:
        """Each token's text, so that their concatenation is the decoded text (a character split over
        several byte-level tokens goes to the token that completes it)."""
        out, emitted = [], 0
        for i in range(len(ids)):
            cur = tokenizer.decode(ids[: i + 1], skip_special_tokens=True)
            if cur.endswith("\ufffd") and i < len(ids) - 1:
                out.append("")
                continue
            out.append(cur[emitted:])
            emitted = max(emitted, len(cur))
        return out

    def token_str(tid: int) -> str:
        return tokenizer.decode([tid], skip_special_tokens=False)

    def score(prompt_ids: list[int], gen_ids: list[int], k: int, with_prompt: bool, max_tokens: int
              ) -> tuple[list[float | None], list[list[tuple[int, float]]]]:
        """log p of every token of ``prompt + gen`` given the ones before (``None`` for the first one and for
        prompt tokens left out of the context, cut as the sampler cuts it) and the ``k`` most likely tokens
        at each position; only the generated positions unless ``with_prompt``."""
        ids = prompt_ids + gen_ids
        total = len(ids)
        start = max(0, len(prompt_ids) - max(1, engine.context_length - max_tokens))  # what the sampler saw
        first = 1 if with_prompt else max(1, len(prompt_ids))
        lps: list[float | None] = [None] * total
        tops: list[list[tuple[int, float]]] = [[] for _ in range(total)]
        if total - start < 2 and not gen_ids:
            return lps, tops
        window = torch.tensor([ids[start:]], dtype=torch.long, device=engine.device)
        with lock, torch.inference_mode():
            logits = model(input_ids=window).logits[0].float()
        lo = max(first, start + 1)  # position t is predicted by logits[t - 1 - start]
        if lo < total:
            logp = torch.log_softmax(logits[lo - 1 - start: total - 1 - start], dim=-1)
            target = torch.tensor(ids[lo:], dtype=torch.long, device=logp.device)
            chosen = logp.gather(-1, target[:, None])[:, 0].tolist()
            top_v, top_i = (logp.topk(k, dim=-1) if k > 0 else (None, None))
            for j, t in enumerate(range(lo, total)):
                lps[t] = float(chosen[j])
                if k > 0:
                    tops[t] = list(zip(top_i[j].tolist(), [float(v) for v in top_v[j].tolist()], strict=True))
        return lps, tops

    def completion_logprobs(prompt: str, sample: Any, k: int | None, echo: bool, max_tokens: int
                            ) -> tuple[dict[str, Any] | None, list[int]]:
        """The ``logprobs`` object of one completion choice (``None`` when ``k`` is) and the offset of each
        of its tokens in the choice's text."""
        gen = list(sample.token_ids)
        prompt_ids = encode(prompt) if echo else []
        if k is not None and (echo or k > 0):
            if not echo:
                prompt_ids = encode(prompt)
            lps, tops = score(prompt_ids, gen, k, echo, max_tokens)
            if not echo:
                prompt_ids = []
                lps, tops = lps[len(lps) - len(gen):], tops[len(tops) - len(gen):]
        else:
            lps, tops = [None] * (len(prompt_ids) + len(gen)), [[] for _ in range(len(prompt_ids) + len(gen))]
        ids = (prompt_ids if echo else []) + gen
        offset0 = len(prompt) if echo else 0
        strs = (pieces(prompt_ids) if echo else []) + pieces(gen)
        offsets, pos = [], 0
        for i, s in enumerate(strs):
            if echo and i == len(prompt_ids):
                pos = offset0  # the generated text starts right after the prompt text
            offsets.append(pos)
            pos += len(s)
        if k is None:
            return None, offsets
        token_lps: list[float | None] = []
        top_list: list[dict[str, float] | None] = []
        for j, tid in enumerate(ids):
            lp = lps[j] if j < len(prompt_ids) else float(sample.token_logprobs[j - len(prompt_ids)])
            token_lps.append(lp)
            if lp is None:
                top_list.append(None)
                continue
            entry = {token_str(a): v for a, v in tops[j]}
            entry[strs[j] or token_str(tid)] = lp  # the sampled token is always there (vLLM)
            top_list.append(entry)
        return {"tokens": strs, "token_logprobs": token_lps, "top_logprobs": top_list, "text_offset": offsets}, offsets

    def chat_logprobs(prompt: str, sample: Any, k: int, max_tokens: int) -> list[dict[str, Any]]:
        gen = list(sample.token_ids)
        tops: list[list[tuple[int, float]]] = [[] for _ in gen]
        if k > 0:
            prompt_ids = encode(prompt)
            _, all_tops = score(prompt_ids, gen, k, False, max_tokens)
            tops = all_tops[len(prompt_ids):]
        out = []
        for tid, lp, alts in zip(gen, sample.token_logprobs, tops, strict=True):
            tok = token_str(tid)
            out.append({"token": tok, "logprob": float(lp), "bytes": list(tok.encode("utf-8")),
                        "top_logprobs": [{"token": token_str(a), "logprob": v,
                                          "bytes": list(token_str(a).encode("utf-8"))} for a, v in alts]})
        return out

    app = FastAPI(title="agentrm-gym policy server")
    add_error_handlers(app)
    app.add_middleware(RequestGuard, max_request_bytes=max_request_bytes, api_key=api_key,
                       error_body=openai_error_body)

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": name, "object": "model", "created": 0, "owned_by": "agentrm-gym"}]}

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/completions")
    def completions(req: CompletionRequest) -> Any:
        check_model(req.model)
        prompts = [req.prompt] if isinstance(req.prompt, str) else list(req.prompt)
        if not prompts:
            raise APIError(400, "prompt is empty: send a string or a list of strings", param="prompt")
        if any(p == "" for p in prompts):
            raise APIError(400, "prompt is empty: the model needs at least one token to continue", param="prompt")
        if req.suffix:
            raise APIError(400, "suffix is not supported (a causal LM only continues the prompt)", param="suffix")
        if req.best_of is not None and req.best_of != req.n:
            raise APIError(400, f"best_of={req.best_of} is not supported: use n (and rank the choices)",
                           param="best_of")
        max_tokens = 16 if req.max_tokens is None else req.max_tokens
        if max_tokens == 0 and not req.echo:
            raise APIError(400, "max_tokens must be at least 1 (0 only with echo=true, to score the prompt)",
                           param="max_tokens")
        check_max_tokens(max_tokens)
        if max_tokens == 0:
            from agentrm_gym.agents.hf import Sample

            rows = [[Sample("", [], [], "length") for _ in range(req.n)] for _ in prompts]
        else:
            rows = run(prompts, req.n, req.temperature, req.top_p, max_tokens, req.stop, req.seed)
        rid, created = f"cmpl-{uuid.uuid4().hex}", int(time.time())
        choices, details = [], []
        for prompt, row in zip(prompts, rows, strict=True):
            for s in row:
                lp, offsets = (completion_logprobs(prompt, s, req.logprobs, req.echo, max(1, max_tokens))
                               if req.logprobs is not None or req.stream else (None, []))
                text = (prompt if req.echo else "") + s.text
                choices.append({"index": len(choices), "text": text, "logprobs": lp, "finish_reason": s.finish_reason})
                details.append((prompt, s, lp, offsets))
        use = usage(prompts, rows)
        if not req.stream:
            return {"id": rid, "object": "text_completion", "created": created, "model": name, "choices": choices,
                    "usage": use}
        with_usage = bool(req.stream_options and req.stream_options.include_usage)

        def chunk(index: int, text: str, lp: dict[str, Any] | None, finish: str | None) -> dict[str, Any]:
            c = {"id": rid, "object": "text_completion", "created": created, "model": name,
                 "choices": [{"index": index, "text": text, "logprobs": lp, "finish_reason": finish}]}
            if with_usage:
                c["usage"] = None
            return c

        def lp_slice(lp: dict[str, Any] | None, a: int, b: int) -> dict[str, Any] | None:
            return None if lp is None else {key: lp[key][a:b] for key in ("tokens", "token_logprobs", "top_logprobs",
                                                                          "text_offset")}

        out: list[dict[str, Any]] = []
        for index, (prompt, s, lp, offsets) in enumerate(details):
            n_prompt = len(offsets) - len(s.token_ids)
            text = choices[index]["text"]
            if req.echo:
                out.append(chunk(index, prompt, lp_slice(lp, 0, n_prompt), None))
            ends = offsets[n_prompt + 1:] + [len(text)]
            for j in range(len(s.token_ids)):
                a, b = offsets[n_prompt + j], ends[j]
                piece = text[min(a, len(text)): min(b, len(text))]
                if piece or lp is not None:
                    out.append(chunk(index, piece, lp_slice(lp, n_prompt + j, n_prompt + j + 1), None))
            out.append(chunk(index, "", None, s.finish_reason))
        if with_usage:
            out.append({"id": rid, "object": "text_completion", "created": created, "model": name, "choices": [],
                        "usage": use})
        return StreamingResponse(_sse(out), media_type="text/event-stream")

    @app.post("/v1/chat/completions")
    def chat(req: ChatRequest) -> Any:
        check_model(req.model)
        if not req.messages:
            raise APIError(400, "messages is empty", param="messages")
        if req.top_logprobs is not None and not req.logprobs:
            raise APIError(400, "top_logprobs needs logprobs=true", param="top_logprobs")
        msgs = [{"role": "system" if m.role == "developer" else m.role, "content": message_text(m.content)}
                for m in req.messages]
        try:
            prompt = render(msgs, tokenizer, add_generation_prompt=True)
        except Exception as exc:  # a chat template that rejects the roles or their order
            raise APIError(400, f"the chat template cannot render these messages: {exc}", param="messages") from exc
        if req.max_completion_tokens is not None:
            check_max_tokens(req.max_completion_tokens, "max_completion_tokens")
        elif req.max_tokens is not None:
            check_max_tokens(req.max_tokens)
        max_tokens = req.max_completion_tokens or req.max_tokens or min(256, engine.context_length - 1)
        rows = run([prompt], req.n, req.temperature, req.top_p, max_tokens, req.stop, req.seed)
        rid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        k = req.top_logprobs or 0
        choices, entries = [], []
        for s in rows[0]:
            content = chat_logprobs(prompt, s, k, max_tokens) if req.logprobs else None
            entries.append(content)
            choices.append({"index": len(choices), "message": {"role": "assistant", "content": s.text, "refusal": None},
                            "logprobs": None if content is None else {"content": content, "refusal": None},
                            "finish_reason": s.finish_reason})
        use = usage([prompt], rows)
        if not req.stream:
            return {"id": rid, "object": "chat.completion", "created": created, "model": name,
                    "system_fingerprint": None, "choices": choices, "usage": use}
        with_usage = bool(req.stream_options and req.stream_options.include_usage)

        def chunk(index: int, delta: dict[str, Any], lp: list[dict[str, Any]] | None,
                  finish: str | None) -> dict[str, Any]:
            c = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": name,
                 "system_fingerprint": None,
                 "choices": [{"index": index, "delta": delta,
                              "logprobs": None if lp is None else {"content": lp, "refusal": None},
                              "finish_reason": finish}]}
            if with_usage:
                c["usage"] = None
            return c

        out: list[dict[str, Any]] = []
        for index, (s, content) in enumerate(zip(rows[0], entries, strict=True)):
            out.append(chunk(index, {"role": "assistant", "content": ""}, None, None))
            strs, pos = pieces(list(s.token_ids)), 0
            for j, piece in enumerate(strs):
                piece = s.text[pos: pos + len(piece)] if pos < len(s.text) else ""
                pos += len(strs[j])
                if piece or content is not None:
                    out.append(chunk(index, {"content": piece}, None if content is None else [content[j]], None))
            out.append(chunk(index, {}, None, s.finish_reason))
        if with_usage:
            out.append({"id": rid, "object": "chat.completion.chunk", "created": created, "model": name,
                        "system_fingerprint": None, "choices": [], "usage": use})
        return StreamingResponse(_sse(out), media_type="text/event-stream")

    return app


class BackgroundServer:
    """Run an app with uvicorn in a daemon thread (tests, notebooks); a context manager that stops it.

    Args:
        app: the ASGI app.
        host: bind address (loopback by default).
        port: the port; 0 picks a free one (read :attr:`port` after start).
    """

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0):
        import socket

        import uvicorn

        if port == 0:
            with socket.socket() as s:
                s.bind((host, 0))
                port = s.getsockname()[1]
        self.host, self.port = host, port
        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def start(self, timeout: float = 30.0) -> BackgroundServer:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"the server did not start on {self.host}:{self.port}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def serve(model_path: str, host: str = "127.0.0.1", port: int = 8000, device: str | None = None,
          model_name: str | None = None, max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
          api_key: str | None = None) -> None:
    """Serve ``model_path`` until interrupted (a warning when ``host`` is beyond loopback without ``api_key``)."""
    import uvicorn

    warn_if_exposed(host, api_key, "policy server")
    uvicorn.run(create_app(model_path, device=device, model_name=model_name, max_request_bytes=max_request_bytes,
                           api_key=api_key), host=host, port=port, log_level="info")
