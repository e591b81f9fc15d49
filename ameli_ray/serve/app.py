"""The Serve application: a FastAPI ingress and three stage deployments composed with
`DeploymentHandle`s (retrieval -> disambiguation -> fusion), each a thin shell over
`serve/stages.py`. Sizes, batching and autoscaling come from `serve.*` of the one configuration;
the KB and model come from each deployment's `user_config` ({"kb": URI, "model": URI}), so a new
version is rolled out by changing it (hot swap: loaded and verified off the request path, then
switched; a version that fails to load is refused and the old one keeps serving).

    serve run serve_configs/local.yaml            # import_path: ameli_ray.serve.app:build_app
    ameli-ray serve                               # the same on the embedded default

Routes: POST /v1/link, POST /v1/link/batch, GET /v1/healthz, GET /v1/version, OpenAPI at /docs.
"""

# no `from __future__ import annotations`: FastAPI reads the route methods' annotations at
# runtime (a string "Request" would be taken for a query parameter)
import asyncio
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from ray import serve
from ray.serve.handle import DeploymentHandle
from starlette.exceptions import HTTPException as StarletteHTTPException

from ameli_ray import __version__ as SERVICE_VERSION
from ameli_ray.config import AmeliConfig
from ameli_ray.distributed.runtime import set_threads
from ameli_ray.errors import AmeliError, ConfigError
from ameli_ray.schema import Mention
from ameli_ray.serve import edge, stages
from ameli_ray.serve.api import (
    ErrorResponse,
    LinkBatchRequest,
    LinkBatchResponse,
    LinkRequest,
    LinkResponse,
    VersionResponse,
)
from ameli_ray.serve.demo import EMBEDDED, prepare_demo, resolve_embedded
from ameli_ray.serve.edge import RequestError, check_api_key, is_loopback, load_photos
from ameli_ray.storage import ObjectStore

_log = logging.getLogger("ameli_ray.serve")


def _user_config(user_config: dict | None, config: AmeliConfig) -> str:
    """The version key a `user_config` names ({"kb": URI, "model": URI or null})."""
    user_config = user_config or {}
    kb = resolve_embedded(user_config.get("kb") or config.serve.kb, "kb")
    if not kb:
        raise ConfigError("no KB to serve: set serve.kb or the deployments' user_config {'kb': URI}")
    model = resolve_embedded(user_config.get("model", config.disambiguation.model), "model")
    return stages.version_key(kb, model or None)


async def _stage_call(make, backoff_s: tuple[float, ...] = (0.25, 0.5, 1, 2, 3, 4)):
    """A stage call that survives a replica dying under it: the handle sends the retry to another
    replica, or to the restarted one (about 10 s of retries in all; the request's own timeout
    still bounds it). Still failing: 503, which a client may retry."""
    from ray.exceptions import ActorUnavailableError, RayActorError

    for pause in (*backoff_s, None):
        try:
            return await make()
        except (RayActorError, ActorUnavailableError):
            if pause is None:
                raise RequestError(503, "unavailable", "a stage is restarting; retry the request") from None
            await asyncio.sleep(pause)


class _Versioned:
    """A stage replica's versions: `reconfigure` (Serve calls it with `user_config` at start and on
    every change) loads off the request path, then switches. The first load must succeed (nothing
    to serve otherwise); a later one that fails is logged, kept in `refused`, and the replica
    goes on serving what it had."""

    def __init__(self, config: AmeliConfig, load):
        self.config = config
        self.cache = stages.VersionCache(load)
        self.refused: list[str] = []

    async def reconfigure(self, user_config: dict | None) -> None:
        key = _user_config(user_config, self.config)
        try:
            # reading the manifests is S3 I/O: off the replica's event loop, like the load itself
            await self.cache.switch(await asyncio.to_thread(self._resolved, key))
        except Exception as exc:
            if self.cache.current is None:
                raise
            message = f"{key.replace('|', ' + ')}: {exc}"
            _log.error("update refused, still serving %s: %s", self.cache.current, message)
            self.refused.append(message)

    def _resolved(self, key: str) -> str:
        """Roots resolved to their LATEST versions now, so a key names fixed versions."""
        kb, model = stages.split_key(key)
        v = stages.resolve_versions(self.config, kb, model)
        return stages.version_key(v.kb, v.model)


@serve.deployment(name="Retrieval")
class Retrieval(_Versioned):
    """Mention encoders, attribute extraction, retrieval and the attribute views of candidates."""

    def __init__(self, config: AmeliConfig):
        threads = set_threads(config.serve.retrieval)  # N replicas x all cores thrash
        super().__init__(config, lambda key: stages.load_retrieval(config, key, ocr_threads=threads))
        s = config.serve
        self.n_views = max(s.max_candidates, config.disambiguation.fusion.top_n)
        self.retrieve.set_max_batch_size(s.retrieval.max_batch_size)
        self.retrieve.set_batch_wait_timeout_s(s.retrieval.batch_wait_timeout_s)

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.005)
    async def retrieve(self, reviews: list[stages.Review]) -> list[stages.Retrieved]:
        key, assets = await self.cache.get()  # one version for the whole batch: the current one
        return await asyncio.to_thread(stages.retrieve, assets, key, reviews, self.n_views)

    async def version(self) -> dict:
        _, assets = await self.cache.get()
        return {"versions": assets.versions.model_dump(), "refused": list(self.refused)}


@serve.deployment(name="Disambiguation")
class Disambiguation(_Versioned):
    """Both streams over each review's top candidates (the GPU stage where there are GPUs)."""

    def __init__(self, config: AmeliConfig):
        import torch

        # Ray shows a replica only the GPUs it was given (ray_actor_options.num_gpus)
        device = "cuda" if torch.cuda.is_available() else "cpu"
        set_threads(config.serve.disambiguation)
        super().__init__(config, lambda key: stages.load_disambiguation(config, key, device))
        self.scores.set_max_batch_size(config.serve.disambiguation.max_batch_size)
        self.scores.set_batch_wait_timeout_s(config.serve.disambiguation.batch_wait_timeout_s)

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.005)
    async def scores(self, items: list[stages.Retrieved]) -> list[Any]:
        out: list[Any] = [None] * len(items)
        for key in dict.fromkeys(i.key for i in items):  # a batch may straddle a swap
            idx = [n for n, i in enumerate(items) if i.key == key]
            _, disambiguator = await self.cache.get(key)
            scored = await asyncio.to_thread(stages.stream_scores, disambiguator, [items[n] for n in idx])
            for n, s in zip(idx, scored):
                out[n] = s
        return out


@serve.deployment(name="Fusion")
class Fusion(_Versioned):
    """Fusion, the attribute filter and the no-match answer: no model weights, only the fusion."""

    def __init__(self, config: AmeliConfig):
        super().__init__(config, lambda key: stages.load_fusion(config, key))

    async def answer(self, item: stages.Retrieved, scores, weights: dict | None):
        _, assets = await self.cache.get(item.key)
        return stages.answer(assets, item, scores, weights)


app = FastAPI(
    title="ameli-ray", version=SERVICE_VERSION,
    description="Links product reviews (text + photos) to the products they talk about.",
    responses={400: {"model": ErrorResponse}, 401: {"model": ErrorResponse}, 403: {"model": ErrorResponse},
               413: {"model": ErrorResponse}, 422: {"model": ErrorResponse}, 504: {"model": ErrorResponse}},
)


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": {"code": code, "message": message}})


class _TooLarge(Exception):
    pass


class BodyCap:
    """ASGI middleware: refuses a body over `serve.max_body_bytes`, by its declared length or,
    without one (chunked), by counting the bytes as the route reads them, before any parsing."""

    def __init__(self, inner):
        self.inner = inner

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.inner(scope, receive, send)
        limit = edge.LIMITS["max_body_bytes"]
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            return await _too_large(limit)(scope, receive, send)
        seen = 0
        started = False

        async def counted():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _TooLarge()
            return message

        async def watched(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.inner(scope, counted, watched)
        except _TooLarge:
            if not started:
                await _too_large(limit)(scope, receive, send)


def _too_large(limit: int) -> JSONResponse:
    return _error(413, "body_too_large", f"request body over the limit of {limit} bytes")


app.add_middleware(BodyCap)


@app.exception_handler(RequestValidationError)
async def _invalid(request: Request, exc: RequestValidationError):
    problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'] if p != 'body')}: {e['msg']}" for e in exc.errors()[:5])
    return _error(422, "invalid_request", problems or "invalid request body")


@app.exception_handler(StarletteHTTPException)
async def _http(request: Request, exc: StarletteHTTPException):
    return _error(exc.status_code, "http_error", str(exc.detail))


@app.exception_handler(Exception)
async def _unexpected(request: Request, exc: Exception):
    _log.exception("request failed")  # the trace stays in the replica's log, not in the response
    return _error(500, "internal_error", "the server failed to answer this request; it has been logged")


@serve.deployment(name="Ingress")
@serve.ingress(app)
class Ingress:
    def __init__(self, config: AmeliConfig, retrieval: DeploymentHandle, disambiguation: DeploymentHandle,
                 fusion: DeploymentHandle):
        self.config = config
        self.settings = config.serve
        self.retrieval, self.disambiguation, self.fusion = retrieval, disambiguation, fusion
        self.store = ObjectStore(config.s3)
        # in a module, not a global of this one: Serve ships the ingress class by value (its
        # globals copied), while the middleware is imported by reference
        edge.LIMITS["max_body_bytes"] = config.serve.max_body_bytes

    async def _guard(self, request: Request) -> None:
        check_api_key(self.settings, request.headers.get("x-api-key"))

    async def _link(self, body: LinkRequest) -> LinkResponse:
        weights = None
        if body.weights is not None:
            try:
                weights = body.weights.normalised()
            except ValueError as exc:
                raise RequestError(422, "invalid_request", str(exc)) from None
        photos = await asyncio.to_thread(load_photos, body, self.settings, self.config.images, self.store)
        review = stages.Review(Mention(id=body.id or stages.new_id(), text=body.text, surface=body.surface), photos)
        n = min(body.candidates or self.settings.max_candidates, self.settings.max_candidates)
        return await stages.pipeline(
            review, weights,
            retrieve_one=lambda r: _stage_call(lambda: self.retrieval.retrieve.remote(r)),
            score_one=lambda item: _stage_call(lambda: self.disambiguation.scores.remote(item)),
            answer_one=lambda item, scores, w: _stage_call(lambda: self.fusion.answer.remote(item, scores, w)),
            n_candidates=n,
        )

    async def _timed(self, work):
        try:
            return await asyncio.wait_for(work, timeout=self.settings.request_timeout_s)
        except asyncio.TimeoutError:
            raise RequestError(504, "timeout", f"no answer within {self.settings.request_timeout_s:g} s") from None

    async def _answer(self, request: Request, work_factory):
        try:
            await self._guard(request)
            return await self._timed(work_factory())
        except RequestError as exc:
            return _error(exc.status, exc.code, exc.message)
        except AmeliError as exc:  # a stage refused something about this request
            return _error(422, "unprocessable", str(exc).split("\n")[0])

    @app.post("/v1/link", response_model=LinkResponse)
    async def link(self, body: LinkRequest, request: Request):
        """Link one review."""
        return await self._answer(request, lambda: self._link(body))

    @app.post("/v1/link/batch", response_model=LinkBatchResponse)
    async def link_batch(self, body: LinkBatchRequest, request: Request):
        """Link up to `serve.max_batch_reviews` reviews (answered in order)."""
        if len(body.reviews) > self.settings.max_batch_reviews:
            return _error(413, "too_many_reviews", f"{len(body.reviews)} reviews, at most {self.settings.max_batch_reviews}")

        async def work():
            return LinkBatchResponse(results=list(await asyncio.gather(*(self._link(r) for r in body.reviews))))

        return await self._answer(request, work)

    @app.get("/v1/healthz")
    async def healthz(self):
        """Ready (200) when the retrieval stage answers with a loaded version; 503 until then."""
        try:
            info = await asyncio.wait_for(self.retrieval.version.remote(), timeout=5)
        except (asyncio.TimeoutError, RuntimeError):
            return _error(503, "starting", "the stages are still loading the KB and models")
        return {"status": "ok", "kb_version": info["versions"]["kb_version"], "model_version": info["versions"]["model_version"]}

    @app.get("/v1/version", response_model=VersionResponse)
    async def version(self, request: Request):
        """The KB and model versions answering now, and updates that were refused."""
        try:
            await self._guard(request)
        except RequestError as exc:
            return _error(exc.status, exc.code, exc.message)
        info = await self.retrieval.version.remote()
        return VersionResponse(service=SERVICE_VERSION, versions=info["versions"], refused=info["refused"])


def build_app(args: dict | None = None):
    """The application for `serve run` / `serve deploy` (import_path `ameli_ray.serve.app:build_app`).

    args: `config` (a YAML path, optional) and `set` (overrides, `section.field=value`), read as
    every other command reads them (defaults < file < AMELI_* environment < set). The stage
    deployments' `user_config` defaults to {"kb": serve.kb, "model": disambiguation.model}; a
    Serve config file may set it per deployment (that is how a new version is rolled out)."""
    args = dict(args or {})
    config = AmeliConfig.load(args.pop("config", None), list(args.pop("set", []) or []))
    if args:
        raise ConfigError(f"unknown application args {sorted(args)}; known: config, set")
    if EMBEDDED in (config.serve.kb, config.disambiguation.model):  # built once, then reused
        prepare_demo(config, model=config.disambiguation.model == EMBEDDED, say=_log.info)
    return application(config)


STAGES = ("Retrieval", "Disambiguation", "Fusion")


def deploy_config(overrides: list[str], *, host: str = "127.0.0.1", port: int = 8000, name: str = "ameli",
                  user_config: dict | None = None, config_path: str | None = None) -> dict:
    """A Serve config (what `serve deploy` / `serve run` read, `ServeDeploySchema`) for this
    application: `overrides` and `config_path` become its args; `user_config` (the KB and model
    to serve) goes to every stage deployment. Changing only `user_config` and deploying again
    is a hot swap: the replicas stay, each loads the new version and switches."""
    args: dict = {"set": list(overrides)}
    if config_path:
        args["config"] = config_path
    app: dict = {"name": name, "route_prefix": "/", "import_path": "ameli_ray.serve.app:build_app", "args": args}
    if user_config is not None:
        app["deployments"] = [{"name": stage, "user_config": dict(user_config)} for stage in STAGES]
    return {"http_options": {"host": host, "port": port}, "applications": [app]}


def application(config: AmeliConfig):
    s = config.serve
    if not is_loopback(s.host) and s.api_key is None:
        raise ConfigError(f"serve.host {s.host} is not a loopback address: set serve.api_key (the X-API-Key every request must carry)")
    user_config = {"kb": s.kb, "model": config.disambiguation.model}
    retrieval = Retrieval.options(user_config=user_config, **s.retrieval.deployment_options()).bind(config)
    disambiguation = Disambiguation.options(user_config=user_config, **s.disambiguation.deployment_options()).bind(config)
    fusion = Fusion.options(user_config=user_config, **s.fusion.deployment_options()).bind(config)
    return Ingress.options(**s.ingress.deployment_options()).bind(config, retrieval, disambiguation, fusion)
