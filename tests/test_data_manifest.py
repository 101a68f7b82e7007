"""The manifest: every dataset of DATA.md with honest checksums, parsing errors, user manifests,
and the real test files read through their manifest entries."""

from __future__ import annotations

import pytest

from transpert._errors import TranspertInputError
from transpert.data import open_cells, read_cells
from transpert.data.manifest import DEFAULT_MANIFEST, load_manifest, parse_manifest

# Every dataset of ../shared/DATA.md, with the checksum DATA.md gives (None = unverified there).
DATA_MD = {
    "vcc_h1_train": ("sha256", "a09977104fefb622368ca74b50c9d3c1e891733e6c83db07acfca49b0219c02b", 15482497461),
    "vcc_h1_train_pert_counts": ("sha256", "633d202be221418bdbac16efd8cb169666de0ef6469a4e9bfdfb64666ea81a89", 2824),
    "vcc_gene_names": ("sha256", "e29ff3512b4c2440759bfb2a34577049b2f49df786b3e19c2a91b565de47b38e", 116023),
    "vcc_h1_validation": (None, None, 6928967541),
    "vcc_h1_validation_pert_counts": (None, None, None),
    "vcc_h1_test": (None, None, 11950739168),
    "replogle_k562_essential": ("md5", "4f1122ce1c7f13299a68df6459a266d3", 10661879995),
    "replogle_k562_essential_pseudobulk": ("md5", "8321d5d3ffc99db2a5c71edca4189735", 79766954),
    "replogle_k562_gwps": (None, None, 65830941948),
    "replogle_k562_gwps_pseudobulk": (None, None, None),
    "replogle_rpe1": (None, None, None),
    "replogle_rpe1_pseudobulk": (None, None, None),
    "nadig_hepg2": (None, None, None),
    "nadig_jurkat": (None, None, None),
}


def test_packaged_manifest_lists_every_dataset_honestly():
    manifest = load_manifest(include_default=True)
    assert DEFAULT_MANIFEST.resolve().read_bytes() == (DEFAULT_MANIFEST.parents[2] / "data_manifest.yaml").read_bytes()
    for name, (algo, digest, size) in DATA_MD.items():
        entry = manifest.get(name)
        assert entry.url.startswith("https://"), name
        assert entry.size == size, name
        if digest is None:
            assert entry.checksum is None and entry.verified is False, name
        else:
            assert entry.checksum == (algo, digest) and entry.verified is True, name
        if entry.kind == "cells":
            schema = entry.schema_obj()
            assert schema.counts is True and schema.control_label == "non-targeting", name
    assert manifest.get("replogle_k562_essential").schema_obj().pert_col == "gene"
    assert manifest.get("replogle_k562_essential").cache_path("/c").name == "replogle_k562_essential_raw_singlecell.h5ad"
    assert manifest.get("replogle_k562_gwps").schema_obj().x_format == "dense"
    assert manifest.get("vcc_h1_train").cache_path("/c").as_posix() == "/c/vcc_h1_train/adata_Training.h5ad"


def test_manifest_errors_name_file_dataset_and_field(tmp_path):
    bad = {
        "x:\n  kind: cells\n": "needs a `url` or a local `path`",
        "x:\n  url: http://h/f\n  sha256: abc\n": "sha256 must be a hex digest",
        "x:\n  url: http://h/f\n  verified: true\n": "verified: true needs a sha256 or md5",
        "x:\n  url: http://h/f\n  colour: red\n": r"unknown field\(s\) \['colour'\]",
        "x:\n  url: http://h/f\n  size: -3\n": "size must be a byte count",
        "x:\n  url: http://h/f\n  kind: movie\n": "kind must be one of",
        "x:\n  url: http://h/f\n  schema: {pert_column: a}\n": r"unknown schema field\(s\) \['pert_column'\]",
        "x:\n  url: http://h/f\n  schema: {cell_filter: 'a > 3'}\n": "each clause",
    }
    for body, message in bad.items():
        path = tmp_path / "m.yaml"
        path.write_text("datasets:\n" + "\n".join("  " + line for line in body.splitlines()) + "\n")
        with pytest.raises(TranspertInputError, match=f"m.yaml: dataset 'x': .*{message}"):
            load_manifest(path, include_default=False)
    with pytest.raises(TranspertInputError, match="not valid YAML"):
        parse_manifest("datasets: [unclosed")
    with pytest.raises(TranspertInputError, match="no dataset 'nope'.*known: .*vcc_h1_train"):
        load_manifest().get("nope")


def test_user_manifest_adds_local_files(tmp_path, monkeypatch, test_data_dir):
    # a user's own file, relative to their manifest, merged over the packaged manifest
    (tmp_path / "sub").mkdir()
    src = test_data_dir / "papalexi2021_thp1_lowmoi_subset.h5ad"
    (tmp_path / "sub" / "mine.h5ad").write_bytes(src.read_bytes())
    (tmp_path / "mine.yaml").write_text(
        "datasets:\n"
        "  my_thp1_rep1:\n"
        "    path: sub/mine.h5ad\n"
        "    cell_line: THP-1\n"
        "    schema:\n"
        "      pert_col: target\n"
        "      control_label: non-targeting\n"
        "      cell_filter: {bio_rep: rep_1}\n"
        "  vcc_h1_train:\n"  # a user entry replaces a packaged one of the same name
        "    path: sub/mine.h5ad\n"
    )
    manifest = load_manifest(tmp_path / "mine.yaml")
    assert "replogle_rpe1" in manifest and manifest.get("vcc_h1_train").is_local
    assert manifest.get("my_thp1_rep1").path == tmp_path / "sub" / "mine.h5ad"
    monkeypatch.setenv("TRANSPERT_MANIFEST", str(tmp_path / "mine.yaml"))
    with open_cells("my_thp1_rep1") as cells:
        reps = cells.obs["bio_rep"].astype(str).unique().tolist()
        assert reps == ["rep_1"] and 0 < cells.n_obs < 20729


def test_missing_fetch_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSPERT_CACHE", str(tmp_path))
    with pytest.raises(TranspertInputError, match="not in the cache.*transpert data fetch vcc_h1_train"):
        open_cells("vcc_h1_train")


@pytest.mark.parametrize("name, condition, n_cells, n_controls",
                         [("datlinger_jurkat_stimulated", "stimulated", 3859, 140),
                          ("datlinger_jurkat_unstimulated", "unstimulated", 3641, 60)])
def test_real_datlinger_by_manifest_name(name, condition, n_cells, n_controls):
    with open_cells(name) as cells:
        assert cells.name == name and cells.shape == (n_cells, 2000)
        assert (cells.obs["condition"] == condition).all()
        assert (cells.obs["target_gene"] == "non-targeting").sum() == n_controls
        assert "control" not in set(cells.obs["target_gene"])
        assert cells.scale == "counts"
        stats = cells.normalization()
    assert stats["input_scale"] == "counts" and stats["target_sum"] > 0


def test_both_datlinger_contexts_share_every_target():
    stim = read_cells("datlinger_jurkat_stimulated")
    unstim = read_cells("datlinger_jurkat_unstimulated")
    assert set(stim.obs["target_gene"]) == set(unstim.obs["target_gene"])
    assert len(set(stim.obs_names) & set(unstim.obs_names)) == 0
    assert stim.n_obs + unstim.n_obs == 7500


def test_real_papalexi_by_manifest_name(test_data_dir):
    adata = read_cells("papalexi_thp1")
    assert adata.shape == (20729, 299)
    assert (adata.obs["target_gene"] == "non-targeting").sum() == 2386
    direct = read_cells(test_data_dir / "papalexi2021_thp1_lowmoi_subset.h5ad",
                        schema={"pert_col": "target"})
    assert (adata.X != direct.X).nnz == 0
    assert adata.uns["transpert_source"]["name"] == "papalexi_thp1"
