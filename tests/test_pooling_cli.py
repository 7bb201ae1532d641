"""The GCP family's spelling in sweeps, training options and records (fast, no training)."""
from __future__ import annotations

import pytest

from gcpbench.errors import GcpbenchError
from gcpbench.pooling import NORMS
from gcpbench.sweep import paper_spec, parse_spec


def test_grid_gcp_norms_expand_for_gcp_heads_only() -> None:
    spec = parse_spec({"models": ["resnet18"], "heads": ["gap", "gcp"], "gcp_norms": ["isqrt", "mpn", "cbp"],
                       "train": {"gcp_options": {"power": 0.3}}}, "x")
    names = [r.train["arch"] for r in spec.runs]
    assert names == ["resnet18_gap", "resnet18_gcp", "resnet18_gcp_mpn", "resnet18_gcp_cbp"]
    assert all(r.name.endswith("_power0.3") for r in spec.runs)
    with pytest.raises(GcpbenchError, match="unknown GCP normalisation 'svd'"):
        parse_spec({"models": ["resnet18"], "heads": ["gcp"], "gcp_norms": ["svd"]}, "x")


def test_paper_normalisations_sweep_is_gap_and_every_method_under_two_schedules() -> None:
    spec = paper_spec(["normalisations"])
    models = {r.train["arch"] for r in spec.runs}
    assert models == {"resnet18_gap"} | {"resnet18_gcp" if n == "isqrt" else f"resnet18_gcp_{n}" for n in NORMS}
    assert {r.train["schedule"] for r in spec.runs} == {"LRnorm", "LRfast"} and len(spec.runs) == 2 * (len(NORMS) + 1)
    assert all(r.train["landscape_every"] > 0 and r.evaluations == ["eval-c", "eval-p"] for r in spec.runs)


def test_train_config_records_method_and_options_and_resume_compares_them() -> None:
    from gcpbench.records import TrainConfig
    from gcpbench.train.config import TrainOptions, requested_config

    stored = TrainConfig(model="resnet18_gcp_mpn", arch="resnet18", head="gcp", gcp_dim=256, gcp_norm="mpn",
                         gcp_options={"power": 0.5, "eps": 1e-12}, schedule="LRnorm")
    same = requested_config(stored, TrainOptions(gcp_norm="MPN", gcp_options={"power": 0.5}))
    assert same == stored
    other = requested_config(stored, TrainOptions(gcp_options={"power": 0.3}))
    assert other != stored and stored.differences(other) == ["gcp_options"]
    assert requested_config(stored, TrainOptions(gcp_norm="log")).differences(stored) == ["gcp_norm"]


def test_result_identity_carries_non_default_methods_only(tmp_path) -> None:
    from gcpbench.identity import Producer, ResultIdentity, gcp_identity

    assert gcp_identity("resnet18_gcp", None) is None and gcp_identity("resnet18_gap", None) is None
    assert gcp_identity("resnet18_gcp", {"iterations": 3}) == {"norm": "isqrt", "iterations": 3}
    assert gcp_identity("resnet18_gcp_cbp", {"proj_dim": 64}) == {"norm": "cbp", "proj_dim": 64, "seed": 1}
    path = tmp_path / "w.pt"
    path.write_bytes(b"x")
    plain = ResultIdentity(Producer.of(path, "resnet18_gcp"), None).as_dict()
    assert "gcp" not in plain  # default iSQRT-COV: the identity (and its key) of earlier versions
    mpn = ResultIdentity(Producer.of(path, "resnet18_gcp_mpn", {"gcp_options": {"power": 0.3}}), None)
    assert mpn.as_dict()["gcp"] == {"norm": "mpn", "power": 0.3, "eps": 1e-12}
    assert ResultIdentity.from_dict(mpn.as_dict()).key == mpn.key


def test_cli_refuses_contradicting_norm_in_one_line(run_cli, tmp_path) -> None:
    code, _, err = run_cli("train", "resnet18_gcp_mpn", "--gcp-norm", "log", "--out", str(tmp_path / "r"))
    assert code == 2 and "means --gcp-norm mpn, but --gcp-norm log was given" in err and "Traceback" not in err
    code, _, err = run_cli("train", "resnet18", "--head", "gcp", "--gcp-norm", "log", "--gcp-power", "0.3",
                           "--out", str(tmp_path / "s"))
    assert code == 2 and "no option 'power'" in err


def test_sweep_gcp_norm_selects_gap_and_that_method() -> None:
    from gcpbench.sweep.sweep import select_norms

    spec = select_norms(paper_spec(["normalisations"]), ["MPN"])
    assert {r.train["arch"] for r in spec.runs} == {"resnet18_gap", "resnet18_gcp_mpn"}
    with pytest.raises(GcpbenchError, match="no run"):
        select_norms(parse_spec({"models": ["resnet18"], "heads": ["gcp"], "gcp_norms": ["mpn"]}, "x"), ["cbp"])


def test_landscape_labels_name_the_normalisation(tmp_path) -> None:
    from gcpbench.landscape.plot import run_label
    from gcpbench.records import TrainConfig
    from gcpbench.runs import RunDir

    labels = []
    for norm in ("isqrt", "mpn"):
        run = RunDir(tmp_path / norm)
        run.path.mkdir()
        run.write_config(TrainConfig(model=f"resnet18_gcp_{norm}", arch="resnet18", head="gcp", gcp_dim=256,
                                     gcp_norm=norm, schedule="LRnorm"))
        labels.append(run_label(run))
    assert labels == ["resnet18 GCP LRnorm", "resnet18 GCP mpn LRnorm"]
