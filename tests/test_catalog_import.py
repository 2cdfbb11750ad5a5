"""napkin catalog import: a SkyPilot vms.csv into the user price file, used by compare, search,
estimate, the hardware table and the report, each price citing its source and date; hostile
files give one line naming row/column and exit 2; without a file the shipped prices stay."""
from __future__ import annotations

import json
import os

import pytest

from napkin_gui.cli import main
from napkin_gui.core import gpu_catalog as catalog
from napkin_gui.core.compare import compare_hardware
from napkin_gui.core.estimate import estimate
from napkin_gui.core.gpu_catalog import find_gpu, gpu_catalog, shipped_gpu_catalog
from napkin_gui.core.plan import Plan
from napkin_gui.core.search import search
from napkin_gui.core.skypilot_catalog import SKYPILOT_GPU_IDS

# columns in another order than SkyPilot writes them, plus GPUInfo, which napkin does not read
HEADER = "Region,InstanceType,GPUInfo,AcceleratorCount,AcceleratorName,vCPUs,MemoryGiB,SpotPrice,Price,AvailabilityZone"
ROWS = [
    "us-east-1,m5.large,,,,2,8,0.04,0.096,us-east-1a",                          # CPU only
    "us-east-1,p5.48xlarge,H100,8,H100,192,2048,40.0,98.32,us-east-1a",
    "us-west-2,p5.48xlarge,H100,8,H100,192,2048,,90.0,us-west-2a",              # cheapest H100 per GPU: 11.25
    "us-east-1,g5.xlarge,A10G,1,A10G,4,16,0.45,1.006,us-east-1a",
    "us-east-1,g5.12xlarge,A10G,4,A10G,48,192,1.2,5.672,us-east-1b",            # 1.418 per GPU: not the cheapest
    "us-east-1,p2.xlarge,K80,1,K80,4,61,0.3,0.9,us-east-1a",                   # not in napkin's catalog
    "us-east-1,inf1.xlarge,,1,Inferentia,4,8,,0.228,us-east-1a",
    "us-east-1,g4dn.xlarge,T4,0.5,T4,4,16,,0.3,us-east-1a",                     # a fractional share
]
PLAN = Plan(model="llama-3.2-1b", method="lora", batch_size=2, seq_len=1024, gpu="h100-80gb-sxm",
            dataset_tokens=20e6)


def write_csv(folder, rows=ROWS, header=HEADER, name="vms.csv"):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def imported(tmp_path, capsys, config_dir):
    path = write_csv(tmp_path / "aws")
    code, out, err = run(capsys, "catalog", "import", str(path), "--date", "2026-11-30")
    assert code == 0, err
    return out


def test_mapping_targets_are_catalog_cards():
    ids = {g.id for g in shipped_gpu_catalog()}
    assert set(SKYPILOT_GPU_IDS.values()) <= ids


def test_without_a_price_file_the_shipped_prices_stay(config_dir):
    assert not (config_dir / "prices.json").exists()
    assert gpu_catalog() is shipped_gpu_catalog()
    shipped = json.loads((catalog.Path(catalog.__file__).parents[2] / "resources" / "gpus.json").read_text())
    assert {g["id"]: g["price_usd_per_hour"] for g in shipped["gpus"]} == {g.id: g.price_usd_per_hour for g in gpu_catalog()}


def test_import_stores_per_gpu_prices_and_lists_what_it_skipped(imported, config_dir):
    stored = json.loads((config_dir / "prices.json").read_text())
    entries = {(p["gpu"], p["region"]): p for p in stored["prices"]}
    assert set(entries) == {("h100-80gb-sxm", "us-east-1"), ("h100-80gb-sxm", "us-west-2"), ("a10g", "us-east-1")}
    east = entries[("h100-80gb-sxm", "us-east-1")]
    assert (east["provider"], east["usd_per_gpu_hour"], east["spot_usd_per_gpu_hour"], east["date"]) == \
        ("aws", 98.32 / 8, 40.0 / 8, "2026-11-30")
    assert entries[("h100-80gb-sxm", "us-west-2")]["spot_usd_per_gpu_hour"] is None
    assert entries[("a10g", "us-east-1")]["usd_per_gpu_hour"] == 1.006
    assert entries[("a10g", "us-east-1")]["spot_usd_per_gpu_hour"] == 0.3   # 1.2 / 4 < 0.45
    assert "K80 (1 row" in imported and "Inferentia (1 row" in imported and "not guessed" in imported
    assert "fractional GPU share 1" in imported and "no accelerator (CPU instance) 1" in imported
    assert not [p for p in config_dir.iterdir() if p.name.endswith(".tmp")]   # saved atomically


def test_compare_search_estimate_and_report_use_the_imported_prices(imported, capsys):
    h100, a10g = find_gpu("h100-80gb-sxm"), find_gpu("a10g")
    assert h100.price_usd_per_hour == 90.0 / 8 and h100.price_date == "2026-11-30"
    assert h100.price_source == "aws us-west-2 on-demand, p5.48xlarge / 8 GPUs (SkyPilot catalog vms.csv)"
    assert a10g.price_usd_per_hour == 1.006
    assert find_gpu("rtx-4090") is next(g for g in shipped_gpu_catalog() if g.id == "rtx-4090")   # not priced: as shipped
    est = estimate(PLAN)
    assert est.total.cost_usd == pytest.approx(est.total.hours * 11.25)
    rows = [r for r in compare_hardware(PLAN) if r.gpu_id == "h100-80gb-sxm"]
    assert rows and all(r.price_usd_per_hour == 11.25 and r.price_date == "2026-11-30" for r in rows)
    result = search(PLAN, "cheapest", gpus=["h100-80gb-sxm", "a10g"], top=3)
    for entry in result.results:
        assert entry.usd_per_hour == find_gpu(entry.plan.gpu).price_usd_per_hour * entry.plan.n_gpus
    code, out, _ = run(capsys, "compare", str(write_plan(PLAN)))
    assert code == 0
    assert "prices: aws us-west-2 on-demand, p5.48xlarge / 8 GPUs (SkyPilot catalog vms.csv), 2026-11-30: h100-80gb-sxm" in out
    code, out, _ = run(capsys, "estimate", str(write_plan(PLAN)))
    assert "price $11.25/h per GPU: aws us-west-2 on-demand" in out and "2026-11-30" in out
    code, out, _ = run(capsys, "estimate", str(write_plan(PLAN)), "--json")
    assert json.loads(out)["gpu"]["price_usd_per_hour"] == 11.25
    from napkin_gui.report.data import collect_report_data
    from napkin_gui.report.text import total_text
    data = collect_report_data(PLAN)
    assert "SkyPilot catalog vms.csv), 2026-11-30" in total_text(data.estimate)
    if data.hardware_rows:
        assert "Prices per GPU-hour:" in data.hardware_note and ", 2025-06 (" in data.hardware_note


def write_plan(plan):
    from napkin_gui.core.plan import save_plan
    path = catalog.Path(os.environ["NAPKIN_CONFIG_DIR"]).parent / "plan.napkin.json"
    save_plan(plan, path)
    return path


def test_hardware_table_tooltip_cites_each_price(imported):
    from napkin_gui.ui.hardware_table import shown_row
    rows = compare_hardware(PLAN, counts=(1,))
    tips = {r.gpu_id: shown_row(r).tooltip for r in rows}
    assert "$11.25/h per GPU: aws us-west-2 on-demand, p5.48xlarge / 8 GPUs (SkyPilot catalog vms.csv), 2026-11-30" \
        in tips["h100-80gb-sxm"]
    rtx = find_gpu("rtx-4090")
    assert f"{rtx.price_source}, {rtx.price_date}" in tips["rtx-4090"]


def test_a_second_provider_merges_and_a_new_import_replaces_its_own(imported, tmp_path, capsys, config_dir):
    gcp = write_csv(tmp_path / "gcp", ["us-central1,a3-highgpu-8g,H100,8,H100,208,1872,,80.0,us-central1-a"])
    assert run(capsys, "catalog", "import", str(gcp), "--date", "2026-12-01")[0] == 0
    assert find_gpu("h100-80gb-sxm").price_usd_per_hour == 10.0 and find_gpu("a10g").price_usd_per_hour == 1.006
    aws = write_csv(tmp_path / "aws2", ["us-east-1,g5.xlarge,A10G,1,A10G,4,16,,0.9,us-east-1a"])
    assert run(capsys, "catalog", "import", str(aws), "--provider", "AWS", "--date", "2026-12-02")[0] == 0
    stored = json.loads((config_dir / "prices.json").read_text())["prices"]
    assert sorted((p["provider"], p["gpu"]) for p in stored) == [("aws", "a10g"), ("gcp", "h100-80gb-sxm")]
    code, out, _ = run(capsys, "catalog", "show")
    assert code == 0 and "gcp us-central1 on-demand" in out and "2026-12-01" in out
    assert run(capsys, "catalog", "reset")[0] == 0
    assert gpu_catalog() is shipped_gpu_catalog()


def test_an_unreadable_price_file_leaves_the_shipped_prices(config_dir, capsys):
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "prices.json").write_text('{"schema": "napkin-prices-v1", "prices": [{"gpu": 1}]}')
    catalog.reload_prices()
    assert gpu_catalog() is shipped_gpu_catalog()
    code, out, _ = run(capsys, "catalog", "show")
    assert code == 0 and "not used:" in out and "prices[0]" in out


BAD = [
    ("missing column", HEADER.replace(",SpotPrice", ""), ROWS[:2], "missing column 'SpotPrice'"),
    ("negative price", HEADER, [ROWS[1], "us-east-1,g5.xlarge,A10G,1,A10G,4,16,,-1.0,us-east-1a"],
     "row 3: Price: must be a positive number"),
    ("NaN price", HEADER, ["us-east-1,g5.xlarge,A10G,1,A10G,4,16,,nan,us-east-1a"], "row 2: Price: must be"),
    ("infinite spot", HEADER, ["us-east-1,g5.xlarge,A10G,1,A10G,4,16,inf,1.0,us-east-1a"], "row 2: SpotPrice: must be"),
    ("text count", HEADER, ["us-east-1,g5.xlarge,A10G,one,A10G,4,16,,1.0,us-east-1a"],
     "row 2: AcceleratorCount: must be a finite number"),
    ("zero price", HEADER, ["us-east-1,g5.xlarge,A10G,1,A10G,4,16,,0,us-east-1a"], "row 2: Price: must be a positive"),
    ("extra cell", HEADER, ["us-east-1,g5.xlarge,A10G,1,A10G,4,16,,1.0,us-east-1a,x"], "row 2: has more cells"),
    ("missing cell", HEADER, ["us-east-1,g5.xlarge,A10G,1,A10G,4,16,,1.0"], "row 2: has fewer cells"),
    ("only unknown GPUs", HEADER, [ROWS[5]], "no row prices a GPU napkin knows"),
    ("empty", "", [], "missing column 'InstanceType'"),
]


@pytest.mark.parametrize("name,header,rows,message", BAD, ids=[b[0] for b in BAD])
def test_hostile_csv_is_one_line_and_exit_2(tmp_path, capsys, config_dir, name, header, rows, message):
    path = write_csv(tmp_path / "aws", rows, header)
    code, out, err = run(capsys, "catalog", "import", str(path))
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and message in err and "Traceback" not in err, err
    assert not (config_dir / "prices.json").exists()


def test_binary_huge_and_non_utf8_files(tmp_path, capsys, monkeypatch):
    folder = tmp_path / "aws"
    folder.mkdir()
    cases = {"binary.csv": (HEADER + "\n").encode() + b"\x00\x01\x02" * 100, "latin1.csv": (HEADER + "\nd\xe9j\xe0\n").encode("latin-1")}
    for file_name, data in cases.items():
        (folder / file_name).write_bytes(data)
    code, _, err = run(capsys, "catalog", "import", str(folder / "binary.csv"))
    assert code == 2 and "binary data (a NUL byte at offset" in err and err.count("\n") == 1
    code, _, err = run(capsys, "catalog", "import", str(folder / "latin1.csv"))
    assert code == 2 and "not UTF-8 text" in err and err.count("\n") == 1
    from napkin_gui.core import skypilot_catalog
    monkeypatch.setattr(skypilot_catalog, "MAX_CSV_BYTES", 200)
    big = write_csv(folder, ROWS * 3, name="big.csv")
    code, _, err = run(capsys, "catalog", "import", str(big))
    assert code == 2 and "larger than 200 bytes" in err and err.count("\n") == 1
    code, _, err = run(capsys, "catalog", "import", str(folder), "--provider", "aws")   # a folder
    assert code == 2 and "a folder, not a file" in err


def test_provider_comes_from_the_folder_or_must_be_named(tmp_path, capsys):
    path = write_csv(tmp_path / "downloads")
    code, _, err = run(capsys, "catalog", "import", str(path))
    assert code == 2 and "provider: name the cloud with --provider" in err
    code, _, err = run(capsys, "catalog", "import", str(path), "--provider", "a b")
    assert code == 2 and "provider: must be" in err
    code, _, err = run(capsys, "catalog", "import", str(path), "--provider", "aws", "--date", "yesterday")
    assert code == 2 and "date: must be YYYY-MM-DD" in err


def test_memory_bar_cost_cites_its_price(imported):
    from napkin_gui.ui.memory_bar_view import price_tooltip
    assert price_tooltip(estimate(PLAN)) == ("$11.25/h per GPU: aws us-west-2 on-demand, p5.48xlarge / 8 GPUs "
                                             "(SkyPilot catalog vms.csv), 2026-11-30")


def test_search_output_cites_each_card_price(imported, capsys):
    code, out, _ = run(capsys, "search", str(write_plan(PLAN)), "--gpus", "h100-80gb-sxm,a10g", "--top", "2")
    assert code == 0
    assert ("price h100-80gb-sxm: $11.25/h per GPU, aws us-west-2 on-demand, p5.48xlarge / 8 GPUs "
            "(SkyPilot catalog vms.csv), 2026-11-30") in out
