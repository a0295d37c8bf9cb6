import vaekit


def test_train_digits_in_memory(tmp_path):
    run = vaekit.train("digits", out=tmp_path / "run", epochs=2, progress=False, figures=False)
    assert run.model.sample(4).shape == (4, 1, 8, 8)
