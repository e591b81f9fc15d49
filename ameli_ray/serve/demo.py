"""The embedded default for online linking: the demo catalogue's KB and model, built once into the
local cache (`~/.cache/ameli-ray/serve-demo`, or `$AMELI_CACHE_DIR/serve-demo`) and reused.

`embedded:demo` in `serve.kb`, `disambiguation.model` or a deployment's `user_config` names them.
`ameli-ray serve` and `serve run serve_configs/local.yaml` prepare them when they are missing
(catalogue generation, a KB build and, unless told otherwise, the demo's training profile: a few
minutes on a laptop, once). Ray-free except the training (Ray Train), as everywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ameli_ray.config import AmeliConfig
from ameli_ray.storage import ObjectStore

EMBEDDED = "embedded:demo"
N_PRODUCTS = 600  # the demo catalogue's size (`ameli-ray serve --demo-products` changes it)


def demo_root() -> Path:
    from ameli_ray.encoders.loading import cache_dir

    return cache_dir() / "serve-demo"


def resolve_embedded(uri: str | None, what: str) -> str | None:
    """`embedded:demo` -> the cached demo KB or model folder; anything else as it is."""
    if uri != EMBEDDED:
        return uri
    return str(demo_root() / ("kb" if what == "kb" else "model"))


def _has_version(root: Path) -> bool:
    return (root / "LATEST").exists()


def prepare_demo(config: AmeliConfig, *, model: bool = True, say: Callable[[str], None] = lambda _: None,
                 n_products: int = N_PRODUCTS) -> tuple[str, str | None]:
    """(KB root, model root or None): the demo's, built now where missing (verified when read)."""
    from ameli_ray.catalog import generate_catalog
    from ameli_ray.formats import read_mentions
    from ameli_ray.workflows import build_kb, demo_profile

    root = demo_root()
    catalog, kb, model_root = root / "catalog", root / "kb", root / "model"
    config = demo_profile(config)
    if not (catalog / "summary.json").exists():
        say(f"generating the demo catalogue ({n_products} products) in {catalog}")
        generate_catalog(catalog, n_products=n_products, seed=0)
    if not _has_version(kb):
        say(f"building the demo KB in {kb}")
        build_kb(config, str(catalog / "entities.json"), str(kb), engine="local", say=say)
    if model and not _has_version(model_root):
        from ameli_ray.training_run import train_model

        store = ObjectStore(config.s3)
        split = {s: read_mentions(str(catalog / f"mentions_{s}.json"), store) for s in ("train", "dev")}
        say(f"training the demo model in {model_root} (once; a few minutes)")
        train_model(config, str(kb), split["train"], split["dev"], str(model_root), engine="local", say=say)
    return str(kb), str(model_root) if model else None


def demo_catalog() -> Path:
    return demo_root() / "catalog"


def serve_locally(config: AmeliConfig, *, kb: str | None, model: str | None, no_model: bool, host: str, port: int,
                  say: Callable[[str], None], config_path: str | None = None, user_overrides: list[str] | None = None,
                  n_products: int = N_PRODUCTS, ready: Callable[[str, dict], None] | None = None,
                  stop: Callable[[], None] | None = None) -> None:
    """`ameli-ray serve`: S3 as configured (or a local server on 127.0.0.1 when embedded), the
    given KB and model (or the embedded demo's, uploaded to that S3 so that replicas read the KB
    from S3 and requests may name the demo's review photos by s3:// URI), a local Ray (or the
    configured cluster), the application deployed from a Serve config as `serve deploy` would,
    until `stop` returns (Ctrl-C by default)."""
    import signal

    from ameli_ray.distributed.runtime import ray_session
    from ameli_ray.storage import s3_for_run

    _refuse_a_taken_port(host, port)  # before minutes of catalogue, KB and model preparation
    overrides: list[str] = list(user_overrides or [])  # the replicas read the same configuration
    with s3_for_run(config.s3) as s3:
        config = config.model_copy(update={"s3": s3})
        if s3.endpoint_url:
            overrides.append(f"s3.endpoint_url={s3.endpoint_url}")
            if s3.access_key_id and s3.secret_access_key:
                overrides += [f"s3.access_key_id={s3.access_key_id.get_secret_value()}",
                              f"s3.secret_access_key={s3.secret_access_key.get_secret_value()}"]
        kb = kb or config.serve.kb
        model = None if no_model else (model or config.disambiguation.model)
        if kb in (None, EMBEDDED):
            demo_kb, demo_model = prepare_demo(config, model=not no_model and model in (None, EMBEDDED), say=say,
                                               n_products=n_products)
            store = ObjectStore(s3)
            bucket = "s3://ameli-serve"
            store.ensure_bucket(bucket)
            say(f"uploading the demo KB{'' if no_model else ' and model'} and review photos to {bucket} ({s3.endpoint_url or 'AWS'})")
            store.upload_dir(demo_kb, f"{bucket}/kb")
            kb = f"{bucket}/kb"
            if demo_model and model in (None, EMBEDDED):
                store.upload_dir(demo_model, f"{bucket}/model")
                model = f"{bucket}/model"
            store.upload_dir(demo_catalog() / "cleaned_review_images", f"{bucket}/catalog/cleaned_review_images")
            overrides.append(f'serve.allowed_image_prefixes=["{bucket}/catalog/cleaned_review_images/"]')
        elif model == EMBEDDED:
            model = prepare_demo(config, model=True, say=say, n_products=n_products)[1]
        overrides += [f"serve.kb={kb}", f"disambiguation.model={model or 'null'}", f"serve.host={host}", f"serve.port={port}"]
        with ray_session(config.ray):
            from ray import serve
            from ray.serve.context import _get_global_client
            from ray.serve.schema import ServeDeploySchema

            from ameli_ray.serve.app import application, deploy_config

            application(AmeliConfig.load(config_path, overrides))  # refuses what the replicas would, here and now
            serve.start(http_options={"host": host, "port": port})
            schema = deploy_config(overrides, host=host, port=port, user_config={"kb": kb, "model": model},
                                   config_path=config_path)
            _get_global_client().deploy_apps(ServeDeploySchema.model_validate(schema))
            url = f"http://{host}:{port}"
            say(f"deploying to {url} (KB {kb}, model {model or 'none: retrieval and the attribute filter'}); "
                "the first start loads the models")
            _wait_healthy(url)
            say(f"serving on {url}: POST /v1/link, POST /v1/link/batch, GET /v1/version, docs at {url}/docs; Ctrl-C stops")
            if ready is not None:  # a benchmark: what it needs to deploy again (a hot swap)
                ready(url, {"s3": s3, "overrides": overrides, "kb": kb, "model": model})
            def interrupt(*_):  # SIGTERM (a process manager, `kill`) stops as Ctrl-C does
                raise KeyboardInterrupt

            previous = signal.signal(signal.SIGTERM, interrupt)
            try:
                if stop is None:
                    signal.pause()
                else:
                    stop()
            except KeyboardInterrupt:
                pass
            finally:
                signal.signal(signal.SIGTERM, previous)
                serve.shutdown()


def _refuse_a_taken_port(host: str, port: int) -> None:
    """Serve's proxy cannot bind a taken port and keeps retrying, so we ask first."""
    import socket

    from ameli_ray.errors import AmeliError

    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: a just-stopped server's port is free
        try:
            s.bind((host, port))
        except OSError as e:
            raise AmeliError(f"cannot serve on {host}:{port}: {e.strerror or e} (another process holds it? "
                             "choose a port with --port or serve.port)") from None


def _wait_healthy(url: str, timeout_s: float = 1800) -> None:
    import http.client
    import time
    import urllib.error
    import urllib.request

    from ameli_ray.errors import AmeliError

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(f"{url}/v1/healthz", timeout=30) as r:
                if r.status == 200:
                    return
        except http.client.BadStatusLine as e:
            if not isinstance(e, http.client.RemoteDisconnected):  # a closed connection: still starting
                # Not HTTP: a process that bound the port after our check (Ray's own gRPC servers
                # take free ports as they start); Serve's proxy will never get it.
                raise AmeliError(f"something other than Ray Serve answers on {url} (it took the port as the "
                                 "application started): choose another port with --port or serve.port") from None
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise AmeliError(f"the application at {url} did not become healthy in {timeout_s:.0f} s (see the Ray Serve logs)")
        time.sleep(1)
