"""Inputs as people have them: manifests saved by Windows editors, a key written twice, a phone photo taken
sideways, audio that is empty or cut off. Each is read as meant, or refused at validate with a sentence."""

from __future__ import annotations

import shutil
import wave
from pathlib import Path

import av
import numpy as np
import pytest
import yaml
from PIL import Image

from ltxcore.image_files import decode_rgb
from ltxcore.media import probe_audio
from manifests.load import ManifestError, load_manifest
from manifests.validate import validate
from ray_jobs.cli import main as cli_main

LESSON = Path(__file__).resolve().parent.parent / "manifests" / "examples" / "lesson"
MANIFEST = "defaults:\n  prompt: Ein Lehrer erklärt\nitems:\n  - id: grüße\n    audio: de.mp3\n"


@pytest.mark.parametrize("encoding", ["utf-16", "utf-8-sig"])
def test_a_manifest_saved_as_utf16_or_with_a_bom_reads_as_utf8(encoding, tmp_path):
    shutil.copy(LESSON / "de.mp3", tmp_path / "de.mp3")
    (tmp_path / "m.yaml").write_bytes(MANIFEST.encode(encoding))
    manifest = load_manifest(tmp_path / "m.yaml")
    assert manifest.entries[0].data["id"] == "grüße" and manifest.defaults["prompt"] == "Ein Lehrer erklärt"
    assert validate(manifest) == []


def test_a_manifest_in_another_encoding_is_refused_with_a_sentence(tmp_path):
    (tmp_path / "m.yaml").write_bytes(MANIFEST.encode("latin-1"))
    with pytest.raises(ManifestError, match=r"is not UTF-8 text \(byte 0xe4 at position \d+\); save the manifest as"):
        load_manifest(tmp_path / "m.yaml")


def test_a_key_written_twice_is_refused_naming_the_item_and_the_key(tmp_path):
    text = "items:\n  - id: a\n    audio: x.wav\n  - id: b\n    seed: 1\n    audio: y.wav\n    seed: 2\n"
    (tmp_path / "m.yaml").write_text(text)
    with pytest.raises(ManifestError) as refused:
        load_manifest(tmp_path / "m.yaml")
    assert str(refused.value).endswith(
        "item 'b' (line 4) has the key 'seed' twice (lines 5 and 7); YAML would keep only the last. Remove one."
    )


def test_a_phone_photo_taken_sideways_is_read_upright(tmp_path):
    """EXIF orientation 6: the camera stored the pixels turned 90 degrees; a viewer turns them back."""
    upright = np.zeros((40, 20, 3), np.uint8)  # a portrait: taller than wide, red at the top
    upright[:10] = (255, 0, 0)
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)  # as the sensor saw it: 20 tall, 40 wide
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 CW to display
    stored.save(tmp_path / "phone.jpg", exif=exif, quality=100)
    pixels = decode_rgb(str(tmp_path / "phone.jpg"))
    assert pixels.shape == (40, 20, 3)
    assert pixels[:8].mean(axis=(0, 1))[0] > 200 and pixels[-8:].mean() < 30  # red at the top, as shot


def test_an_empty_audio_file_is_refused_at_validate(tmp_path, capsys):
    with wave.open(str(tmp_path / "empty.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"")
    (tmp_path / "m.yaml").write_text(yaml.safe_dump({"items": [{"id": "e", "audio": "empty.wav", "prompt": "p"}]}))
    assert cli_main(["validate", str(tmp_path / "m.yaml")]) == 1
    out = capsys.readouterr().out
    assert "item 'e' (line 2), field 'audio': " in out and "empty.wav holds no audio: it is 0 seconds long." in out


def test_a_cut_off_file_is_as_long_as_what_it_holds_not_as_its_header_says(tmp_path):
    """A download cut short keeps the header of the whole file: the plan and the windows follow the audio that
    is there, so no window starts past its end."""
    whole = LESSON / "de.mp3"
    cut = tmp_path / "cut.mp3"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with av.open(str(cut)) as container:
        stream = container.streams.audio[0]
        assert stream.duration is not None and stream.time_base is not None
        header = float(stream.duration * stream.time_base)
    assert header == pytest.approx(probe_audio(str(whole)).duration)  # the header still says the whole length
    assert probe_audio(str(cut)).duration < 0.6 * header
