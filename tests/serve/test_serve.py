"""Online linking over real HTTP on 127.0.0.1: a Serve application (ingress + three stages) over a
KB and a trained model in the local S3, checked against the batch linker, fed every class of bad
input, and hot-swapped to a new KB version under load (and refused a corrupt one)."""

from __future__ import annotations

import base64
import io
import json
import threading
import time
import urllib.error
import urllib.request

import pytest

from ameli_ray.config import AmeliConfig

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.integration]

QUICK = [
    "train.text_epochs=1", "train.image_epochs=2", "train.max_train_mentions=12", "train.candidates=3",
    "disambiguation.text.max_seq_length=32", "disambiguation.text.frozen_layers=5", "disambiguation.fusion.top_n=5",
    "ray.num_cpus=2",
]
KEY = "test-key-123"


class Client:
    def __init__(self, port: int, key: str | None = KEY):
        self.base = f"http://127.0.0.1:{port}"
        self.key = key

    def call(self, method: str, path: str, body=None, raw: bytes | None = None, headers: dict | None = None):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        h = {"Content-Type": "application/json", **({"X-API-Key": self.key} if self.key else {}), **(headers or {})}
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            payload = e.read()
            try:
                return e.code, json.loads(payload)
            except ValueError:
                return e.code, payload.decode(errors="replace")

    def link(self, body, **kw):
        return self.call("POST", "/v1/link", body, **kw)


def review_body(mention) -> dict:
    return {"id": mention.id, "text": mention.text, "surface": mention.surface, "image_uris": mention.image_uris}


def deploy(schema: dict) -> None:
    """What `serve deploy` / `serve run config.yaml` do with a Serve config file."""
    from ray.serve.context import _get_global_client
    from ray.serve.schema import ServeDeploySchema

    _get_global_client().deploy_apps(ServeDeploySchema.model_validate(schema))


def healthy(client: Client) -> bool:
    try:
        return client.call("GET", "/v1/healthz")[0] == 200
    except (urllib.error.URLError, OSError):  # the proxy is not listening yet, or slow to answer
        return False


def wait_for_version(client: Client, kb_version: str, *, refused: bool = False, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status, out = client.call("GET", "/v1/version")
        if status == 200 and out["versions"]["kb_version"] == kb_version and (bool(out["refused"]) or not refused):
            return out
        assert time.monotonic() < deadline, out
        time.sleep(0.5)


@pytest.fixture(scope="module")
def served(tmp_path_factory, s3_settings):
    from ray import serve

    from ameli_ray.catalog import generate_catalog
    from ameli_ray.distributed.runtime import ray_session
    from ameli_ray.formats import read_mentions
    from ameli_ray.serve.app import deploy_config
    from ameli_ray.storage import ObjectStore
    from ameli_ray.storage.local_s3 import free_port
    from ameli_ray.training_run import train_model
    from ameli_ray.workflows import build_kb

    root = tmp_path_factory.mktemp("serve")
    generate_catalog(root / "catalog", n_products=30, seed=5)
    store = ObjectStore(s3_settings)
    store.ensure_bucket("s3://serve-test")
    store.upload_dir(root / "catalog", "s3://serve-test/catalog")
    port = free_port()
    overrides = QUICK + [
        "serve.allowed_image_prefixes=[\"s3://serve-test/catalog/cleaned_review_images/\"]",
        f"serve.port={port}", f"serve.api_key={KEY}", "serve.max_batch_reviews=4", "serve.max_body_bytes=200000",
        f"s3.endpoint_url={s3_settings.endpoint_url}", f"s3.access_key_id={s3_settings.access_key_id.get_secret_value()}",
        f"s3.secret_access_key={s3_settings.secret_access_key.get_secret_value()}",
    ]
    config = AmeliConfig.load(None, overrides)
    split = {s: read_mentions(f"s3://serve-test/catalog/mentions_{s}.json", store) for s in ("train", "dev", "test")}
    with ray_session(config.ray):
        kb_uri, _, _ = build_kb(config, "s3://serve-test/catalog/entities.json", "s3://serve-test/kb", engine="local",
                                version="v1")
        trained = train_model(config, kb_uri, split["train"], split["dev"], "s3://serve-test/model", engine="local")
        overrides += ["serve.kb=s3://serve-test/kb", f"disambiguation.model={trained['model']}"]
        config = AmeliConfig.load(None, overrides)
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        deploy(deploy_config(overrides, port=port))
        client = Client(port)
        deadline = time.monotonic() + 600
        while not healthy(client):  # the replicas load the KB and the models
            assert time.monotonic() < deadline, "the application did not come up"
            time.sleep(1)
        try:
            yield {"config": config, "client": client, "split": split, "kb": kb_uri, "model": trained["model"],
                   "store": store, "root": root, "overrides": overrides, "port": port}
        finally:
            serve.shutdown()


def test_answers_equal_the_batch_linkers(served, tmp_path):
    from ameli_ray.workflows import link_mentions, read_link_results

    config, client, test = served["config"], served["client"], served["split"]["test"]
    link_mentions(config, served["kb"], test, str(tmp_path / "links"), engine="local")
    batch = {r["mention_id"]: r for r in read_link_results(str(tmp_path / "links"), served["store"]).to_pylist()}
    assert any(m.image_uris for m in test)  # photos travel as s3:// URIs under the allowed prefix
    for mention in test:
        status, out = client.link(review_body(mention))
        assert status == 200, out
        row = batch[mention.id]
        assert out["id"] == mention.id
        assert (out["entity_id"] or "") == row["entity_id"] and out["no_match"] == (row["entity_id"] == "")
        assert out["confidence"] == pytest.approx(row["confidence"], abs=1e-5)
        assert out["best_entity_id"] == row["best_entity_id"]
        assert out["versions"] == {"kb": served["kb"], "kb_version": "v1", "model": served["model"],
                                   "model_version": served["model"].rsplit("/", 1)[-1]}
        top = out["candidates"][0]
        assert {"retrieval", "text_stream", "image_stream", "score", "matched", "contradicted"} <= set(top)
        # candidates come by fused score; the batch row keeps retrieval order with the fused score per candidate
        finals = {cid: f for cid, f in zip(row["candidate_ids"], row["final_scores"]) if f == f}
        best_fused = max(finals, key=finals.get)
        assert top["entity_id"] == best_fused and top["score"] == pytest.approx(finals[best_fused], abs=1e-5)


def test_the_batch_route_answers_like_single_requests_in_order(served):
    client, test = served["client"], served["split"]["test"][:3]
    status, out = client.call("POST", "/v1/link/batch", {"reviews": [review_body(m) for m in test]})
    assert status == 200, out
    assert [r["id"] for r in out["results"]] == [m.id for m in test]
    for mention, result in zip(test, out["results"]):
        assert result["entity_id"] == client.link(review_body(mention))[1]["entity_id"]


def test_per_request_weights_are_validated_and_used(served):
    client, mention = served["client"], served["split"]["test"][0]
    body = review_body(mention)
    status, only_retrieval = client.link({**body, "weights": {"retrieval": 1, "text": 0, "image": 0}})
    assert status == 200
    scored = [c for c in only_retrieval["candidates"] if c["score"] is not None]
    assert scored[0]["entity_id"] == max(scored, key=lambda c: c["retrieval"])["entity_id"]
    for bad in ({"retrieval": -1, "text": 0, "image": 0}, {"retrieval": 0, "text": 0, "image": 0},
                {"retrieval": 1e9, "text": 0, "image": 0}, {"retrieval": 1, "text": 0}):
        status, out = client.link({**body, "weights": bad})
        assert status == 422 and out["error"]["code"] == "invalid_request", (bad, out)


def _png(size=(8, 8)) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def test_every_bad_input_gets_its_4xx_and_the_server_keeps_serving(served):
    client, mention = served["client"], served["split"]["test"][0]
    good = {"text": "the red one, 128GB"}
    cases = [
        ("no API key", lambda: Client(client.base.rsplit(":", 1)[1], key=None).link(good), 401, "unauthorized"),
        ("wrong API key", lambda: client.link(good, headers={"X-API-Key": "nope"}), 401, "unauthorized"),
        ("blank text", lambda: client.link({"text": "   "}), 422, "invalid_request"),
        ("missing text", lambda: client.link({"image_uris": []}), 422, "invalid_request"),
        ("unknown field", lambda: client.link({**good, "html": "<b>"}), 422, "invalid_request"),
        ("not JSON", lambda: client.link(None, raw=b"{not json"), 422, "invalid_request"),
        ("body too large", lambda: client.link({"text": "x" * 300_000}), 413, "body_too_large"),
        ("text too long", lambda: client.link({"text": "x" * 25_000}), 413, "text_too_long"),
        ("too many photos", lambda: client.link({**good, "images": [_png()] * 5}), 413, "too_many_photos"),
        ("local path", lambda: client.link({**good, "image_uris": ["/etc/passwd"]}), 403, "image_uri_not_allowed"),
        ("file URI", lambda: client.link({**good, "image_uris": ["file:///etc/passwd"]}), 403, "image_uri_not_allowed"),
        ("http URL", lambda: client.link({**good, "image_uris": ["http://169.254.169.254/latest"]}), 403,
         "image_uri_not_allowed"),
        ("other bucket", lambda: client.link({**good, "image_uris": ["s3://serve-test/kb/v1/manifest.json"]}), 403,
         "image_uri_not_allowed"),
        ("path traversal", lambda: client.link({**good, "image_uris": [
            "s3://serve-test/catalog/cleaned_review_images/../../kb/v1/text.faiss"]}), 403, "image_uri_not_allowed"),
        ("missing photo", lambda: client.link({**good, "image_uris": ["s3://serve-test/catalog/cleaned_review_images/nope.jpg"]}),
         422, "image_not_found"),
        ("bad base64", lambda: client.link({**good, "images": ["***"]}), 422, "bad_photo"),
        ("not an image", lambda: client.link({**good, "images": [base64.b64encode(b"GIF89a garbage").decode()]}), 422,
         "bad_photo"),
        ("too many reviews", lambda: client.call("POST", "/v1/link/batch", {"reviews": [good] * 5}), 413, "too_many_reviews"),
        ("empty batch", lambda: client.call("POST", "/v1/link/batch", {"reviews": []}), 422, "invalid_request"),
    ]
    for name, call, status, code in cases:
        got, out = call()
        assert got == status, (name, got, out)
        assert out["error"]["code"] == code, (name, out)
        assert "Traceback" not in json.dumps(out) and "testing" not in json.dumps(out)  # no stack, no credentials
        assert client.link(review_body(mention))[0] == 200, f"the server stopped serving after: {name}"
    status, out = client.link({**good, "images": [_png((16, 16))]})  # an inline photo is fine
    assert status == 200 and out["errors"] == []


def test_docs_health_and_version(served):
    client = served["client"]
    status, spec = client.call("GET", "/openapi.json")
    assert status == 200 and {"/v1/link", "/v1/link/batch", "/v1/healthz", "/v1/version"} <= set(spec["paths"])
    with urllib.request.urlopen(client.base + "/docs", timeout=60) as page:  # Swagger UI, HTML
        assert page.status == 200 and b"swagger" in page.read().lower()
    status, health = client.call("GET", "/v1/healthz")
    assert status == 200 and health["status"] == "ok" and health["kb_version"] == "v1"
    status, version = client.call("GET", "/v1/version")
    assert status == 200 and version["versions"]["kb_version"] == "v1" and version["refused"] == []


def test_hot_swap_under_load_and_a_corrupt_version_is_refused(served):
    """A new KB version through user_config (what a Serve config update does): requests keep
    succeeding during the switch, each answered by exactly one version, then all by the new one.
    A version with a corrupt file is refused and the previous one keeps serving."""
    from ameli_ray.serve.app import deploy_config
    from ameli_ray.workflows import build_kb

    config, client, store = served["config"], served["client"], served["store"]
    body = review_body(served["split"]["test"][0])
    build_kb(config, "s3://serve-test/catalog/entities.json", "s3://serve-test/kb", engine="local", version="v2")
    seen: list[tuple[int, str | None]] = []
    stop = threading.Event()

    def load():
        while not stop.is_set():
            status, out = client.link(body)
            seen.append((status, out.get("versions", {}).get("kb_version") if isinstance(out, dict) else None))

    workers = [threading.Thread(target=load) for _ in range(3)]
    for w in workers:
        w.start()
    try:
        time.sleep(2)
        started = time.monotonic()
        deploy(deploy_config(served["overrides"], port=served["port"],
                             user_config={"kb": "s3://serve-test/kb/v2", "model": served["model"]}))
        wait_for_version(client, "v2")
        switch_s = time.monotonic() - started
        time.sleep(3)
    finally:
        stop.set()
        for w in workers:
            w.join()
    assert seen and all(status == 200 for status, _ in seen), [s for s in seen if s[0] != 200][:5]
    assert {v for _, v in seen} == {"v1", "v2"} and seen[-1][1] == "v2"
    assert switch_s < 300

    # v3 is corrupt: refused, v2 keeps serving
    build_kb(config, "s3://serve-test/catalog/entities.json", "s3://serve-test/kb", engine="local", version="v3")
    data = bytearray(store.read_bytes("s3://serve-test/kb/v3/text_embeddings.npy"))
    data[-1] ^= 0xFF
    store.write_bytes("s3://serve-test/kb/v3/text_embeddings.npy", bytes(data))
    deploy(deploy_config(served["overrides"], port=served["port"],
                         user_config={"kb": "s3://serve-test/kb/v3", "model": served["model"]}))
    version = wait_for_version(client, "v2", refused=True)
    assert "sha256" in version["refused"][0] and "v3" in version["refused"][0]
    status, out = client.link(body)
    assert status == 200 and out["versions"]["kb_version"] == "v2"


def test_ameli_ray_serve_on_the_embedded_default(tmp_path):
    """The CLI as a new user runs it: local S3, the demo KB built into the cache, Ray, Serve on
    127.0.0.1; a review linked over HTTP (a photo by s3:// URI under the demo's allowed prefix);
    Ctrl-C stops it cleanly."""
    import os
    import signal
    import subprocess
    import sys

    from ameli_ray.storage.local_s3 import free_port

    port = free_port()
    env = {**os.environ, "AMELI_CACHE_DIR": str(tmp_path / "cache"), "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
           "RAY_AUTH_MODE": "disabled", "HF_HUB_OFFLINE": "1"}
    log = open(tmp_path / "serve.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "ameli_ray.cli", "serve", "--no-model", "--demo-products", "20",
                             "--port", str(port), "--set", "ray.num_cpus=2"], env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    client = Client(port, key=None)
    try:
        deadline = time.monotonic() + 900
        while not healthy(client):
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            assert time.monotonic() < deadline
            time.sleep(2)
        photos = sorted((tmp_path / "cache" / "serve-demo" / "catalog" / "cleaned_review_images").iterdir())
        status, out = client.link({"text": "Great sound, the silver one.",
                                   "image_uris": [f"s3://ameli-serve/catalog/cleaned_review_images/{photos[0].name}"]})
        assert status == 200, out
        assert out["entity_id"] and out["versions"]["kb"].startswith("s3://ameli-serve/kb/") and out["versions"]["model"] is None
        # the CLI prints this once its own health poll sees what ours saw: it may come a poll later
        while "serving on http://127.0.0.1:" not in (tmp_path / "serve.log").read_text():
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "serve.log").read_text()[-3000:]
            time.sleep(0.5)
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
    assert proc.returncode == 0, (tmp_path / "serve.log").read_text()[-3000:]
