"""The explorer on a run trained on a table: every endpoint answers (rows are shown as strips of
the encoded row; the latent map, sliders, samples and scores work as for any run)."""

import pytest
from fastapi.testclient import TestClient
from helpers import write_people_csv

import vaekit
from vaekit.serve import Explorer
from vaekit.serve.app import create_app


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    folder = tmp_path_factory.mktemp("serve-table")
    data = write_people_csv(folder / "people.csv", n=120)
    vaekit.train(str(data), out=folder / "run", progress=False, figures=False, epochs=2, hidden=[16], latent_dim=3)
    return TestClient(create_app(Explorer.from_run(folder / "run", score_reference=30)))


def test_every_endpoint_answers_on_a_table_run(client):
    info = client.get("/api/info").json()
    assert info["is_image"] is False and info["latent_dim"] == 3
    for path in ("/api/run", "/api/map", "/api/samples?n=4", "/api/test/0"):
        assert client.get(path).status_code == 200, path
    assert client.post("/api/decode", json={"z": [0.0, 0.5, -0.5]}).status_code == 200
    assert client.post("/api/map/decode", json={"u": 0.1, "v": -0.2}).status_code == 200
    assert client.post("/api/interpolate", json={"a": 0, "b": 1, "steps": 3}).status_code == 200
    analysis = client.get("/api/test/1").json()
    assert analysis["score"]["key"] == "ensemble" and analysis["score"]["value"] is not None


def test_a_test_row_comes_back_in_the_tables_columns(client):
    a = client.get("/api/test/0").json()
    assert set(a["row"]) == {"age", "income", "city", "member", "joined", "y"}  # no --label: y is a column
    assert a["reconstructed_row"]["city"] in ("Oslo", "Bergen", "Tromso") and isinstance(a["row"]["income"], float)
