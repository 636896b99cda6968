"""The conventions matrix (``python -m optproof.docgen.conventions``): what it audits, what it
stores, what ``--check`` compares, and that the committed matrix is a real run."""

from __future__ import annotations

import json
from pathlib import Path

from optproof.docgen.conventions import (AUDITS_DIR, DATA_PATH, FRAMEWORKS, Framework, collect,
                                         compare, conventions_page, data_files)

ROOT = Path(__file__).resolve().parents[1]


def test_the_stored_matrix_was_made_with_every_framework_installed():
    data = json.loads((ROOT / DATA_PATH).read_text())
    from optproof.docgen import lowbit
    # the low-bit libraries' rows (and versions) come from the guide's audits (lowbit.json)
    assert set(data["versions"]) == {f.name for f in FRAMEWORKS} | {t.framework for t in
                                                                    lowbit.TARGETS}
    assert all(data["versions"].values()), data["versions"]
    assert not [r for r in data.get("others", []) if r["verdict"] == "not importable"]
    for fw in FRAMEWORKS:
        rows = [r for r in data["rows"] if r["framework"] == fw.name and r.get("group")]
        assert {r["dtype"] for r in rows} == {"float32", "float64"}, fw.name
        assert any(r["args"] for r in rows) or fw.name == "Keras", fw.name
        for r in rows:  # every cell links to its audit's JSON, committed beside it
            document = json.loads((ROOT / "docs" / r["json"]).read_text())
            assert document["target"] == r["target"] and document["dtype"] == r["dtype"]
            assert document["verdict"] == r["verdict"]


def _small_run():
    torch_only = (Framework("torch.optim", "torch", "torch.optim", lambda m: ["SGD", "Rprop"]),)
    return collect(frameworks=torch_only, dtypes=("float64",), steps=1)


def test_collect_audits_what_has_a_rule_and_lists_the_rest_with_the_reason():
    data = _small_run()
    (row,) = data["rows"]
    assert row["target"] == "torch.optim.SGD" and row["verdict"] == "conformant"
    assert row["json"] == "data/audits/torch.optim/SGD-float64.json"
    (other,) = data["others"]
    assert other["target"] == "torch.optim.Rprop" and other["verdict"] == "not audited"
    assert "no registered rule" in other["diagnosis"][0]
    files = data_files(data)
    assert set(files) == {DATA_PATH, f"{AUDITS_DIR}/torch.optim/SGD-float64.json"}
    assert "audits" not in json.loads(files[DATA_PATH])
    page = conventions_page(json.loads(files[DATA_PATH]), lambda name: f"`{name}`")
    assert "[JSON](data/audits/torch.optim/SGD-float64.json)" in page
    assert "| `torch.optim.Rprop` | torch.optim | not audited: no registered rule" in page


def test_check_reports_a_changed_claim_and_nothing_else():
    stored = {"rows": [{"framework": "x", "target": "x.A", "dtype": "float32", "args": {},
                        "expected": "adam", "follows": "adam", "verdict": "conformant",
                        "conventions": {}, "defaults": "lr = 0.001", "elapsed_s": 1.0}]}
    fresh = json.loads(json.dumps(stored))
    fresh["rows"][0]["elapsed_s"] = 9.0  # times are not claims
    assert compare(stored, fresh) == []
    fresh["rows"][0]["verdict"] = "deviation"
    (problem,) = compare(stored, fresh)
    assert "verdict 'conformant' → 'deviation'" in problem
