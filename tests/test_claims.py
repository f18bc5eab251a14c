"""pdlib.claims: the claims, their controls, and the records the discussion reads.

The verdict functions themselves are tested in tests/test_verdicts.py.
"""

import json

import numpy as np
import pytest

from pdlib import claims
from pdlib.claims import CLAIMS, CONTROLS, VERDICTS
from pdlib.verdicts import Judgement


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PDLIB_CACHE", str(tmp_path))
    return tmp_path


def test_record_load_and_claims_table_round_trip(cache):
    judgement = Judgement("partly reproduced", "weaker", "r = -0.5", {"r": np.float64(-0.5)})
    entry = claims.record("margins", judgement, profile="smoke", setting="digits; mlp")
    stored = json.loads((cache / "claims" / "smoke" / "margins.json").read_text())
    assert stored == {**entry, "values": {"r": -0.5}}
    assert stored["verdict"] == "partly reproduced" and stored["measured"] == "r = -0.5"
    assert claims.load("smoke") == {"margins": stored}
    assert claims.load("laptop") == {}  # another profile's records are separate
    assert not list((cache / "claims" / "smoke").glob("*.tmp"))
    table = claims.claims_table("smoke")
    assert len(table) == len(CLAIMS) and list(table.columns) == [
        "claim",
        "paper",
        "criterion",
        "ours",
        "setting",
        "verdict",
        "why",
        "control's verdict",
    ]
    assert table.map(lambda v: bool(str(v).strip())).all().all()  # no empty cell
    assert set(table["verdict"]) <= set(VERDICTS)
    row = table.set_index("claim").loc[[c.statement for c in CLAIMS if c.key == "margins"][0]]
    assert row["verdict"] == "partly reproduced" and row["ours"] == "r = -0.5"
    assert row["why"] == "weaker" and row["control's verdict"] == "not tested"
    missing = table[table["verdict"] == "not tested"]
    assert len(missing) == len(CLAIMS) - 1 and missing["why"].str.contains("--only").all()
    # a record is replaced, not appended
    claims.record("margins", Judgement("reproduced", "", "r = -0.7"), profile="smoke", setting="")
    assert claims.load("smoke")["margins"]["verdict"] == "reproduced"
    from pdlib.analysis import show

    html = show(table, "Claims", index=False, text=True).to_html()
    assert "Claims" in html and "text-align: left" in html


def test_controls_are_recorded_beside_their_claims(cache):
    control = Judgement("not reproduced", "r = 0.01 (fail)", "r = 0.01")
    entry = claims.record_control("margins", control, profile="smoke")
    assert entry["control"] == CONTROLS["margins"] and entry["verdict"] == "not reproduced"
    assert claims.load_controls("smoke") == {"margins": entry}
    assert claims.load("smoke") == {}  # controls are not claims
    table = claims.controls_table("smoke")
    assert len(table) == len(CONTROLS) >= 5
    assert "control (the claim is false on it)" in table.columns
    row = table.set_index("claim").loc[[c.statement for c in CLAIMS if c.key == "margins"][0]]
    assert row["verdict"] == "not reproduced" and row["measured"] == "r = 0.01"
    assert (table["verdict"] == "not tested").sum() == len(CONTROLS) - 1
    claims_row = claims.claims_table("smoke").set_index("claim").loc[row.name]
    assert claims_row["control's verdict"] == "not reproduced"


def test_a_control_that_passes_is_what_the_gate_looks_for(cache):
    claims.record_control("knn_fix", Judgement("partly reproduced", "", ""), profile="smoke")
    table = claims.controls_table("smoke")
    assert table["verdict"].isin(claims.CONTROL_PASSES).sum() == 1


def test_record_rejects_unknown_claims_and_verdicts(cache):
    with pytest.raises(ValueError, match="unknown claim 'flat_earth'"):
        claims.record("flat_earth", Judgement("reproduced", "", ""), profile="smoke", setting="")
    with pytest.raises(ValueError, match="has no control"):
        claims.record_control("depth_ordering", Judgement("reproduced", "", ""), profile="smoke")
    with pytest.raises(ValueError, match="verdict must be one of"):
        Judgement("maybe", "", "")
    assert claims.load("smoke") == {}


def test_every_claim_names_a_chapter_and_a_criterion_and_every_control_a_claim():
    from pdlib.profiles import CHAPTER_FIGURES

    keys = {c.key for c in CLAIMS}
    assert len(keys) == len(CLAIMS) and set(CONTROLS) <= keys and len(CONTROLS) >= 5
    for claim in CLAIMS:
        assert (
            claim.chapter in CHAPTER_FIGURES and claim.statement and claim.paper and claim.criterion
        )
