"""The explorer's JSON API: every endpoint, and every bad input gets a 4xx with a clear message."""

import base64
import io
import json

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from vaekit.core import sampling
from vaekit.serve import LOOPBACK_NAMES, Explorer
from vaekit.serve.app import create_app


@pytest.fixture(scope="module")
def explorer(digits_run):
    return Explorer.from_run(digits_run, score_reference=60)


@pytest.fixture(scope="module")
def client(explorer):
    return TestClient(create_app(explorer, max_upload_bytes=50_000))


def png_pixels(data_url: str) -> np.ndarray:
    """A PNG data URL -> its pixels as floats in [0, 1] (H, W) or (H, W, C)."""
    head, _, b64 = data_url.partition(",")
    assert head == "data:image/png;base64"
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))), dtype=np.float64) / 255


def png_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def assert_error(r, status: int, *words: str):
    assert r.status_code == status, r.text
    detail = r.json()["detail"]
    assert isinstance(detail, str) and detail
    for w in words:
        assert w in detail, detail


# -- every endpoint ---------------------------------------------------------------------------------


def test_page_and_static_files(client):
    r = client.get("/")
    assert r.status_code == 200 and "vaekit explorer" in r.text
    for name in ("app.js", "style.css", "favicon.svg"):
        assert client.get(f"/static/{name}").status_code == 200
    # nothing the page loads comes from another host
    assert "http://" not in r.text and "https://" not in r.text
    assert "https://" not in client.get("/static/app.js").text


def test_api_docs_work_offline(client):
    docs = client.get("/docs")
    assert docs.status_code == 200 and "cdn" not in docs.text.lower()
    scripts = [s.split('"')[1] for s in docs.text.split("src=")[1:]]
    assert scripts and all(s.startswith("/") for s in scripts)
    for s in scripts:
        assert client.get(s).status_code == 200
    spec = client.get("/openapi.json").json()
    assert {
        "/api/info",
        "/api/run",
        "/api/map",
        "/api/decode",
        "/api/map/decode",
        "/api/samples",
        "/api/test/{index}",
        "/api/interpolate",
        "/api/upload",
    } <= set(spec["paths"])


def test_info(client, explorer):
    info = client.get("/api/info").json()
    assert info["latent_dim"] == 4 and info["data_shape"] == [1, 8, 8] and info["n_test"] == 180
    kls = [d["kl"] for d in info["dims"]]
    assert kls == sorted(kls, reverse=True) and sorted(d["index"] for d in info["dims"]) == [0, 1, 2, 3]
    assert info["plane"]["method"] == "pca" and len(info["plane"]["axes"]) == 2
    assert info["class_names"][:3] == ["0", "1", "2"] and info["conditional"] is False
    assert info["score"]["key"] == "ensemble" and info["score"]["units"] == "normal quantile"


def test_run(client, digits_run):
    run = client.get("/api/run").json()
    assert run["config"]["model"]["latent_dim"] == 4
    assert [r["epoch"] for r in run["metrics"]] == [1, 2, 3]
    assert run["best"]["val_loss"] == min(r["val_loss"] for r in run["metrics"])
    assert run["info"]["data_name"] == "digits"


def test_map(client, explorer):
    m = client.get("/api/map").json()
    assert len(m["u"]) == len(m["v"]) == len(m["index"]) == len(m["label"]) == 180
    i = m["index"][7]
    assert m["label"][7] == int(explorer.test.y[i])
    mu = explorer.model.encode(explorer.test.x[i : i + 1]).mu.detach()
    uv = explorer.plane.project(mu)[0]
    assert (m["u"][7], m["v"][7]) == pytest.approx((float(uv[0]), float(uv[1])), abs=1e-3)


def test_decode_returns_the_models_image(client, explorer):
    z = [0.3, -1.1, 0.0, 2.0]
    r = client.post("/api/decode", json={"z": z})
    assert r.status_code == 200
    got = png_pixels(r.json()["image"])
    want = sampling.decode(explorer.model, torch.tensor([z]))[0, 0].numpy()
    assert got.shape == (8, 8)
    np.testing.assert_allclose(got, want, atol=0.5 / 255 + 1e-6)


def test_map_decode(client, explorer):
    r = client.post("/api/map/decode", json={"u": 1.25, "v": -0.5}).json()
    want = explorer.plane.lift(torch.tensor([[1.25, -0.5]]))[0]
    np.testing.assert_allclose(r["z"], want.numpy(), atol=1e-4)
    same = client.post("/api/decode", json={"z": r["z"]}).json()["image"]
    np.testing.assert_allclose(png_pixels(r["image"]), png_pixels(same), atol=1.5 / 255)


def test_samples(client):
    a = client.get("/api/samples", params={"n": 5, "seed": 3, "temperature": 1.0}).json()
    b = client.get("/api/samples", params={"n": 5, "seed": 3, "temperature": 1.0}).json()
    c = client.get("/api/samples", params={"n": 5, "seed": 3, "temperature": 0.3}).json()
    assert len(a["images"]) == 5 and a["images"] == b["images"]
    assert a["images"] != c["images"]
    assert len(client.get("/api/samples").json()["images"]) == 16


def test_test_example(client, explorer):
    r = client.get("/api/test/5").json()
    q = explorer.model.encode(explorer.test.x[5:6])
    np.testing.assert_allclose(r["mu"], q.mu[0].detach().numpy(), atol=1e-4)
    np.testing.assert_allclose(r["std"], q.std[0].detach().numpy(), atol=1e-4)
    assert r["index"] == 5 and r["label"] == int(explorer.test.y[5]) and r["label_name"] == str(r["label"])
    np.testing.assert_allclose(png_pixels(r["image"]), explorer.test.x[5, 0].numpy(), atol=0.5 / 255 + 1e-6)
    assert 0 <= r["score"]["percentile"] <= 100 and r["score"]["reference_size"] == 60


def test_interpolate(client, explorer):
    for method in ("lerp", "slerp"):
        r = client.post("/api/interpolate", json={"a": 2, "b": 9, "steps": 5, "method": method}).json()
        assert len(r["images"]) == 5 and len(r["z"]) == 5
        ends = explorer.model.encode(explorer.test.x[[2, 9]]).mu.detach().numpy()
        np.testing.assert_allclose([r["z"][0], r["z"][-1]], ends, atol=1e-4)


def test_upload_a_test_image(client, explorer):
    x = explorer.test.x[11, 0].numpy()
    data = png_bytes((x * 255).round().astype(np.uint8))
    r = client.post("/api/upload", content=data, headers={"content-type": "image/png"})
    assert r.status_code == 200, r.text
    body = r.json()
    np.testing.assert_allclose(png_pixels(body["image"]), x, atol=1 / 255)
    mu = explorer.model.encode(explorer.test.x[11:12]).mu[0].detach().numpy()
    np.testing.assert_allclose(body["mu"], mu, atol=0.05)  # the PNG rounds pixels to 1/255
    # validation data to rank against: the ensemble (the mean rank-normalised score)
    assert body["score"]["key"] == "ensemble" and body["score"]["threshold"] is not None
    assert body["score"]["flagged"] == (body["score"]["value"] > body["score"]["threshold"])
    assert len(body["std"]) == 4 and all(s > 0 for s in body["std"])


def test_upload_of_a_large_photo_is_resized(client):
    rgb = np.random.default_rng(0).integers(0, 256, size=(90, 120, 3), dtype=np.uint8)
    r = client.post("/api/upload", content=png_bytes(rgb))
    assert r.status_code == 200 and png_pixels(r.json()["image"]).shape == (8, 8)


# -- every bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, words",
    [
        ({"z": [0.0, 0.0, 0.0]}, ["3 numbers", "4 dimensions"]),
        ({"z": [0.0] * 5}, ["5 numbers", "4 dimensions"]),
        ({"z": []}, ["0 numbers"]),
        ({"z": [0.0, 1e300, 0.0, 0.0]}, ["z.1", "less than or equal"]),
        ({"z": [0.0, "a", 0.0, 0.0]}, ["z.1", "number"]),
        ({"z": [0.0, None, 0.0, 0.0]}, ["z.1"]),
        ({"z": "0,0,0,0"}, ["z"]),
        ({}, ["z", "required"]),
        ({"z": [0.0] * 4, "label": 3}, ["not conditional"]),
        ({"z": [0.0] * 4, "colour": 1}, ["colour", "not permitted"]),
        ({"z": [0.0] * 5000}, ["z", "at most 4096"]),
    ],
)
def test_decode_rejects_bad_vectors(client, body, words):
    assert_error(client.post("/api/decode", json=body), 422, *words)


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_decode_rejects_non_finite_numbers(client, token):
    # Python's JSON parser accepts these tokens, so they do reach the server
    r = client.post(
        "/api/decode", content=f'{{"z": [0.0, {token}, 0.0, 0.0]}}', headers={"content-type": "application/json"}
    )
    assert_error(r, 422, "z.1", "finite")


def test_decode_rejects_broken_json(client):
    r = client.post("/api/decode", content="{z: [", headers={"content-type": "application/json"})
    assert_error(r, 422, "JSON")


@pytest.mark.parametrize(
    "body, words",
    [({"u": "NaN", "v": 0.0}, ["u", "finite"]), ({"u": 0.0}, ["v", "required"]), ({"u": 1e9, "v": 0}, ["u"])],
)
def test_map_decode_rejects_bad_points(client, body, words):
    r = client.post(
        "/api/map/decode",
        content=json.dumps(body).replace('"NaN"', "NaN"),
        headers={"content-type": "application/json"},
    )
    assert_error(r, 422, *words)


@pytest.mark.parametrize(
    "params, words",
    [
        ({"n": 0}, ["n", "greater than or equal to 1"]),
        ({"n": 1000}, ["n", "less than or equal to 64"]),
        ({"n": "many"}, ["n", "integer"]),
        ({"temperature": 0}, ["temperature", "greater than 0"]),
        ({"temperature": -1}, ["temperature"]),
        ({"temperature": "nan"}, ["temperature", "finite"]),
        ({"temperature": "inf"}, ["temperature"]),
        ({"seed": -1}, ["seed"]),
        ({"label": 2}, ["not conditional"]),
    ],
)
def test_samples_reject_bad_parameters(client, params, words):
    assert_error(client.get("/api/samples", params=params), 422, *words)


@pytest.mark.parametrize(
    "index, words", [(180, ["180 is out of range", "180 examples"]), (-1, ["-1 is out of range"]), (10**30, ["index"])]
)
def test_test_example_rejects_bad_indices(client, index, words):
    assert_error(client.get(f"/api/test/{index}"), 422, *words)


def test_test_example_rejects_non_integers(client):
    assert_error(client.get("/api/test/abc"), 422, "index", "integer")
    assert_error(client.get("/api/test/1.5"), 422, "index")


@pytest.mark.parametrize(
    "body, words",
    [
        ({"a": 0, "b": 180}, ["180 is out of range"]),
        ({"a": -3, "b": 1}, ["-3 is out of range"]),
        ({"a": 0, "b": 1, "steps": 1}, ["steps", "greater than or equal to 2"]),
        ({"a": 0, "b": 1, "steps": 500}, ["steps", "less than or equal to 32"]),
        ({"a": 0, "b": 1, "method": "cubic"}, ["method", "lerp", "slerp"]),
        ({"a": 0}, ["b", "required"]),
        ({"a": 0.5, "b": 1}, ["a"]),
    ],
)
def test_interpolate_rejects_bad_input(client, body, words):
    assert_error(client.post("/api/interpolate", json=body), 422, *words)


def test_upload_rejects_non_images(client):
    assert_error(client.post("/api/upload", content=b"%PDF-1.7 definitely not an image"), 415, "not an image")
    noise = np.random.default_rng(1).integers(0, 256, size=(64, 64), dtype=np.uint8)
    assert_error(client.post("/api/upload", content=png_bytes(noise)[:-500]), 415, "damaged")


def test_upload_rejects_empty_bodies(client):
    assert_error(client.post("/api/upload", content=b""), 422, "empty")


def test_upload_rejects_huge_files(client):
    big = png_bytes(np.random.default_rng(0).integers(0, 256, size=(300, 300), dtype=np.uint8))
    assert len(big) > 50_000
    assert_error(client.post("/api/upload", content=big), 413, "50,000 bytes")


def test_upload_size_is_counted_without_content_length(client):
    # a chunked upload declares no size: the server counts the bytes as they arrive
    def chunks():
        for _ in range(20):
            yield b"\0" * 10_000

    assert_error(client.post("/api/upload", content=chunks()), 413, "50,000 bytes")


def test_upload_rejects_decompression_bombs(explorer):
    client = TestClient(create_app(explorer, max_upload_bytes=5_000_000))
    bomb = png_bytes(np.zeros((7000, 6000), np.uint8))  # a few kB that decode to 42 megapixels
    assert len(bomb) < 5_000_000
    assert_error(client.post("/api/upload", content=bomb), 413, "6000 x 7000 pixels")


def test_upload_rejects_labels_for_unconditional_models(client):
    r = client.post("/api/upload?label=1", content=png_bytes(np.zeros((8, 8), np.uint8)))
    assert_error(r, 422, "not conditional")


def test_the_server_reads_no_client_path(client):
    for path in [
        "/static/../conftest.py",
        "/static/%2e%2e/app.py",
        "/static/..%2f..%2fconfig.json",
        "/static//etc/passwd",
        "/api/test/..%2f..%2fconfig.json",
    ]:
        r = client.get(path)
        assert r.status_code in (404, 422), path
        assert "import" not in r.text and "root:" not in r.text
    # no route takes a string that could name a file: every parameter is a number
    spec = client.get("/openapi.json").json()
    for route, ops in spec["paths"].items():
        for op in ops.values():
            for p in op.get("parameters", []):
                types = {s.get("type") for s in p["schema"].get("anyOf", [p["schema"]])}
                assert types <= {"integer", "number", "null"}, (route, p)


def test_unknown_hosts_are_refused_when_bound_to_loopback(explorer):
    client = TestClient(create_app(explorer, allowed_hosts=LOOPBACK_NAMES), base_url="http://127.0.0.1:8000")
    assert client.get("/api/info").status_code == 200
    assert client.get("/api/info", headers={"host": "localhost:8000"}).status_code == 200
    assert client.get("/api/info", headers={"host": "attacker.example"}).status_code == 400


# -- other kinds of model ----------------------------------------------------------------------------


def test_conditional_model_needs_labels(cvae_run):
    client = TestClient(create_app(Explorer.from_run(cvae_run, score_reference=20)))
    info = client.get("/api/info").json()
    assert info["conditional"] and info["plane"]["method"] == "identity"
    assert_error(client.post("/api/decode", json={"z": [0.0, 0.0]}), 422, "conditional", "label in 0..9")
    assert_error(client.post("/api/decode", json={"z": [0.0, 0.0], "label": 10}), 422, "label 10 is out of range")
    a = client.post("/api/decode", json={"z": [0.0, 0.0], "label": 1}).json()["image"]
    b = client.post("/api/decode", json={"z": [0.0, 0.0], "label": 7}).json()["image"]
    assert a != b
    r = client.post("/api/map/decode", json={"u": 0.5, "v": -1.0, "label": 3}).json()
    assert r["z"] == pytest.approx([0.5, -1.0])
    assert len(client.get("/api/samples?n=3&label=4").json()["images"]) == 3
    assert_error(client.get("/api/samples?n=3"), 422, "conditional")
    assert client.post("/api/interpolate", json={"a": 0, "b": 1, "steps": 3}).status_code == 200
    assert client.get("/api/test/4").json()["label"] is not None
    img = png_bytes(np.zeros((8, 8), np.uint8))
    assert_error(client.post("/api/upload", content=img), 422, "conditional")
    assert client.post("/api/upload?label=2", content=img).status_code == 200


def test_autoencoder(ae_run):
    client = TestClient(create_app(Explorer.from_run(ae_run, score_reference=20)))
    info = client.get("/api/info").json()
    assert info["kind"] == "ae" and all(d["kl"] == 0 for d in info["dims"])
    acts = [d["activity"] for d in info["dims"]]
    assert acts == sorted(acts, reverse=True)
    r = client.get("/api/test/0").json()
    assert r["std"] == [0.0, 0.0, 0.0] and r["score"]["value"] > 0


def test_feature_vector_model(vector_run):
    client = TestClient(create_app(Explorer.from_run(vector_run, score_reference=20)))
    info = client.get("/api/info").json()
    assert info["is_image"] is False and info["latent_dim"] == 1 and info["class_names"] is None
    assert png_pixels(client.post("/api/decode", json={"z": [0.5]}).json()["image"]).shape == (1, 6)
    assert client.get("/api/map").json()["label"] is None
    assert client.post("/api/map/decode", json={"u": 0.5, "v": 3.0}).json()["z"] == [0.5]
    img = png_bytes(np.zeros((8, 8), np.uint8))
    assert_error(client.post("/api/upload", content=img), 422, "not on images")
