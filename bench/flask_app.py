"""The seed project's serving stack, as a peer for bench/serve_load.sh: Flask under gunicorn
(-w 2, sync workers), PyTorch for the forward pass, prometheus_client for /metrics. It serves
the same model file as tools/serve (a simdnn safetensors model, read by hand here: an 8-byte
little-endian header length, a JSON header, then the raw tensors) with the same request and
response formats for POST /predict (docs/serving.md), so wrk's script works on both.

    SIMDNN_MODEL=model.safetensors gunicorn -w 2 -b 127.0.0.1:18081 --chdir bench flask_app:app

Debian 12 packages only: python3-flask, gunicorn, python3-torch, python3-prometheus-client.
With PROMETHEUS_MULTIPROC_DIR set, /metrics aggregates the gunicorn workers (prometheus_client's
multiprocess mode); otherwise each worker answers with its own counters.
"""

import json
import math
import os
import struct
import time

import torch
from flask import Flask, Response, jsonify, request
from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram,
                               generate_latest, multiprocess)

torch.set_num_threads(1)  # gunicorn's workers are the parallelism, as serve's threads are

_DTYPES = {"F32": torch.float32, "F64": torch.float64, "I64": torch.int64, "I32": torch.int32,
           "U8": torch.uint8}


def read_safetensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    (header_len,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + header_len])
    metadata = header.pop("__metadata__", {})
    base = 8 + header_len
    tensors = {}
    for name, info in header.items():
        start, end = info["data_offsets"]
        data = bytearray(blob[base + start:base + end])
        t = torch.frombuffer(data, dtype=_DTYPES[info["dtype"]]) if data else torch.empty(0)
        tensors[name] = t.reshape(info["shape"]).clone()
    return metadata, tensors


class Mlp(torch.nn.Module):
    """simdnn-mlp: dense_i.weight is [in, out] (x @ W + b), then each layer's activation."""

    def __init__(self, metadata, tensors):
        super().__init__()
        self.layers = json.loads(metadata["layers"])
        self.weights = [tensors[f"dense_{i}.weight"] for i in range(len(self.layers))]
        self.biases = [tensors[f"dense_{i}.bias"] for i in range(len(self.layers))]

    @torch.no_grad()
    def forward(self, x):
        for layer, w, b in zip(self.layers, self.weights, self.biases):
            x = torch.addmm(b, x, w)
            act = layer["activation"]
            if act == "relu":
                x = torch.relu(x)
            elif act == "tanh":
                x = torch.tanh(x)
            elif act == "sigmoid":
                x = torch.sigmoid(x)
            elif act == "softmax":
                x = torch.softmax(x, dim=1)
        return x


MODEL_PATH = os.environ.get("SIMDNN_MODEL", "model.safetensors")
_metadata, _tensors = read_safetensors(MODEL_PATH)
MODEL = Mlp(_metadata, _tensors)
FEATURES = int(_metadata["input_height"]) * int(_metadata["input_width"])
PIXEL_SCALE = float(_metadata["pixel_scale"])
CLASS_NAMES = json.loads(_metadata["class_names"])
VERSION = _metadata.get("version", "")
MAX_BATCH = int(os.environ.get("SIMDNN_MAX_BATCH", "256"))

REQUESTS = Counter("http_requests_total", "Responses sent", ["endpoint", "status"])
INFERENCE = Histogram("model_inference_time_seconds", "Time in the forward pass",
                      buckets=[5e-6 * 2 ** i for i in range(18)])
BATCH = Histogram("model_batch_size", "Instances per request",
                  buckets=[2 ** i for i in range(int(math.log2(MAX_BATCH)) + 1)])

app = Flask(__name__)


def error(status, message):
    REQUESTS.labels("/predict", str(status)).inc()
    return jsonify({"error": message}), status


@app.post("/predict")
def predict():
    if request.mimetype != "application/json":
        return error(415, "send application/json")
    try:
        doc = json.loads(request.get_data())
    except ValueError as e:
        return error(400, f"malformed JSON: {e}")
    if not isinstance(doc, dict) or len(doc) != 1 or not ("pixels" in doc or "instances" in doc):
        return error(400, 'expected an object with either "pixels" or "instances"')
    rows = [doc["pixels"]] if "pixels" in doc else doc["instances"]
    if not isinstance(rows, list) or not rows:
        return error(400, "empty or not an array")
    if len(rows) > MAX_BATCH:
        return error(413, "more than --max-batch instances")
    for r, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != FEATURES:
            return error(400, f"row {r}: expected {FEATURES} values")
        for v in row:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 255:
                return error(400, f"row {r}: values must be numbers 0..255")
    top_k = min(int(request.args.get("top_k", 3)), len(CLASS_NAMES))
    x = torch.tensor(rows, dtype=torch.float32) * PIXEL_SCALE
    start = time.perf_counter()
    probs = MODEL(x)
    INFERENCE.observe(time.perf_counter() - start)
    BATCH.observe(len(rows))
    predictions = []
    for p in probs.tolist():
        order = sorted(range(len(p)), key=lambda c: (-p[c], c))
        best = order[0]
        predictions.append({
            "class": best, "label": CLASS_NAMES[best], "probabilities": p,
            "top_k": [{"class": c, "label": CLASS_NAMES[c], "probability": p[c]}
                      for c in order[:top_k]]})
    REQUESTS.labels("/predict", "200").inc()
    return jsonify({"model_version": VERSION, "predictions": predictions})


@app.get("/healthz")
def healthz():
    REQUESTS.labels("/healthz", "200").inc()
    return jsonify({"status": "ok"})


@app.get("/metrics")
def metrics():
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        body = generate_latest(registry)
    else:
        body = generate_latest()
    REQUESTS.labels("/metrics", "200").inc()
    return Response(body, mimetype=CONTENT_TYPE_LATEST)
