"""The dataset builder, run for real: music21's corpus rendered by FluidSynth."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pnpkit_audio import STEMS
from pnpkit_audio.dataset import (
    SegmentSampler,
    chorales,
    chorales_excerpts,
    load_stems,
    read_manifest,
    split_files,
)
from pnpkit_audio.render import KICK, SNARE, build_dataset, drum_events, split_of


def test_build_writes_four_stem_flac_per_piece_with_its_choices(built):
    root, manifest = built
    assert len(manifest["pieces"]) == 2
    assert sorted(p["split"] for p in manifest["pieces"].values()) == ["test", "train"]
    for piece in manifest["pieces"].values():
        stems, rate = load_stems(root / piece["file"])
        assert rate == 8000 and stems.shape == (4, piece["samples"])
        assert piece["seconds"] == pytest.approx(stems.shape[1] / 8000)
        # every stem sounds, the mixture peaks at 0.9 (16-bit rounding aside)
        rms = np.sqrt((stems**2).mean(axis=1))
        assert (rms > 0.005).all(), dict(zip(STEMS, rms, strict=True))
        assert np.abs(stems.sum(0)).max() == pytest.approx(0.9, abs=2e-3)
        assert 70 <= piece["tempo"] <= 130 and -5 <= piece["transpose"] <= 6
        assert 32 <= piece["programs"]["bass"] <= 39 and 24 <= piece["programs"]["guitar"] <= 31
        assert 0 <= piece["programs"]["piano"] <= 7
        assert piece["notes"]["drums"] > 0 and piece["notes"]["bass"] > 0
    # the written manifest is what build_dataset returned
    assert read_manifest(root)["pieces"] == manifest["pieces"]


def test_stems_hold_what_their_class_plays(built):
    root, manifest = built
    stems, rate = load_stems(root / next(iter(manifest["pieces"].values()))["file"])
    power = np.abs(np.fft.rfft(stems[:, : 8 * rate], axis=1)) ** 2
    freqs = np.fft.rfftfreq(8 * rate, 1 / rate)
    low = power[:, freqs < 200].sum(1) / power.sum(1)
    bass, drums, guitar, piano = low
    # the bass, an octave below the chorale's bass voice, has the most energy below 200 Hz
    assert bass > max(guitar, piano), dict(zip(STEMS, low, strict=True))
    high = power[:, freqs > 2000].sum(1) / power.sum(1)
    # the drums (cymbals, snare) have the most energy above 2 kHz
    assert high[1] == high.max(), dict(zip(STEMS, high, strict=True))


def test_build_is_reproducible_and_resumes_without_rendering_again(built, tmp_path):
    root, manifest = built
    PIECES = sorted(p["source"] for p in manifest["pieces"].values())
    other = tmp_path / "again"
    build_dataset(other, sources=PIECES[:1], test_fraction=0.5, validation_fraction=0.0,
                  progress=False)
    pid = next(p for p in manifest["pieces"].values() if p["source"] == PIECES[0])
    a, _ = load_stems(root / pid["file"])
    b, _ = load_stems(other / pid["file"])
    np.testing.assert_array_equal(a, b)
    mtime = (other / pid["file"]).stat().st_mtime_ns
    again = build_dataset(other, sources=PIECES, test_fraction=0.5, validation_fraction=0.0,
                          progress=False)
    assert (other / pid["file"]).stat().st_mtime_ns == mtime  # skipped, not re-rendered
    assert set(again["pieces"]) == set(manifest["pieces"])


def test_other_settings_in_the_same_folder_are_refused(built):
    root, _ = built
    with pytest.raises(ValueError, match="built with other settings"):
        build_dataset(root, sample_rate=16000, progress=False)


def test_split_is_by_piece_and_deterministic():
    names = [f"bach/bwv{i}.6" for i in range(400)]
    splits = [split_of(n, 0, 0.06, 0.06) for n in names]
    assert splits == [split_of(n, 0, 0.06, 0.06) for n in names]
    counts = {s: splits.count(s) for s in ("train", "validation", "test")}
    assert 10 <= counts["test"] <= 45 and 10 <= counts["validation"] <= 45
    assert splits != [split_of(n, 1, 0.06, 0.06) for n in names]


def test_drums_follow_the_bars():
    rng = np.random.default_rng(0)
    bars = [(-1.0, 4.0), (3.0, 4.0), (7.0, 3.0), (10.0, 3.0)]  # a pickup bar, then 4/4 and 3/4
    events = drum_events(bars, 13.0, rng, "rock")
    kicks = sorted({t for t, _, key, _ in events if key == KICK})
    snares = sorted({t for t, _, key, _ in events if key == SNARE})
    # beats 1 and 3 of the 4/4 bars (the pickup bar only from 0 on), the 3/4 downbeats
    assert kicks == [1.0, 3.0, 5.0, 7.0, 10.0]
    assert 4.0 in snares and 6.0 in snares and 8.0 in snares
    assert all(0 <= t < 13.0 for t, *_ in events)  # nothing before the music starts
    assert all(30 <= v <= 127 for *_, v in events)


def test_segment_sampler_is_a_pure_function_of_the_generator(built):
    root, _ = built
    sampler = SegmentSampler(root, "train", length=4096)
    a = sampler.sample(3, np.random.default_rng([0, 7]))
    b = sampler.sample(3, np.random.default_rng([0, 7]))
    assert a.shape == (3, 4, 4096) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert np.abs(a).max() <= 1.0 and np.abs(a).max() > 0.01


def test_dataset_errors_say_what_to_do(tmp_path, built):
    with pytest.raises(FileNotFoundError, match="pnpkit build-audio-dataset --out"):
        SegmentSampler(tmp_path)
    with pytest.raises(ValueError, match="no piece in split 'validation'"):
        split_files(built[0], "validation")
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        split_files(built[0], "dev")


def test_built_pieces_and_shipped_excerpts_are_pipeline_items(built):
    items = chorales(str(built[0]), split="test", seconds=2.048)
    assert len(items) == 1 and items[0].signal.shape == (4, 16384)
    assert items[0].kind == "audio" and items[0].sample_rate == 8000
    assert items[0].channel_names == list(STEMS)
    whole = chorales(str(built[0]), split="test", seconds=0)  # 0: whole pieces, as in TOML
    test_piece = next(p for p in built[1]["pieces"].values() if p["split"] == "test")
    assert whole[0].signal.shape == (4, test_piece["samples"])
    shipped = chorales_excerpts()
    assert len(shipped) == 4
    for item in shipped:
        assert item.signal.shape == (4, 65536) and item.sample_rate == 8000
        assert float(item.signal.abs().sum(0).max()) > 0.1
    info = json.loads((shipped and __import__("pnpkit_audio.dataset", fromlist=["x"]).EXCERPTS_DIR
                       / "excerpts.json").read_text())
    assert {p["split"] for p in info["pieces"].values()} == {"test"}


def test_no_tail_leaks_from_one_stem_into_the_next():
    from pnpkit_audio.render import StemRenderer

    r = StemRenderer()
    loud = r.render([(0.0, 4.0, 60, 120), (0.0, 4.0, 64, 120)], 0.5, 0, False, r.rate * 2)
    assert np.abs(loud).max() > 0.05  # the notes still ring at the end (cut, not released)
    quiet = r.render([], 0.5, 0, False, r.rate)  # the next stem has no notes: pure silence
    assert np.abs(quiet).max() < 1e-4
