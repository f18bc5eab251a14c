"""probe_model end to end on a small trained network, against per-probe sklearn k-NN."""

import numpy as np
import pytest
import torch
from sklearn.neighbors import KNeighborsClassifier

from pdlib import TrainConfig, capture_embeddings, make_model, prediction_depth, probe_model, train_model


@pytest.fixture(scope="module")
def trained():
    generator = torch.Generator().manual_seed(0)
    centres = torch.randn(4, 1, 6, 6, generator=generator) * 2
    labels = torch.randint(0, 4, (400,), generator=generator)
    inputs = centres[labels] + torch.randn(400, 1, 6, 6, generator=generator)
    model = make_model("mlp", 4, 1, 6, width=32, seed=0)
    result = train_model(model, inputs[:300], labels[:300], TrainConfig(epochs=30, batch_size=32, lr=0.05),
                         seed=0, device="cpu", progress=False)
    return model, inputs, labels, result


def test_training_fits_and_is_reproducible(trained):
    model, inputs, labels, result = trained
    assert result.train_accuracy >= 0.99
    assert result.loss_history[-1] < result.loss_history[0]
    again = make_model("mlp", 4, 1, 6, width=32, seed=0)
    train_model(again, inputs[:300], labels[:300], TrainConfig(epochs=30, batch_size=32, lr=0.05),
                seed=0, device="cpu", progress=False)
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), again.parameters()))


def test_checkpoints_record_predictions():
    inputs, labels = torch.randn(64, 1, 4, 4), torch.randint(0, 3, (64,))
    model = make_model("mlp", 3, 1, 4, width=8, seed=0)
    result = train_model(model, inputs, labels, TrainConfig(epochs=4, batch_size=16, n_checkpoints=8),
                         seed=0, device="cpu", track_inputs=inputs[:10], progress=False)
    assert result.checkpoint_steps.tolist() == [0, 2, 4, 6, 8, 10, 12, 14, 16]
    assert result.checkpoint_predictions.shape == (9, 10)
    final = model.eval()(inputs[:10]).argmax(1).numpy()
    np.testing.assert_array_equal(result.checkpoint_predictions[-1], final)


def test_probe_model_matches_sklearn_per_probe(trained):
    model, inputs, labels, _ = trained
    train_x, train_y, query_x = inputs[:300], labels[:300].numpy(), inputs[300:]
    result = probe_model(model, train_x, train_y, query_x, k=5, memory_bytes=10_000, progress=False)
    assert result.probe_names == model.probe_points
    train_emb = capture_embeddings(model, train_x, progress=False)
    query_emb = capture_embeddings(model, query_x, progress=False)
    for p, name in enumerate(result.probe_names):
        reference = train_emb.embeddings[name].astype(np.float64)
        clf = KNeighborsClassifier(5, algorithm="brute").fit(reference, train_y)
        np.testing.assert_array_equal(result.query_probe_predictions[p], clf.predict(query_emb.embeddings[name]))
        neighbours = clf.kneighbors(return_distance=False)  # leave-one-out
        loo = np.stack([np.bincount(train_y[row], minlength=4) for row in neighbours])
        np.testing.assert_array_equal(result.train_votes[p], loo)
    np.testing.assert_array_equal(result.query_network_predictions, query_emb.logits.argmax(1))
    np.testing.assert_array_equal(result.train_depth,
                                  prediction_depth(result.train_probe_predictions, result.train_network_predictions))
    assert result.train_votes.dtype == np.uint8 and result.train_votes.shape == (9, 300, 4)
    assert result.query_depth.shape == (100,) and result.query_depth.max() <= 8
    # a clean, well-separated task is decided early
    assert result.query_depth.mean() < 3


def test_probe_model_bad_inputs(trained):
    model, inputs, labels, _ = trained
    with pytest.raises(ValueError, match="train_labels has 10 entries"):
        probe_model(model, inputs[:20], labels[:10], inputs[20:30])
    with pytest.raises(ValueError, match="k=30 is too large"):
        probe_model(model, inputs[:20], labels[:20], inputs[20:30])
    with pytest.raises(ValueError, match="train_labels contains class 7"):
        probe_model(model, inputs[:40], np.full(40, 7), inputs[40:50], k=3)
    with pytest.raises(ValueError, match="no module named"):
        probe_model(model, inputs[:40], labels[:40], inputs[40:50], k=3, probes=["input", "conv1"])


def test_divergence_raises_a_clear_error():
    inputs, labels = torch.randn(64, 1, 4, 4) * 100, torch.randint(0, 3, (64,))
    model = make_model("mlp", 3, 1, 4, width=64, seed=0)
    with pytest.raises(FloatingPointError, match="training diverged.*lower TrainConfig.lr"):
        train_model(model, inputs, labels, TrainConfig(epochs=5, batch_size=16, lr=1e6, warmup_fraction=0.0),
                    seed=0, device="cpu", progress=False)
