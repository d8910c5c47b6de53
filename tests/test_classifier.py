import json

import pytest
import torch

from vaelab.classifier import DigitClassifier, Schedule, accuracy, cached_classifier
from vaelab.data import load

TINY = Schedule(epochs=1, batch_size=64)


@pytest.fixture(scope="module")
def sample():
    """A few hundred real digits to train on, and a few hundred to measure."""
    train, test = load("mnist-sample", "train"), load("mnist-sample", "test")
    return train.stratified(500, seed=0), test.stratified(300, seed=0)


@pytest.fixture(scope="module")
def little(sample):
    """Fewer still, where only the cache's behaviour matters."""
    return sample[0].first(100), sample[1].first(50)


def files(cache):
    weights = cache / "classifiers" / "mnist-sample-cnn.safetensors"
    return weights, weights.with_suffix(".json")


def test_trains_once_then_reuses_the_cache(tmp_path, sample):
    classifier, record = cached_classifier(tmp_path, data=sample, schedule=TINY, progress=False)
    weights, record_path = files(tmp_path)
    assert weights.exists() and json.loads(record_path.read_text()) == record
    assert record["protocol"]["epochs"] == 1
    assert record["protocol"]["train"] == {"dataset": "mnist-sample", "images": 500}
    assert record["test_accuracy"] == pytest.approx(accuracy(classifier, sample[1]))
    assert record["test_accuracy"] > 0.3  # well above chance (0.1) after 8 steps
    stamp = weights.stat().st_mtime_ns

    again, record_again = cached_classifier(tmp_path, data=sample, schedule=TINY, progress=False)
    assert weights.stat().st_mtime_ns == stamp
    assert record_again == record
    for a, b in zip(classifier.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("damaged", ["weights", "record"])
def test_a_corrupt_cache_is_retrained(tmp_path, little, damaged):
    cached_classifier(tmp_path, data=little, schedule=TINY, progress=False)
    weights, record_path = files(tmp_path)
    (weights if damaged == "weights" else record_path).write_bytes(b"\x00garbage")
    classifier, record = cached_classifier(tmp_path, data=little, schedule=TINY, progress=False)
    assert json.loads(record_path.read_text()) == record
    assert record["test_accuracy"] == pytest.approx(accuracy(classifier, little[1]))
    reloaded, _ = cached_classifier(tmp_path, data=little, schedule=TINY, progress=False)
    assert torch.equal(reloaded.predict(little[1].float()), classifier.predict(little[1].float()))


def test_other_data_or_another_schedule_is_retrained(tmp_path, little):
    cached_classifier(tmp_path, data=little, schedule=TINY, progress=False)
    other = Schedule(epochs=1, batch_size=32)
    _, record = cached_classifier(tmp_path, data=little, schedule=other, progress=False)
    assert record["protocol"]["batch_size"] == 32
    fewer = little[0].first(60), little[1]
    _, record = cached_classifier(tmp_path, data=fewer, schedule=other, progress=False)
    assert record["protocol"]["train"]["images"] == 60


def test_training_is_deterministic(little):
    from vaelab.classifier import train_classifier

    train = little[0]
    a, b = train_classifier(train, TINY, progress=False), train_classifier(train, TINY, False)
    for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y)


def test_predicts_one_label_per_image():
    labels = DigitClassifier().predict(torch.rand(5, 1, 28, 28))
    assert labels.shape == (5,) and labels.dtype == torch.int64


@pytest.mark.slow
def test_the_real_classifier_reaches_99_percent(tmp_path, mnist_dir):
    classifier, record = cached_classifier(tmp_path, data_dir=mnist_dir, progress=False)
    assert record["protocol"]["train"]["images"] == 60000
    assert record["test_accuracy"] >= 0.99
    assert accuracy(classifier, load("mnist", "test", mnist_dir)) == record["test_accuracy"]
