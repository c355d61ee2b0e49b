from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from higgs_tune.data.audio import AudioError, audio_info, load_audio, scan_audio, write_wav
from higgs_tune.data.samples import SampleError


def test_load_mono_at_target_rate_is_unchanged(make_wav):
    path = make_wav("a.wav", seconds=0.5, subtype="FLOAT")
    audio = load_audio(path)
    assert audio.dtype == np.float32 and audio.ndim == 1
    np.testing.assert_allclose(audio, sf.read(str(path), dtype="float32")[0])


def test_stereo_is_downmixed_by_mean(make_wav):
    left = np.full(2400, 0.5, dtype=np.float32)
    right = np.full(2400, -0.1, dtype=np.float32)
    path = make_wav("st.wav", data=np.stack([left, right], axis=1), subtype="FLOAT")
    np.testing.assert_allclose(load_audio(path), 0.2, atol=1e-6)


@pytest.mark.parametrize("sr", [16_000, 22_050, 44_100, 48_000])
def test_other_rates_are_resampled_keeping_duration_and_pitch(make_wav, sr):
    t = np.arange(sr) / sr
    path = make_wav(f"r{sr}.wav", data=0.5 * np.sin(2 * np.pi * 440 * t), sr=sr)
    audio = load_audio(path)
    assert abs(audio.size - 24_000) <= 1
    spectrum = np.abs(np.fft.rfft(audio))
    assert abs(np.argmax(spectrum) * 24_000 / audio.size - 440) < 2


def test_audio_info_reads_header_only(make_wav):
    path = make_wav("i.wav", seconds=1.5, sr=44_100, channels=2)
    info = audio_info(path)
    assert (info.sample_rate, info.channels, info.frames) == (44_100, 2, 66_150)
    assert info.duration == pytest.approx(1.5)


def _code(call, *args) -> str:
    with pytest.raises(AudioError) as caught:
        call(*args)
    assert isinstance(caught.value, SampleError)
    return caught.value.code


@pytest.mark.parametrize("call", [audio_info, load_audio, scan_audio])
def test_missing_file_is_named(tmp_path, call):
    path = tmp_path / "nope.wav"
    with pytest.raises(SampleError, match="nope.wav: file not found"):
        call(path)
    assert _code(call, path) == "audio_missing"
    assert _code(call, tmp_path) == "audio_missing"  # a folder is not a clip


@pytest.mark.parametrize("call", [audio_info, load_audio, scan_audio])
def test_garbage_is_undecodable(tmp_path, call):
    path = tmp_path / "text.wav"
    path.write_text("definitely not audio\n")
    assert _code(call, path) == "audio_unreadable"


@pytest.mark.parametrize("call", [audio_info, load_audio, scan_audio])
def test_empty_audio(make_wav, call):
    path = make_wav("empty.wav", data=np.zeros(0, dtype=np.float32))
    assert _code(call, path) == "audio_empty"


@pytest.mark.parametrize("call", [load_audio, scan_audio])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nonfinite_samples(make_wav, call, bad):
    data = np.zeros(24_000, dtype=np.float32)
    data[12_000] = bad
    path = make_wav("nan.wav", data=data, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"NaN or infinite samples \(first at 0.500 s\)"):
        call(path)
    assert _code(call, path) == "audio_nonfinite"


@pytest.mark.parametrize("call", [audio_info, load_audio, scan_audio])
def test_truncated_wav_is_caught_although_libsndfile_reads_it(make_wav, call):
    full = make_wav("full.wav", seconds=1.0)
    cut = full.with_name("cut.wav")
    data = full.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    assert sf.info(str(cut)).frames > 0  # the reason for our own check
    with pytest.raises(AudioError, match="truncated: the WAV header promises 48000 bytes"):
        call(cut)
    assert _code(call, cut) == "audio_truncated"


def test_streaming_wav_with_unknown_size_is_not_truncated(make_wav):
    path = make_wav("stream.wav", seconds=0.5)
    data = bytearray(path.read_bytes())
    at = data.index(b"data")
    data[at + 4 : at + 8] = (0xFFFFFFFF).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    audio_info(path)  # does not raise


def test_scan_audio_levels(make_wav):
    quiet = scan_audio(make_wav("q.wav", data=np.full(24_000, 1e-4, dtype=np.float32), subtype="FLOAT"))
    assert quiet.rms_dbfs == pytest.approx(-80, abs=0.1)
    square = np.where(np.arange(24_000) % 100 < 50, 1.0, -1.0).astype(np.float32)
    loud = scan_audio(make_wav("c.wav", data=square, subtype="FLOAT"))
    assert loud.clipped_fraction == 1.0 and loud.peak == 1.0
    silent = scan_audio(make_wav("z.wav", data=np.zeros(2400, dtype=np.float32)))
    assert silent.rms == 0 and silent.rms_dbfs == float("-inf")


def test_write_wav_round_trip(tmp_path):
    audio = (0.4 * np.sin(np.arange(24_000) / 7)).astype(np.float32)
    path = write_wav(tmp_path / "sub" / "out.wav", audio)
    info = audio_info(path)
    assert (info.sample_rate, info.channels, info.subtype) == (24_000, 1, "PCM_16")
    np.testing.assert_allclose(load_audio(path), audio, atol=1 / 32_000)


def test_write_wav_clips_and_refuses_nonfinite(tmp_path):
    path = write_wav(tmp_path / "hot.wav", np.array([2.0, -3.0, 0.5], dtype=np.float32))
    np.testing.assert_allclose(load_audio(path), [32767 / 32768, -1.0, 0.5], atol=1e-4)
    with pytest.raises(ValueError, match="NaN"):
        write_wav(tmp_path / "bad.wav", np.array([0.0, np.nan]))
    with pytest.raises(ValueError, match="shape"):
        write_wav(tmp_path / "none.wav", np.zeros((0,)))
    assert not Path(tmp_path / "bad.wav").exists()


def lying_rate(path: Path, rate: int) -> Path:
    """Rewrite a WAV header's sample rate (and byte rate) to `rate`, leaving the samples as they are."""
    raw = bytearray(path.read_bytes())
    block_align = int.from_bytes(raw[32:34], "little")
    raw[24:28] = rate.to_bytes(4, "little")
    raw[28:32] = (rate * block_align).to_bytes(4, "little")
    path.write_bytes(bytes(raw))
    return path


@pytest.mark.parametrize("call", [audio_info, load_audio, scan_audio])
def test_a_header_claiming_an_absurd_rate_is_refused_before_decoding(make_wav, call, monkeypatch):
    """A small file whose header claims 1 Hz would be 'hours long', and resampling it to 24 kHz would ask
    for tens of GB: the rate is refused from the header, before anything is decoded."""
    path = lying_rate(make_wav("lies.wav", seconds=0.5), 1)
    monkeypatch.setattr(sf, "read", lambda *a, **k: pytest.fail("decoded a file with an absurd rate"))
    monkeypatch.setattr(sf, "blocks", lambda *a, **k: pytest.fail("decoded a file with an absurd rate"))
    with pytest.raises(AudioError, match="lies.wav: its header claims a sample rate of 1 Hz, outside 4000-"):
        call(path)


def test_a_symbolic_link_loop_or_dangling_link_says_so(tmp_path):
    loop = tmp_path / "loop.wav"
    loop.symlink_to(loop)
    with pytest.raises(AudioError, match="loop.wav: is a symbolic link loop") as caught:
        audio_info(loop)
    assert caught.value.code == "audio_missing"
    dangling = tmp_path / "dangling.wav"
    dangling.symlink_to(tmp_path / "gone.wav")
    with pytest.raises(AudioError, match="dangling.wav: is a symbolic link to .*gone.wav, which is missing"):
        load_audio(dangling)


def test_a_format_soundfile_cannot_read_names_the_readable_ones_and_the_conversion(tmp_path):
    m4a = tmp_path / "voice.m4a"
    m4a.write_bytes(b"\x00\x00\x00\x20ftypM4A \x00\x00\x02\x00M4A isommp42" + bytes(64))  # an MP4 header
    with pytest.raises(AudioError) as caught:
        audio_info(m4a)
    message = str(caught.value)
    assert "readable formats are WAV, FLAC" in message
    assert "`ffmpeg -i voice.m4a -ar 24000 voice.flac`" in message


def test_encoded_bytes_pass_the_same_header_checks_as_files(make_wav):
    """A `datasets` row's audio cell is checked like a file, and named as the caller names it."""
    good = make_wav("good.wav", seconds=0.5)
    np.testing.assert_array_equal(load_audio(good.read_bytes(), name="row 0"), load_audio(good))
    assert audio_info(good.read_bytes(), name="row 0").frames == audio_info(good).frames
    lying = lying_rate(make_wav("lies.wav", seconds=0.5), 1).read_bytes()
    with pytest.raises(AudioError, match="row 1: its header claims a sample rate of 1 Hz, outside 4000-"):
        load_audio(lying, name="row 1")
    full = good.read_bytes()
    with pytest.raises(AudioError, match="row 2: truncated: the WAV header promises") as caught:
        load_audio(full[: len(full) // 2], name="row 2")
    assert caught.value.code == "audio_truncated"


def test_a_header_claiming_more_frames_than_the_file_holds_costs_only_what_is_there(make_wav):
    """A FLAC header may claim 2^36 frames (256 GiB as float32): decoding follows the data really there
    instead of allocating what the header says, and the lie is an unreadable file, not a MemoryError."""
    path = make_wav("endless.flac", seconds=0.5)
    raw = bytearray(path.read_bytes())
    streaminfo = int.from_bytes(raw[18:26], "big") | ((1 << 36) - 1)  # its 36-bit frame count
    raw[18:26] = streaminfo.to_bytes(8, "big")
    path.write_bytes(bytes(raw))
    with pytest.raises(AudioError, match="endless.flac: cannot be decoded as audio") as caught:
        load_audio(path)
    assert caught.value.code == "audio_unreadable"
