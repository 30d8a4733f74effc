"""bench/starting_model.py without training: its splits never test on training images, and its table and
headline keys come from the records (the measurement itself is run by hand: see its docstring)."""

from __future__ import annotations

from bench import starting_model as sm


def test_splits_keep_test_images_unseen():
    dsb, large = sm.test_sets()
    assert sm.shipped_training().stems == tuple(f"{i:03d}" for i in range(20, 60))  # fold-0 training images
    assert dsb.stems == tuple(f"{i:03d}" for i in range(20)) and not set(dsb.stems) & set(sm.shipped_training().stems)
    assert large.training.stems == tuple(f"{i:03d}" for i in range(15))
    assert large.stems == tuple(f"{i:03d}" for i in range(15, 30))
    small_dsb, small_large = sm.test_sets(images=3)
    assert len(small_dsb.stems) == len(small_large.stems) == len(small_large.training.stems) == 3


def test_table_and_headline_average_over_seeds():
    def record(dataset, start, seconds, seed, ap50):
        return {"dataset": dataset, "split": "s", "start": start, "seconds_limit": seconds, "seed": seed,
                "ap50": ap50, "map": ap50 / 2, "f1": 0.9}

    report = {"records": [record("dsb", "nuclei", 0.0, None, 0.8), record("dsb_large", "scratch", 30.0, 0, 0.4),
                          record("dsb_large", "scratch", 30.0, 1, 0.6)], "errors": ["scratch, 60 s, seed 0: boom"]}
    keys = sm.headline(report)
    assert keys["dsb_nuclei_0s_ap50"] == 0.8 and keys["dsb_large_scratch_30s_ap50"] == 0.5
    lines = sm.table(report)
    assert len(lines) == 4 and "   2 " in lines[2] and lines[-1].startswith("FAILED")
    args = sm.parse_args(["--measure", "--seconds", "0,5", "--scratch-seconds", "5", "--seeds", "0", "--images", "3"])
    assert args.seconds == [0.0, 5.0] and args.scratch_seconds == [5.0] and args.images == 3
