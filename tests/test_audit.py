"""``pdlib audit``: inputs, outputs, refusals and resuming, on tiny ensembles of 16x16 PNGs."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import pdlib
from pdlib.__main__ import main
from pdlib.audit import AuditInputError, audit

CLASSES = ("circle", "square", "stripe")
TINY = {"arch": "mlp", "n_models": 2, "epochs": 1, "width": 2, "quiet": True}  # seconds per audit
TINY_ARGS = ["--arch", "mlp", "--models", "2", "--epochs", "1", "--width", "2", "--quiet"]
ROOT = Path(__file__).resolve().parents[1]


def make_images(
    n_per_class: int = 50, size: int = 16, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(n, size, size) uint8 images of three easy patterns, and their labels (n,)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(CLASSES)), n_per_class)
    images = rng.integers(0, 60, (len(labels), size, size))
    images[labels == 0, size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] += 150
    images[labels == 1, :, : size // 2] += 150
    images[labels == 2, ::2] += 150
    return images.astype(np.uint8), labels


def write_folder(root: Path, n_per_class: int = 50, classes=CLASSES) -> list[str]:
    """An ImageFolder of PNGs; returns the relative paths in torchvision's order."""
    images, labels = make_images(n_per_class)
    paths = []
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        if label >= len(classes):
            continue
        path = root / classes[label] / f"{i:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(path)
        paths.append(path.relative_to(root).as_posix())
    return sorted(paths)


def outputs(out: Path) -> set:
    return {
        name for name in ("scores.csv", "scores.parquet", "report.html") if (out / name).exists()
    }


def artifact_times(out: Path) -> dict:
    return {
        p.name: p.stat().st_mtime_ns
        for p in (out / "cache").glob("runs-*/*")
        if not p.name.startswith(".")
    }


@pytest.fixture(scope="module")
def folder_audit(tmp_path_factory):
    """One finished audit of an ImageFolder, shared by the tests that only read it."""
    root = tmp_path_factory.mktemp("images")
    paths = write_folder(root)
    before = os.environ.get("PDLIB_CACHE")
    out = root.parent / f"{root.name}-audit"
    table = audit(root, out=out, **TINY)
    assert os.environ.get("PDLIB_CACHE") == before  # the caller's run cache is restored
    return root, out, paths, table


def test_image_folder_audit_writes_scores_in_input_order(folder_audit):
    root, out, paths, table = folder_audit
    scores = pd.read_csv(out / "scores.csv", keep_default_na=False)
    assert scores["path"].tolist() == paths == table["path"].tolist()
    assert scores["index"].tolist() == list(range(len(paths)))
    assert (scores["given label"] == [p.split("/")[0] for p in paths]).all()
    for column in (
        "consensus class",
        "C*",
        "Ĉ",
        "PD_train",
        "PD_val",
        "iteration learned",
        "output margin",
        "AUM",
        "training loss",
        "difficulty type",
        "distance to corner",
        "suspicion",
        "ranking score",
        "held out",
        "trained on",
    ):
        assert column in scores.columns, column
    assert ((scores["held out"] + scores["trained on"]) == 2).all()
    parquet = pd.read_parquet(out / "scores.parquet")
    assert parquet["path"].tolist() == paths and list(parquet.columns) == list(scores.columns)


def test_report_is_self_contained(folder_audit):
    page = (folder_audit[1] / "report.html").read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page)
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", page) and "@import" not in page
    sources = re.findall(r"src='([^']*)'", page)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    headings = ("suspects", "prediction-depth plane", "Difficulty types", "Provenance")
    positions = [page.find(f"{heading}</h2>") for heading in headings]
    assert min(positions) > 0 and positions == sorted(positions)  # the suspects lead


def test_report_suspects_follow_the_ranking_score_with_their_reasons(folder_audit):
    out, scores = folder_audit[1], folder_audit[3]
    page = (out / "report.html").read_text(encoding="utf-8")
    section = page[page.find("suspects</h2>") : page.find("prediction-depth plane</h2>")]
    rows = re.findall(r"<tr><td class='num'>(\d+)</td>.*?</tr>", section)
    assert rows and [int(r) for r in rows] == list(range(1, len(rows) + 1))
    top = scores.sort_values("ranking score", ascending=False, kind="stable").iloc[0]
    first_row = section[section.find("<td class='num'>1</td>") :]
    assert f"<td class='num'>{top['ranking score']:.3f}</td>" in first_row.split("</tr>")[0]
    assert "AUM " in first_row and "PD_train " in first_row and "(top " in first_row
    for column in ("difficulty type", "consensus class", "signals behind its rank"):
        assert f"<th>{column}</th>" in section


def test_config_holds_settings_and_fingerprint(folder_audit):
    config = json.loads((folder_audit[1] / "config.json").read_text())
    assert config["dataset"].startswith("file:")
    assert (
        config["settings"] | {"mode": "grayscale", "image_size": 16, "n_models": 2}
        == config["settings"]
    )
    assert config["class_names"] == list(CLASSES)


def test_a_different_audit_in_the_same_folder_is_refused(folder_audit):
    root, out, _, _ = folder_audit
    before = {name: (out / name).stat().st_mtime_ns for name in outputs(out)}
    with pytest.raises(AuditInputError, match="different audit.*epochs"):
        audit(root, out=out, **{**TINY, "epochs": 2})
    other = root.parent / "other-images"
    write_folder(other, n_per_class=20)
    with pytest.raises(AuditInputError, match="other data"):
        audit(other, out=out, **TINY)
    assert {name: (out / name).stat().st_mtime_ns for name in outputs(out)} == before
    assert len(list((out / "cache" / "data").glob("*.npz"))) == 1


def test_pdlib_audit_stays_callable_after_importing_the_module():
    assert callable(pdlib.audit) and pdlib.audit.__name__ in ("audit", "pdlib.audit")


def test_csv_input_keeps_the_csv_order(tmp_path):
    images = tmp_path / "images"
    paths = write_folder(images)
    order = np.random.default_rng(1).permutation(len(paths))
    rows = [
        (paths[i] if k % 2 else str(images / paths[i]), paths[i].split("/")[0])
        for k, i in enumerate(order)
    ]
    pd.DataFrame(rows, columns=["path", "label"]).to_csv(images / "labels.csv", index=False)
    table = audit(images / "labels.csv", out=tmp_path / "out", **TINY)
    scores = pd.read_csv(tmp_path / "out" / "scores.csv", keep_default_na=False)
    assert scores["path"].tolist() == [r[0] for r in rows] == table["path"].tolist()
    assert scores["given label"].tolist() == [r[1] for r in rows]


def test_npz_input_rgb_floats_with_class_names(tmp_path):
    grey, labels = make_images()
    images = np.stack([grey, grey[:, ::-1], grey], axis=-1) / 255.0  # (n, H, W, 3) floats: RGB
    np.savez(tmp_path / "data.npz", images=images, labels=labels, class_names=np.array(CLASSES))
    table = audit(tmp_path / "data.npz", out=tmp_path / "out", **TINY)
    assert table["index"].tolist() == list(range(len(labels))) and "path" not in table.columns
    assert table["given label"].tolist() == [CLASSES[c] for c in labels]
    assert json.loads((tmp_path / "out" / "config.json").read_text())["settings"]["mode"] == "rgb"


def test_dataset_name_with_a_stratified_subset(tmp_path):
    from pdlib.sampling import stratified_subset

    table = audit("digits", out=tmp_path / "out", n_images=120, **TINY)
    digits = pdlib.load_dataset("digits")
    expected = stratified_subset(digits.labels.numpy(), 120, 0)
    assert table["index"].tolist() == expected.tolist()
    assert table["given label"].tolist() == [
        digits.class_names[c] for c in digits.labels.numpy()[expected]
    ]


def _truncated(root):
    path = root / "square" / sorted(os.listdir(root / "square"))[3]
    path.write_bytes(path.read_bytes()[:80])
    return path.name


def _garbage(root):
    (root / "stripe" / "zz-broken.png").write_bytes(b"not a png at all")
    return "zz-broken.png"


def _csv_without(column):
    def make(root):
        paths = write_folder(root)
        pd.DataFrame(
            {
                "path" if column == "label" else "file": paths,
                "label" if column == "path" else "class": [p.split("/")[0] for p in paths],
            }
        ).to_csv(root / "labels.csv", index=False)
        return f"no {column} column"

    return make


def _npz_lengths(root):
    images, labels = make_images()
    np.savez(root / "data.npz", images=images, labels=labels[:-1])
    return "every image needs one label"


# name: (writes the input into root and returns a fragment of the message, path to audit, options)
BAD_INPUTS = {
    "truncated PNG": (_truncated, "", {}),
    "unreadable file": (_garbage, "", {}),
    "CSV without label": (_csv_without("label"), "labels.csv", {}),
    "CSV without path": (_csv_without("path"), "labels.csv", {}),
    "label outside --classes": (
        lambda root: "not in --classes",
        "",
        {"classes": ["circle", "square"]},
    ),
    "single class": (lambda root: "single class", "", {}),
    "npz lengths": (_npz_lengths, "data.npz", {}),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_is_refused_before_anything_is_written(tmp_path, case):
    make, name, options = BAD_INPUTS[case]
    root = tmp_path / "data"
    write_folder(root, n_per_class=50, classes=("circle",) if case == "single class" else CLASSES)
    fragment = make(root)
    out = tmp_path / "out"
    with pytest.raises(AuditInputError, match=re.escape(fragment)):
        audit(root / name if name else root, out=out, **{**TINY, **options})
    assert not out.exists()


@pytest.mark.parametrize("n_per_class, rule", [(10, "k + 1 = 31"), (30, "at least 2 images")])
def test_too_few_images_states_the_rule(tmp_path, n_per_class, rule):
    root = tmp_path / "data"
    write_folder(root, n_per_class=n_per_class)
    if n_per_class == 30:  # plenty of images, but one class has a single one
        for path in sorted((root / "circle").iterdir())[1:]:
            path.unlink()
    with pytest.raises(AuditInputError, match=re.escape(rule)):
        audit(root, out=tmp_path / "out", **TINY)
    assert not (tmp_path / "out").exists()


def test_cli_prints_bad_input_and_exits_2(tmp_path, capsys):
    root = tmp_path / "data"
    write_folder(root, n_per_class=50, classes=("circle",))
    assert main(["audit", str(root), "--out", str(tmp_path / "out"), *TINY_ARGS]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and "single class" in error and "Traceback" not in error


def test_download_reports_missing_datasets_with_status_1(monkeypatch, capsys):
    import pdlib.data

    def offline(names, **kwargs):
        raise pdlib.DatasetNotFoundError(f"downloading {names[0]} failed: offline")

    monkeypatch.setattr(pdlib.data, "download_datasets", offline)
    assert main(["download"]) == 1
    assert "downloading fashion_mnist failed" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit:
        main(["download", "imagenet"])
    assert exit.value.code == 2


def test_resume_keeps_finished_networks(tmp_path):
    root = tmp_path / "data"
    write_folder(root)
    out = tmp_path / "out"
    audit(root, out=out, **TINY)
    times = artifact_times(out)
    assert len([name for name in times if name.endswith(".json")]) == 2
    second = [
        p
        for p in (out / "cache").glob("runs-*/*.json")
        if json.loads(p.read_text())["config"]["seed"] == 1
    ]
    for path in second[0].parent.glob(
        second[0].stem + ".*"
    ):  # as if killed before network 1 was saved
        path.unlink()
    table = audit(root, out=out, resume=True, quiet=True)  # settings from config.json
    after = artifact_times(out)
    assert set(after) == set(times)  # network 1 saved again, under the same names
    assert {k: t for k, t in after.items() if not k.startswith(second[0].stem)} == {
        k: t for k, t in times.items() if not k.startswith(second[0].stem)
    }  # network 0 not recomputed
    assert len(table) == 150 and ((table["held out"] + table["trained on"]) == 2).all()
    assert "1 reused" in (out / "report.html").read_text(encoding="utf-8")


@pytest.mark.slow
def test_kill_9_during_training_then_resume(tmp_path):
    root = tmp_path / "data"
    write_folder(root)
    out = tmp_path / "out"
    command = [
        sys.executable,
        "-m",
        "pdlib",
        "audit",
        str(root),
        "--out",
        str(out),
        "--arch",
        "mlp",
        "--models",
        "3",
        "--epochs",
        "5",
        "--width",
        "8",
        "--quiet",
    ]
    process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, "PDLIB_QUIET": "1"})
    deadline = time.monotonic() + 300
    while (
        not list((out / "cache").glob("runs-*/*.json"))
        and process.poll() is None
        and time.monotonic() < deadline
    ):
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished = list((out / "cache").glob("runs-*/*.json"))
    assert finished and not (out / "scores.csv").exists(), (
        "killed too late: make the networks slower"
    )
    first = {p: p.stat().st_mtime_ns for p in finished[0].parent.glob(finished[0].stem + ".*")}
    assert main(["audit", str(root), "--out", str(out), "--resume", "--quiet"]) == 0
    assert {p: p.stat().st_mtime_ns for p in first} == first
    scores = pd.read_csv(out / "scores.csv", keep_default_na=False)
    assert len(scores) == 150 and ((scores["held out"] + scores["trained on"]) == 3).all()


def test_image_folder_scan_follows_imagefolder_and_skips_hidden_entries(tmp_path):
    from PIL import Image

    from pdlib.audit import images

    layout = [
        "b/2.png",
        "b/10.png",
        "a/x.jpg",
        "a/nested/y.png",
        "a/.hidden.png",
        "a/.cache/z.png",
        "a/notes.txt",
        ".ipynb_checkpoints/w.png",
    ]
    for name in layout:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name.endswith(".txt"):
            path.write_text("not an image")
        else:
            Image.new("L", (4, 4)).save(path)
    files, raw, classes, paths, index = images._image_folder(tmp_path)
    assert classes == ["a", "b"]  # the hidden folder is no class
    # torchvision's ImageFolder order: by class, then by folder (a before a/nested), then name
    assert paths == ["a/x.jpg", "a/nested/y.png", "b/10.png", "b/2.png"]
    assert raw == ["a", "a", "b", "b"] and index.tolist() == [0, 1, 2, 3]
    assert all(f.is_absolute() or f.exists() for f in files)
