"""Reading, validating and splitting every kind of input, and the errors for bad input."""

import numpy as np
import pytest
import torch
from helpers import write_idx_folder, write_images

from vaekit.config import DataConfig
from vaekit.data import load_data, load_image
from vaekit.data.idx import read_idx
from vaekit.errors import DataError


def test_digits_is_split_reproducibly_into_disjoint_parts():
    a = load_data(DataConfig(source="digits"))
    b = load_data(DataConfig(source="digits"))
    assert a.shape == [1, 8, 8] and a.is_image and a.num_classes == 10
    assert len(a.train) + len(a.val) + len(a.test) == 1797
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.test.y, b.test.y)
    assert 0.0 <= float(a.train.x.min()) and float(a.train.x.max()) <= 1.0
    rows = lambda d: {tuple(r) for r in d.x.flatten(1).tolist()}  # noqa: E731
    assert not rows(a.test) & rows(a.val)  # no example in two splits (digits has a few exact duplicates elsewhere)
    c = load_data(DataConfig(source="digits", split_seed=1))
    assert not torch.equal(a.test.x, c.test.x)


def test_idx_folder_uses_the_official_test_split(tmp_path):
    folder = write_idx_folder(tmp_path / "idx", n_train=30, n_test=10)
    d = load_data(DataConfig(source=str(folder)))
    assert d.official_test and len(d.test) == 10 and len(d.train) + len(d.val) == 30
    assert d.shape == [1, 6, 6]
    raw = read_idx(folder / "t10k-images-idx3-ubyte")
    torch.testing.assert_close(d.test.x[:, 0], torch.from_numpy(raw / 255.0).float())


def test_truncated_idx_file_is_reported(tmp_path):
    folder = write_idx_folder(tmp_path / "idx")
    p = folder / "t10k-images-idx3-ubyte"
    p.write_bytes(p.read_bytes()[:-5])
    with pytest.raises(DataError, match="truncated or corrupt"):
        load_data(DataConfig(source=str(folder)))


def test_image_folder_gray_rgb_labels_and_resize(tmp_path):
    gray = write_images(tmp_path / "gray", 12, size=(10, 12))
    d = load_data(DataConfig(source=str(gray)))
    assert d.shape == [1, 12, 10] and not d.has_labels
    rgb = write_images(tmp_path / "rgb", 12, size=(20, 16), mode="RGB", classes=["cat", "dog"])
    d = load_data(DataConfig(source=str(rgb), image_size=8))
    assert d.shape == [3, 8, 8] and d.class_names == ["cat", "dog"]
    assert set(d.split("all").y.tolist()) == {0, 1}


def test_image_folder_with_mixed_sizes_needs_image_size(tmp_path):
    write_images(tmp_path / "m", 6, size=(10, 10), prefix="a")
    write_images(tmp_path / "m", 6, size=(12, 12), prefix="b")
    with pytest.raises(DataError, match="--image-size"):
        load_data(DataConfig(source=str(tmp_path / "m")))
    assert load_data(DataConfig(source=str(tmp_path / "m"), image_size=9)).shape == [1, 9, 9]


def test_mixed_modes_need_color(tmp_path):
    write_images(tmp_path / "mix", 6, mode="L", prefix="g")
    write_images(tmp_path / "mix", 6, mode="RGB", prefix="c")
    with pytest.raises(DataError, match="--color"):
        load_data(DataConfig(source=str(tmp_path / "mix")))
    assert load_data(DataConfig(source=str(tmp_path / "mix"), color="rgb")).shape[0] == 3


def test_corrupt_image_is_named(tmp_path):
    folder = write_images(tmp_path / "c", 11)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(DataError, match="broken.png"):
        load_data(DataConfig(source=str(folder)))


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p / "missing", "no such file or folder"),
        (lambda p: (p / "empty").mkdir() or p / "empty", "holds no images"),
        (lambda p: (p / "notes.txt").write_text("hi") and p / "notes.txt", "expected a folder"),
    ],
)
def test_bad_sources(tmp_path, make, message):
    with pytest.raises(DataError, match=message):
        load_data(DataConfig(source=str(make(tmp_path))))


def test_npz_arrays_with_labels_and_layouts(tmp_path):
    x = np.random.default_rng(0).random((40, 5, 6, 3)).astype(np.float32)  # NHWC
    np.savez(tmp_path / "a.npz", x=x, y=np.repeat([3, 7], 20))
    d = load_data(DataConfig(source=str(tmp_path / "a.npz")))
    assert d.shape == [3, 5, 6] and d.class_names == ["3", "7"]
    assert set(d.split("all").y.tolist()) == {0, 1}
    np.save(tmp_path / "v.npy", np.random.default_rng(0).normal(size=(30, 7)))
    v = load_data(DataConfig(source=str(tmp_path / "v.npy"), matrix="raw"))
    assert v.shape == [7] and not v.is_image
    table = load_data(DataConfig(source=str(tmp_path / "v.npy")))  # by default a matrix is a table
    assert table.table is not None and table.shape == [14]  # a value and a presence flag per column
    np.save(tmp_path / "u8.npy", np.full((20, 4, 4), 255, dtype=np.uint8))
    assert float(load_data(DataConfig(source=str(tmp_path / "u8.npy"))).train.x.max()) == 1.0


@pytest.mark.parametrize(
    "arr, message",
    [
        (np.array([1.0, np.nan] * 20).reshape(20, 2), "non-finite"),
        (np.array([1.0, np.inf] * 20).reshape(20, 2), "non-finite"),
        (np.zeros(30), "expected \\(N, features\\)"),
        (np.zeros((20, 2, 2, 2, 2)), "expected \\(N, features\\)"),
        (np.zeros((20, 5, 6, 7)), "channels"),
        (np.zeros((5, 3)), "at least 10"),
        (np.array([["a", "b"]] * 20), "must hold numbers"),
    ],
)
def test_bad_arrays(tmp_path, arr, message):
    np.save(tmp_path / "bad.npy", arr)
    with pytest.raises(DataError, match=message):  # as plain vectors (as a table, NaN is a missing cell)
        load_data(DataConfig(source=str(tmp_path / "bad.npy"), matrix="raw"))


def test_labels_must_match_examples(tmp_path):
    np.savez(tmp_path / "l.npz", x=np.zeros((20, 3)), y=np.zeros(19))
    with pytest.raises(DataError, match="one per example"):
        load_data(DataConfig(source=str(tmp_path / "l.npz")))


def test_exclude_labels_keeps_them_only_in_test():
    d = load_data(DataConfig(source="digits", exclude_labels=[9]))
    assert 9 not in d.train.y.tolist() and 9 not in d.val.y.tolist()
    assert 9 in d.test.y.tolist()


def test_load_image_converts_to_the_model_shape(tmp_path):
    folder = write_images(tmp_path / "one", 1, size=(30, 20), mode="RGB")
    x = load_image(next(folder.iterdir()), [1, 8, 8])
    assert x.shape == (1, 8, 8) and 0 <= float(x.min()) and float(x.max()) <= 1
    with pytest.raises(DataError, match="no such image"):
        load_image(tmp_path / "nope.png", [1, 8, 8])
