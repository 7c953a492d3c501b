import csv
import json

import numpy as np
import pytest

from dydiff.report import dataset_group, iqm, load_runs, stratified_bootstrap_ci, write_report

SCORES = {  # (dataset, algo, synth): scores of seeds 0, 1, 2
    ("maze2d-umaze", "td3bc", "none"): [10.0, 20.0, 30.0],
    ("maze2d-umaze", "td3bc", "dydiff"): [40.0, 50.0, 60.0],
    ("builtin-hopper-medium", "td3bc", "none"): [70.0, 80.0, 90.0],
    ("builtin-hopper-medium", "td3bc", "dydiff"): [50.0, 60.0, 100.0],
    ("builtin-hopper-medium", "cql", "none"): [5.0, 5.0, 5.0],
}


@pytest.fixture
def run_dir(tmp_path):
    for (d, a, s), values in SCORES.items():
        for seed, v in enumerate(values):
            f = tmp_path / d / "policy" / f"{a}-{s}" / f"seed{seed}" / "summary.json"
            f.parent.mkdir(parents=True)
            scores = (0.0, v - 2, v + 2, v, v - 1, v + 1)  # the last five average to v
            evals = [{"score_mean": x, "updates": 100 * i} for i, x in enumerate(scores)]
            f.write_text(json.dumps({"dataset": d, "algo": a, "synth": {"name": s}, "tag": None, "seed": seed,
                                     "seeds": [seed], "last5_score_mean": v, "updates": 500,
                                     "wall_s": 60.0 * (seed + 1), "evaluations": evals}))
    (tmp_path / "unfinished" / "summary.json").parent.mkdir()
    (tmp_path / "unfinished" / "summary.json").write_text(json.dumps({"last5_score_mean": None}))
    return tmp_path


def test_table_cells_best_marks_and_average(run_dir, tmp_path_factory):
    runs = load_runs([run_dir])
    assert len(runs) == 15
    assert {r["dataset"] for r in load_runs([f"{run_dir}/maze2d-*/policy"])} == {"maze2d-umaze"}  # a glob
    assert len(load_runs([f"{run_dir}/*/policy/td3bc-*"])) == 12
    out = tmp_path_factory.mktemp("rep")
    result = write_report(runs, out, reps=200)
    header, rows = result["table"]["header"], result["table"]["rows"]
    assert header == ["dataset", "cql Base", "td3bc Base", "td3bc DyDiff"]
    std = lambda v: np.std(v)  # noqa: E731  (over seeds, ddof = 0)
    assert rows[0] == ["builtin-hopper-medium", "**5.0 ± 0.0**", f"**80.0 ± {std([70, 80, 90]):.1f}**",
                       f"70.0 ± {std([50, 60, 100]):.1f}"]
    assert rows[1] == ["maze2d-umaze", "–", f"20.0 ± {std([10, 20, 30]):.1f}", f"**50.0 ± {std([40, 50, 60]):.1f}**"]
    assert rows[2] == ["average", "**5.0**", "50.0", "**60.0**"]  # (80 + 20) / 2 and (70 + 50) / 2
    md = (out / "table.md").read_text().splitlines()
    assert md[0] == "| dataset | cql Base | td3bc Base | td3bc DyDiff |" and md[4].startswith("| average |")
    with open(out / "table.csv") as f:
        assert list(csv.reader(f))[3] == ["average", "5.0", "50.0", "60.0"]


def test_iqm_is_the_quarter_trimmed_mean():
    assert iqm([1, 2, 3, 4]) == 2.5
    assert iqm([0, 0, 0, 10, 10, 100, 100, 1000]) == 30.0  # the middle four
    assert iqm([1, 2, 3, 4, 5, 6]) == pytest.approx((0.5 * 2 + 3 + 4 + 0.5 * 5) / 3)  # fractional ends
    assert iqm([7.0]) == 7.0


def test_stratified_bootstrap_interval(run_dir):
    point, lo, hi = stratified_bootstrap_ci([[5.0, 5.0], [5.0]], reps=100)
    assert point == lo == hi == 5.0  # no spread, no interval
    point, lo, hi = stratified_bootstrap_ci([[0.0, 10.0, 20.0, 30.0], [100.0, 100.0]], reps=500)
    assert point == iqm([0, 10, 20, 30, 100, 100]) and lo < point < hi and 0 <= lo and hi <= 100
    rows = write_report(load_runs([run_dir]), run_dir / "rep", reps=300)["iqm_by_environment"]
    hop = next(r for r in rows if r["group"] == "hopper" and r["algo"] == "td3bc" and r["column"] == "DyDiff")
    assert hop["iqm"] == iqm([50, 60, 100]) and hop["runs"] == 3
    kinds = {(r["group"], r["algo"], r["column"]) for r in write_report(load_runs([run_dir]), run_dir / "r2",
                                                                         reps=10)["iqm_by_type"]}
    assert ("medium", "cql", "Base") in kinds and ("umaze", "td3bc", "DyDiff") in kinds


def test_dataset_groups():
    assert [dataset_group(d, "environment") for d in ("builtin-walker2d-medium-replay", "hopper-medium-expert-v2",
                                                       "maze2d-large", "minari-halfcheetah-medium")] == [
        "walker2d", "hopper", "maze2d", "halfcheetah"]
    assert dataset_group("builtin-walker2d-medium-replay", "type") == "medium-replay"
    assert dataset_group("hopper-medium-expert-v2", "type") == "medium-expert"


def test_report_stage(run_dir, tmp_path_factory, capsys):
    from conftest import ROOT
    from hydra import compose, initialize_config_dir

    from stages.report import run

    out = tmp_path_factory.mktemp("stage")
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("report", overrides=[f"runs=[{run_dir}]", f"out={out}", "bootstrap_reps=50"])
    run(cfg)
    assert "| average | **5.0** | 50.0 | **60.0** |" in capsys.readouterr().out
    assert {p.name for p in out.iterdir()} == {"table.md", "table.csv", "paired.md", "iqm_by_environment.md",
                                               "iqm_by_type.md", "costs.md", "curves.md", "report.json",
                                               "learning_builtin-hopper-medium_cql.png",
                                               "learning_builtin-hopper-medium_td3bc.png",
                                               "learning_maze2d-umaze_td3bc.png"}
    curves = (out / "curves.md").read_text()  # Base's means over seeds, 100..500 updates: 18, 22, 20, 19, 21
    assert "maze2d-umaze · td3bc" in curves and "| data | 0.1k–0.5k |" in curves and "| Base | 20.0 |" in curves


def test_ablation_curves_hold_the_other_settings_at_their_defaults(tmp_path):
    """A one-at-a-time sweep around M = 2, L = 100, η = 0.8, α = 0.6, softmax (2 seeds each): each curve takes
    only the runs at the other settings' defaults, so the default point is the same two runs in every curve."""
    from dydiff.report import ablation_curves

    default = {"iterations": 2, "horizon": 100, "keep": 0.8, "filter": "softmax"}
    variants = [({"iterations": m}, None) for m in (0, 1, 3, 5)] + [({"horizon": h}, None) for h in (50, 200)]
    variants += [({"keep": 0.4}, None), ({}, 0.2), ({"filter": "hardmax"}, None), ({}, None)]
    i = 0
    for change, alpha in variants:
        for seed in (0, 1):
            synth = {"name": "dydiff", **default, **change}
            score = 10 * synth["iterations"] + synth["horizon"] / 10 + 100 * synth["keep"] + seed * 4 + \
                (alpha or 0.6) * 10 + (synth["filter"] == "hardmax") * 7
            f = tmp_path / f"r{i}" / "summary.json"
            f.parent.mkdir()
            f.write_text(json.dumps({"dataset": "builtin-hopper-medium-replay", "algo": "td3bc", "synth": synth,
                                     "real_ratio": alpha or 0.6, "tag": f"v{i // 2}", "seed": seed,
                                     "last5_score_mean": score, "evaluations": []}))
            i += 1
    none = tmp_path / "base" / "summary.json"  # a Base run is not part of any curve
    none.parent.mkdir()
    none.write_text(json.dumps({"dataset": "builtin-hopper-medium-replay", "algo": "td3bc", "synth": {"name": "none"},
                                "real_ratio": 1.0, "tag": None, "seed": 0, "last5_score_mean": -1.0}))
    runs = load_runs([tmp_path])
    curves = ablation_curves(runs)[("builtin-hopper-medium-replay", "td3bc")]
    base = 20 + 10 + 80 + 6  # M = 2, L = 100, η = 0.8, α = 0.6; seeds add 0 and 4: mean +2, std 2
    assert curves["M"] == [(0, base - 20 + 2, 2.0, 2), (1, base - 10 + 2, 2.0, 2), (2, base + 2, 2.0, 2),
                           (3, base + 10 + 2, 2.0, 2), (5, base + 30 + 2, 2.0, 2)]
    assert curves["L"] == [(50, base - 5 + 2, 2.0, 2), (100, base + 2, 2.0, 2), (200, base + 10 + 2, 2.0, 2)]
    assert [(v, round(m, 6)) for v, m, _, _ in curves["eta"]] == [(0.4, base - 40 + 2), (0.8, base + 2)]
    assert [(v, round(m, 6)) for v, m, _, _ in curves["alpha"]] == [(0.2, base - 4 + 2), (0.6, base + 2)]
    assert [(v, m) for v, m, _, _ in curves["filter"]] == [("hardmax", base + 7 + 2), ("softmax", base + 2)]
    result = write_report(runs, tmp_path / "rep", reps=10)
    png = tmp_path / "rep" / "ablation_builtin-hopper-medium-replay_td3bc.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert result["figures"][png.name]["M"][0] == [0, base - 18, 2.0, 2]


def test_paired_differences_by_seed_with_a_t_interval():
    from dydiff.report import paired_differences

    def run(synth, seed, score):
        return {"dataset": "maze2d-umaze", "algo": "td3bc", "synth": {"name": synth}, "seed": seed,
                "last5_score_mean": score}

    runs = [run("none", k, v) for k, v in enumerate([30.0, 32.0, 28.0])] + \
        [run("dydiff", k, v) for k, v in enumerate([40.0, 36.0, 38.0, 99.0])]  # seed 3 has no pair
    (p,) = paired_differences(runs)
    assert (p["a"], p["b"], p["seeds"], p["differences"]) == ("Base", "DyDiff", [0, 1, 2], [10.0, 4.0, 10.0])
    d = np.array([10.0, 4.0, 10.0])
    half = 4.303 * d.std(ddof=1) / np.sqrt(3)  # t_{0.975, 2}
    assert p["mean"] == pytest.approx(d.mean()) and p["ci_high"] - p["ci_low"] == pytest.approx(2 * half)


def test_paired_bootstrap_interval_and_probability_of_improvement():
    from dydiff.report import paired_differences, probability_of_improvement

    assert probability_of_improvement([0, 10, 20], [5, 15, 25]) == pytest.approx(6 / 9)  # 1 + 2 + 3 of 9 pairs
    assert probability_of_improvement([1, 2], [2, 2]) == pytest.approx((1 + 1 + 0.5 + 0.5) / 4)  # ties: 1/2

    def run(synth, seed, score):
        return {"dataset": "maze2d-umaze", "algo": "td3bc", "synth": {"name": synth}, "seed": seed,
                "last5_score_mean": score}

    base = [0.0, 10.0, 20.0, 30.0, 40.0]
    (same,) = paired_differences([run("none", k, v) for k, v in enumerate(base)] +
                                 [run("dydiff", k, v + 5) for k, v in enumerate(base)], reps=300)
    assert same["boot_low"] == same["boot_high"] == same["mean"] == 5.0  # every seed +5: no spread to resample
    assert same["p_improve"] == pytest.approx(15 / 25)  # b_j > a_i for j ≥ i: 15 of 25 pairs
    gain = [-4.0, 0.0, 2.0, 6.0, 16.0]
    (p,) = paired_differences([run("none", k, v) for k, v in enumerate(base)] +
                              [run("dydiff", k, base[k] + gain[k]) for k in range(5)], reps=2000)
    assert p["differences"] == [-4.0, 0.0, 2.0, 6.0, 16.0] and p["mean"] == 4.0
    assert -4 <= p["boot_low"] < 4 < p["boot_high"] <= 16  # within the differences' range
    assert p["boot_high"] - p["boot_low"] < p["ci_high"] - p["ci_low"]  # the percentile interval of 5 seeds is
    assert 0 <= p["p_improve_low"] <= p["p_improve"] <= p["p_improve_high"] <= 1  # narrower than t's


def test_learning_curves_and_costs(run_dir):
    from dydiff.report import costs, learning_curves

    curves = learning_curves(load_runs([run_dir]))
    base = curves[("maze2d-umaze", "td3bc")]["Base"]  # seeds 10, 20, 30: evaluations (0, v-2, v+2, v, v-1, v+1)
    assert [u for u, *_ in base] == [0, 100, 200, 300, 400, 500]
    assert base[2] == (200, 22.0, pytest.approx(np.std([12, 22, 32])), 3)
    rows = {(r["dataset"], r["algo"], r["column"]): r for r in costs(load_runs([run_dir]))}
    assert rows[("maze2d-umaze", "td3bc", "DyDiff")] == {"dataset": "maze2d-umaze", "algo": "td3bc",
                                                         "column": "DyDiff", "runs": 3, "updates": 500.0,
                                                         "wall_s": 120.0}  # (60 + 120 + 180) / 3
    two = {"dataset": "d", "algo": "td3bc", "synth": {"name": "none"}, "seeds": [0, 1], "updates": 10, "wall_s": 100.0}
    assert costs([two])[0]["wall_s"] == 50.0  # a 2-seed process: half its wall time per run


def test_window_means_end_at_the_last_evaluation(run_dir):
    from dydiff.report import window_means

    runs = load_runs([run_dir])  # Base's means over seeds at updates 0..500: 0, 18, 22, 20, 19, 21
    assert window_means(runs, 5)[("maze2d-umaze", "td3bc")]["Base"] == [(100, 500, pytest.approx(20.0))]
    assert window_means(runs, 2)[("maze2d-umaze", "td3bc")]["Base"] == [
        (0, 100, pytest.approx(9.0)), (200, 300, pytest.approx(21.0)), (400, 500, pytest.approx(20.0))]


def test_synthesis_log_averages_seeds_by_round_and_keeps_a_resumed_round_once(tmp_path, run_dir):
    """Two seeds' synth/legal scalars at 4 rounds (seed 0: 0..3, seed 1: 2..5, so the mean is 1..4); seed 0's round 3
    first logged as 100, then again as 3 by a resumed run (a second event file). Other tags are not synthesis."""
    from torch.utils.tensorboard import SummaryWriter

    from dydiff.report import synthesis_log, synthesis_windows, write_report

    log = tmp_path / "tb" / "td3bc-dydiff" / "seeds-0-1"
    with SummaryWriter(log) as w:
        for i in range(4):
            w.add_scalar("seed0/synth/legal", 100.0 if i == 3 else float(i), 500 * i)
            w.add_scalar("seed1/synth/legal", i + 2.0, 500 * i)
            w.add_scalar("seed0/train/loss", 7.0, 500 * i)
    with SummaryWriter(log) as w:
        w.add_scalar("seed0/synth/legal", 3.0, 1500)
    with SummaryWriter(tmp_path / "tb" / "td3bc-none" / "seeds-0-1") as w:  # Base: no synthesis, matched by the glob
        w.add_scalar("seed0/train/loss", 7.0, 0)
    assert synthesis_log(log) == {"legal": [(0, 1.0), (500, 2.0), (1000, 3.0), (1500, 4.0)]}
    assert synthesis_windows(synthesis_log(log)["legal"]) == {
        "rounds 1–4": (2.5, 1.0, 4.0), "rounds 1–2": (1.5, 1.0, 2.0), "rounds 3–4": (3.5, 3.0, 4.0),
        "all": (2.5, 1.0, 4.0)}
    write_report(load_runs([run_dir]), tmp_path / "rep", reps=10, logs=[str(tmp_path / "tb" / "*" / "seeds-*")])
    table = (tmp_path / "rep/synthesis.md").read_text()
    assert "td3bc-dydiff/seeds-0-1:" in table
    assert "| legal | 2.5 [1, 4] | 1.5 [1, 2] | 3.5 [3, 4] | 2.5 [1, 4] |" in table
    assert "td3bc-none" not in table and table.count("seeds-0-1:") == 1
    with pytest.raises(FileNotFoundError, match="no synth.*TensorBoard folders"):
        write_report(load_runs([run_dir]), tmp_path / "rep2", reps=10, logs=[str(tmp_path / "nothing")])
    with pytest.raises(FileNotFoundError, match="no synth.* in [^,]*typo: logs="):  # beside a good folder too
        write_report(load_runs([run_dir]), tmp_path / "rep3", reps=10, logs=[str(log), str(tmp_path / "typo")])
