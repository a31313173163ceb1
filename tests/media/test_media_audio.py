"""AUDIO <-> bytes: FLAC/WAV round trips within quantisation error; MP3/Ogg/M4A/WAV decoding."""

from __future__ import annotations

import io
import wave

import av
import numpy as np
import pytest
import torch

from media_files import av_audio_file, av_video_file, sine


def _audio(waveform: torch.Tensor, rate: int) -> dict:
    return {"waveform": waveform, "sample_rate": rate}


def _dominant_hz(x: torch.Tensor, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x.numpy()))
    return float(np.argmax(spectrum) * rate / len(x))


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000, 96000])
def test_flac_16bit_round_trip_within_one_lsb(audio, sniff, channels, rate):
    src = (torch.rand(1, channels, rate // 10, generator=torch.Generator().manual_seed(rate)) * 2 - 1) * 0.99
    data = audio.encode_audio(_audio(src, rate))[0]
    assert sniff.sniff(data).name == "flac"
    back = audio.decode_audio(data)
    assert back["sample_rate"] == rate
    assert back["waveform"].shape == (1, channels, rate // 10) and back["waveform"].dtype == torch.float32
    assert (back["waveform"] - src).abs().max() <= 1 / 32768


def test_flac_24bit_is_finer(audio):
    src = sine(48000, 0.25, channels=2, amp=0.9)[None]
    data = audio.encode_audio(_audio(src, 48000), bits=24)[0]
    with av.open(io.BytesIO(data)) as c:
        assert c.streams.audio[0].codec_context.name == "flac"
        assert c.streams.audio[0].format.name.startswith("s32")
    err = (audio.decode_audio(data)["waveform"] - src).abs().max()
    assert err <= 1 / 2**23


def test_flac_is_smaller_than_wav(audio):
    src = sine(44100, 1.0, channels=2)[None]
    flac = audio.encode_audio(_audio(src, 44100))[0]
    wav = audio.encode_audio(_audio(src, 44100), fmt="wav")[0]
    assert len(flac) < len(wav) / 2
    assert torch.equal(audio.decode_audio(flac)["waveform"], audio.decode_audio(wav)["waveform"])


def test_batch_gives_one_file_each(audio, sniff):
    src = torch.stack([sine(16000, 0.1, amp=a) for a in (0.1, 0.5, 0.9)])  # [3,1,T]
    files = audio.encode_audio(_audio(src, 16000))
    assert len(files) == 3 and all(sniff.sniff(f).name == "flac" for f in files)
    peaks = [float(audio.decode_audio(f)["waveform"].abs().max()) for f in files]
    assert peaks == pytest.approx([0.1, 0.5, 0.9], abs=1e-3)


def test_clipping_and_nan(audio):
    src = torch.tensor([[[2.0, -2.0, float("nan"), 0.5]]])
    back = audio.decode_audio(audio.encode_audio(_audio(src, 8000))[0])["waveform"]
    assert back.flatten().tolist() == [32767 / 32768, -1.0, 0.0, 0.5]


def test_wav_written_by_the_standard_library_decodes_exactly(audio):
    pcm = np.array([[0, 1], [-1, 32767], [-32768, 1234]], dtype="<i2")  # frames x channels
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(2), w.setsampwidth(2), w.setframerate(22050)
        w.writeframes(pcm.tobytes())
    back = audio.decode_audio(buf.getvalue())
    assert back["sample_rate"] == 22050
    assert torch.equal(back["waveform"][0], torch.from_numpy(pcm.T.astype(np.float32) / 32768))


@pytest.mark.parametrize(
    "fmt,codec,rate",
    [("mp3", "libmp3lame", 44100), ("ogg", "libopus", 48000), ("ipod", "aac", 44100), ("flac", "flac", 32000)],
)
@pytest.mark.parametrize("channels", [1, 2])
def test_decode_compressed_formats(audio, fmt, codec, rate, channels):
    src = sine(rate, 1.0, channels=channels, freq=440)
    back = audio.decode_audio(av_audio_file(fmt, codec, src, rate), label="out.x")
    w = back["waveform"]
    assert back["sample_rate"] == rate and w.shape[:2] == (1, channels)
    assert abs(w.shape[2] - rate) <= 0.1 * rate  # encoder delay/padding, no more
    assert _dominant_hz(w[0, 0], rate) == pytest.approx(440, abs=3)
    if channels == 2:
        assert _dominant_hz(w[0, 1], rate) == pytest.approx(880, abs=3)
    middle = w[..., w.shape[2] // 10 : -w.shape[2] // 10]  # lossy codecs ring where the tone is cut
    rms = middle.pow(2).mean(dim=2).sqrt().flatten().tolist()
    assert rms == pytest.approx([0.5 / 2**0.5] * channels, abs=0.03)  # amplitude 0.5 kept


def test_audio_track_of_a_video(audio, video):
    frames = torch.rand(12, 32, 32, 3)
    mp4 = video.encode_mp4(frames, 12, audio=_audio(sine(44100, 1.0, channels=2)[None], 44100))
    back = audio.decode_audio(mp4)
    assert back["sample_rate"] == 44100 and back["waveform"].shape[1] == 2


def test_video_without_sound_is_a_clear_error(audio, errors):
    with pytest.raises(errors.MediaDecodeError, match="no audio stream"):
        audio.decode_audio(av_video_file("mp4", "mpeg4", n=2), label="output 1")


def test_truncated_and_garbage_audio(audio, errors):
    flac = audio.encode_audio(_audio(sine(8000, 0.5)[None], 8000))[0]
    with pytest.raises(errors.MediaDecodeError, match="output 4"):
        audio.decode_audio(flac[:60], label="output 4")
    with pytest.raises(errors.UnsupportedMediaError):
        audio.decode_audio(b"\x00" * 100)


def test_sample_cap(audio, errors):
    flac = audio.encode_audio(_audio(torch.zeros(1, 2, 48000), 48000))[0]
    with pytest.raises(errors.MediaTooLargeError, match="max_samples"):
        audio.decode_audio(flac, max_samples=10_000)


@pytest.mark.parametrize(
    "value,match",
    [
        ({"waveform": torch.zeros(1, 2, 10)}, "sample_rate"),
        ({"waveform": torch.zeros(1, 9, 10), "sample_rate": 8000}, "channels"),
        ({"waveform": torch.zeros(1, 2, 0), "sample_rate": 8000}, "empty"),
        ({"waveform": torch.zeros(1, 2, 10), "sample_rate": 0}, "outside"),
        ({"waveform": [0.0], "sample_rate": 8000}, "tensor"),
    ],
)
def test_bad_audio_values(audio, errors, value, match):
    with pytest.raises(errors.MediaEncodeError, match=match):
        audio.encode_audio(value)


def test_multichannel_flac(audio):
    src = torch.rand(1, 6, 500) * 2 - 1
    back = audio.decode_audio(audio.encode_audio(_audio(src, 48000))[0])["waveform"]
    assert back.shape == (1, 6, 500) and (back - src).abs().max() <= 1 / 32768
