"""Reading data to score or clean: SOURCE:SPLIT specs, image folders, shape checks, and the
held-out-class setting (--exclude-label)."""

import numpy as np
import pytest
import torch
from PIL import Image

from vaekit.config import DataConfig
from vaekit.data import load_data, load_split, read_examples, split_spec
from vaekit.errors import DataError


def test_split_spec():
    assert split_spec("fashion-mnist:test") == ("fashion-mnist", "test")
    assert split_spec("data/x.npz:val") == ("data/x.npz", "val")
    assert split_spec("digits") == ("digits", None)
    assert split_spec("odd:name") == ("odd:name", None)  # not a split: the whole string is the source


def test_load_split_is_the_training_split():
    like = DataConfig(source="digits", split_seed=3, val_fraction=0.2)
    splits = load_data(like)
    torch.testing.assert_close(load_split("digits:val", like=like).x, splits.val.x)
    torch.testing.assert_close(load_split("digits:test").x, load_data(DataConfig()).test.x)
    assert len(load_split("digits:all")) == 1797
    with pytest.raises(DataError, match="names no split"):
        load_split("digits")


def test_exclude_label_drops_a_class_from_train_and_val_only():
    s = load_data(DataConfig(source="digits", exclude_labels=[9, 3]))
    for d in (s.train, s.val):
        assert not torch.isin(d.y, torch.tensor([3, 9])).any()
    assert torch.isin(s.test.y, torch.tensor([3, 9])).sum() > 10  # the test split keeps them
    full = load_data(DataConfig(source="digits"))
    assert len(s.train) + len(s.val) == int(
        (~torch.isin(torch.cat([full.train.y, full.val.y]), torch.tensor([3, 9]))).sum()
    )
    # the same classes are gone from a SOURCE:SPLIT of the run's own data, not from other sources
    like = DataConfig(source="digits", exclude_labels=[9])
    assert 9 not in load_split("digits:val", like=like).y.tolist()


def test_exclude_label_that_does_not_exist_is_an_error():
    with pytest.raises(DataError, match="no label 12"):
        load_data(DataConfig(source="digits", exclude_labels=[12]))


def test_image_folder_is_read_in_order_and_resized_to_the_model(tmp_path):
    (tmp_path / "imgs" / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in ["b.png", "a.png", "sub/c.jpg"]:
        Image.fromarray(rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)).save(tmp_path / "imgs" / name)
    ex = read_examples(str(tmp_path / "imgs"), data_shape=[1, 8, 8])
    assert ex.names == ["a.png", "b.png", "sub/c.jpg"]
    assert ex.x.shape == (3, 1, 8, 8) and 0 <= ex.x.min() and ex.x.max() <= 1
    one = read_examples(str(tmp_path / "imgs" / "a.png"), data_shape=[3, 8, 8])
    assert one.x.shape == (1, 3, 8, 8) and one.names == ["a.png"]


def test_arrays_keep_file_order_and_shapes_are_checked(tmp_path):
    x = np.random.default_rng(0).random((12, 1, 8, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    ex = read_examples(str(tmp_path / "x.npy"), data_shape=[1, 8, 8])
    np.testing.assert_array_equal(ex.x.numpy(), x)
    assert ex.names[:2] == ["0", "1"]
    with pytest.raises(DataError, match=r"shape \(1, 8, 8\), but the model was trained on shape \(1, 28, 28\)"):
        read_examples(str(tmp_path / "x.npy"), data_shape=[1, 28, 28])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no images"):
        read_examples(str(tmp_path / "empty"), data_shape=[1, 8, 8])
    with pytest.raises(DataError, match="no such file"):
        read_examples(str(tmp_path / "missing"), data_shape=[1, 8, 8])


def test_examples_limit_take_concat():
    ex = read_examples("digits:test", data_shape=[1, 8, 8])
    few = ex.limit(10, seed=0)
    assert len(few) == 10 and few.names == sorted(few.names, key=lambda n: int(n[5:-1]))
    assert ex.limit(10, seed=0).names == few.names and ex.limit(10_000) is ex
    both = few.concat(ex.take(torch.tensor([0, 1])))
    assert len(both) == 12 and both.names[-2:] == ["test[0]", "test[1]"]
