"""pdlib.experiments: the configs behind each figure at a profile's scale, label-noise runs, the
0-Hinge
trio, margins from stored weights, task availability and figure footers."""

import dataclasses

import numpy as np
import pytest

from pdlib import analysis, experiments
from pdlib.data import DatasetNotFoundError
from pdlib.ensembles import ensemble_statistics
from pdlib.profiles import get_profile
from pdlib.training import TrainConfig

PROFILE = get_profile(
    "smoke",
    n_pool=200,
    n_test=40,
    n_checkpoints=3,
    mlp_width=16,
    mlp_train=TrainConfig(epochs=4, batch_size=50, lr=0.05),
)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PDLIB_CACHE", str(tmp_path))


def test_run_and_seed_configs_follow_the_profile():
    config = experiments.run_config(PROFILE, "fashion_mnist_hard", "vgg16", 3, label_noise=0.1)
    assert (config.dataset, config.classes, config.arch, config.seed) == (
        "fashion_mnist",
        (0, 2, 4, 6),
        "vgg16",
        3,
    )
    assert (
        config.width == PROFILE.conv_width
        and config.train == PROFILE.vgg16_train
        and config.label_noise == 0.1
    )
    assert (config.n_pool, config.n_test) == (200, 40)
    assert experiments.run_config(PROFILE, "digits", "mlp", n_pool=50).n_pool == 50
    configs = experiments.seed_configs(PROFILE, "fig2_left", "digits", "mlp")
    assert [c.seed for c in configs] == list(range(PROFILE.setup("fig2_left").n_models))
    assert all(c.holdout_fraction == 0 for c in configs)  # seed runs train on the whole pool
    assert len(experiments.seed_configs(PROFILE, "fig2_left", "digits", "mlp", n_models=5)) == 5


def test_available_and_planned_tasks(monkeypatch, tmp_path):
    monkeypatch.setenv("PDLIB_DATA", str(tmp_path / "empty"))
    monkeypatch.setattr("pdlib.data.DEBIAN_FASHION_MNIST", tmp_path / "no-debian")
    import pdlib.data

    pdlib.data._read.cache_clear()
    try:
        assert experiments.available_tasks(["digits", "cifar10", "svhn"]) == (
            ["digits"],
            ["cifar10", "svhn"],
        )
        found, missing = experiments.plan_tasks(get_profile("laptop"), "fig1_right")
        assert found == ["digits"] and missing == ["fashion_mnist", "fashion_mnist_hard"]
        with pytest.raises(DatasetNotFoundError, match="python -m pdlib download"):
            experiments.plan_tasks(get_profile("paper"), "fig1_right")
    finally:
        pdlib.data._read.cache_clear()


def test_noisy_label_runs_and_their_curves():
    (run,) = experiments.noisy_label_runs(
        PROFILE, "digits", "mlp", 1, noise=0.4, epoch_factor=1, n_checkpoints=4
    )
    pool = ~run["is_test"]
    assert run["corrupted"][pool].sum() == round(0.4 * 200) and not run["corrupted"][~pool].any()
    assert (run["fit_labels"][run["corrupted"]] != run["labels"][run["corrupted"]]).all()
    assert run["checkpoint_predictions"].shape[0] == 5 and run["in_train"][pool].all()
    assert len(run["loss_history"]) == PROFILE.mlp_train.epochs
    training, inference = analysis.noise_curves(run)
    clean, new, original, test = analysis.NOISE_SETS
    corrupted, history = run["corrupted"], run["checkpoint_predictions"]
    np.testing.assert_allclose(
        training[new], (history[:, corrupted] == run["fit_labels"][corrupted]).mean(1)
    )
    assert (inference[new] + inference[original] <= 1 + 1e-12).all()
    assert training[clean][-1] == pytest.approx(
        (run["network_predictions"][pool & ~corrupted] == run["labels"][pool & ~corrupted]).mean()
    )
    # every seed sees the same corrupted labels
    two = experiments.noisy_label_runs(
        PROFILE, "digits", "mlp", 2, noise=0.4, epoch_factor=1, n_checkpoints=4
    )
    np.testing.assert_array_equal(two[0]["fit_labels"], two[1]["fit_labels"])
    assert not np.array_equal(two[0]["logits"], two[1]["logits"])


def test_zero_hinge_configs():
    hinge = experiments.zero_hinge_configs(PROFILE, "digits", "mlp", n_train=50, lr=0.001)
    assert list(hinge) == [
        "untrained",
        "0-Hinge",
        "cross-entropy",
        "cross-entropy, 0-Hinge regime",
        "0-Hinge, default head",
    ]
    assert len({c.seed for c in hinge.values()}) == 1 and all(
        c.n_pool == 50 for c in hinge.values()
    )
    # the same initialisation, head included, for all but the default-head control
    scaled = [name for name, c in hinge.items() if c.head_init_scale == 1e-4]
    assert scaled == list(hinge)[:4] and hinge["0-Hinge, default head"].head_init_scale == 1.0
    assert hinge["0-Hinge, default head"].train == hinge["0-Hinge"].train
    regime = hinge["cross-entropy, 0-Hinge regime"].train
    assert regime.loss == "cross_entropy" and not regime.stop_at_zero_loss
    assert dataclasses.replace(regime, loss="zero_hinge", stop_at_zero_loss=True) == (
        hinge["0-Hinge"].train
    )
    zero = hinge["0-Hinge"].train
    assert zero.loss == "zero_hinge" and zero.batch_size == 50 and zero.stop_at_zero_loss
    assert zero.schedule == "constant" and zero.weight_decay == 0 and zero.lr == 0.001
    assert zero.epochs == PROFILE.hinge_steps and zero.micro_batch == PROFILE.hinge_micro_batch
    assert hinge["untrained"].train.epochs == 0
    assert hinge["cross-entropy"].train.epochs == 2 * PROFILE.mlp_train.epochs
    assert hinge["cross-entropy"].train.loss == "cross_entropy"
    assert (
        experiments.zero_hinge_configs(PROFILE, "digits", "mlp", n_train=50)["0-Hinge"].train.lr
        == PROFILE.hinge_lr
    )


def test_margin_statistics_from_stored_weights():
    configs = experiments.seed_configs(PROFILE, "fig6_margins", "digits", "mlp", n_models=2)
    configs = [
        dataclasses.replace(c, train=dataclasses.replace(c.train, epochs=3)) for c in configs
    ]
    margins = experiments.margin_statistics(configs)
    assert (
        margins["depth"].shape
        == margins["output_margin"].shape
        == margins["input_margin"].shape
        == (2, 40)
    )
    assert (margins["output_margin"] >= 0).all() and (margins["input_margin"] >= 0).all()
    assert margins["labels"].shape == (40,) and margins["n_probes"] == 9
    assert margins["undecided"].shape == (2, 40) and margins["undecided"].dtype == bool
    # an undecided point sits at the softmax probe's index
    assert (margins["depth"][margins["undecided"]] == margins["n_probes"] - 1).all()
    again = experiments.margin_statistics(configs)  # the input margins are cached beside the runs
    np.testing.assert_array_equal(again["input_margin"], margins["input_margin"])


def test_figure_footer():
    footer = experiments.figure_footer(PROFILE, "fig3")
    assert footer == "profile smoke · fashion_mnist · mlp · 10 networks on 90:10 splits"
    assert (
        experiments.figure_footer(PROFILE, "fig6_hinge", task="digits", extra="lr 1e-3")
        == "profile smoke · digits · mlp · 1 network · lr 1e-3"
    )


def test_ensemble_and_seed_runs_share_the_cache():
    tiny = get_profile(
        "smoke",
        n_pool=100,
        n_test=20,
        n_checkpoints=2,
        mlp_width=8,
        mlp_train=TrainConfig(epochs=2, batch_size=30, lr=0.05),
    )
    tiny = dataclasses.replace(tiny, first_epoch_checkpoints=0)  # get_profile keeps presets at 0
    ensemble = experiments.ensemble(tiny, "fig3", "digits", "mlp", n_models=2)
    template = ensemble.configs[0]
    assert (
        template.holdout_fraction == 0.1
        and template.train.n_checkpoints == 2
        and len(ensemble) == 2
    )
    runs = list(ensemble.artifacts())
    assert all(
        run.weights_path is not None for run in runs
    )  # the first KEEP_WEIGHTS models keep them
    assert runs[0]["checkpoint_predictions"].shape[0] == 3
    stats = ensemble_statistics(
        experiments.ensemble(tiny, "fig3", "digits", "mlp", n_models=2)
    )  # cached: nothing retrained
    assert stats["n_models"] == 2 and stats["held_out"].shape == (2, 100)
    assert (
        experiments.ensemble(tiny, "fig3", "digits", "mlp", n_models=1).configs
        == ensemble.configs[:1]
    )
    folds = experiments.ensemble(tiny, "fig3", "digits", "mlp", n_models=2, holdout_folds=2)
    held = [~run["in_train"][~run["is_test"]] for run in folds.artifacts()]
    assert (held[0] ^ held[1]).all()  # two folds: each point held out by exactly one model
    seeds = experiments.seed_runs(tiny, "fig2_left", "digits", "mlp", n_models=2)
    assert [run.meta["config"]["seed"] for run in seeds] == [0, 1]
    assert all(
        run.weights_path is not None and run["in_train"][~run["is_test"]].all() for run in seeds
    )
