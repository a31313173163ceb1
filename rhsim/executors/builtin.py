"""The built-in executor: a few core ComfyUI node types done with Pillow, numpy and PyAV.

Values flow between nodes as ComfyUI's do, minus torch:
IMAGE = float32 array [batch, height, width, 3] in 0..1; MASK = float32 [batch, height, width];
AUDIO = {"waveform": float32 [batch, channels, samples], "sample_rate": int};
VIDEO = `Video` (uint8 frames [t, h, w, 3], fps, optional AUDIO).
Validation follows ComfyUI's `validate_prompt` (error types, node_errors shape), execution
follows its order (output nodes by id, dependencies first, each node once).
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Callable

import numpy as np
from PIL import Image, ImageOps, ImageSequence
from PIL.PngImagePlugin import PngInfo

from ..progress import play_builtin
from .base import (
    Cancelled,
    Executor,
    NodeFailure,
    OutputFile,
    PromptInvalid,
    RunContext,
    exception_type_name,
    failed_reason,
    format_traceback,
)

log = logging.getLogger("rhsim.executor.builtin")

UPSCALE_METHODS = ["nearest-exact", "bilinear", "area", "bicubic", "lanczos"]
_PIL_RESAMPLE = {
    "nearest-exact": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "area": Image.Resampling.BOX,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}
MAX_RESOLUTION = 16384


# ---------------------------------------------------------------------------- schema
@dataclass
class In:
    type: str  # INT FLOAT STRING BOOLEAN COMBO IMAGE MASK AUDIO VIDEO *
    default: Any = None
    min: float | None = None
    max: float | None = None
    options: list | None = None

    def config(self) -> list:
        if self.type == "COMBO":
            return [self.options]
        extra = {k: v for k, v in (("default", self.default), ("min", self.min), ("max", self.max)) if v is not None}
        return [self.type, extra] if extra else [self.type]


@dataclass
class NodeType:
    class_type: str
    required: dict[str, In]
    returns: tuple[str, ...]
    fn: Callable[..., Any]
    optional: dict[str, In] = field(default_factory=dict)
    output_node: bool = False
    # extra value checks: (ctx-less) callable(inputs, storage) -> list of (input_name, message)
    check: Callable[[dict, Any], list[tuple[str, str]]] | None = None


@dataclass
class Video:
    frames: np.ndarray  # uint8 [t, h, w, 3]
    fps: Fraction
    audio: dict | None = None


NODE_TYPES: dict[str, NodeType] = {}


def node(class_type, required, returns, optional=None, output_node=False, check=None):
    def register(fn):
        NODE_TYPES[class_type] = NodeType(class_type, required, tuple(returns), fn, optional or {}, output_node, check)
        return fn
    return register


# ---------------------------------------------------------------------------- helpers
def _to_pil(frame: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(np.rint(frame * 255.0), 0, 255).astype(np.uint8))


def _from_pil(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0


def _resize_batch(images: np.ndarray, width: int, height: int, method: str) -> np.ndarray:
    resample = _PIL_RESAMPLE.get(method, Image.Resampling.BILINEAR)
    return np.stack([_from_pil(_to_pil(f).resize((width, height), resample)) for f in images])


def _input_file(storage, name: str, kind: str):
    path = storage.resolve_input(name)
    if path is None:
        raise FileNotFoundError(f"{kind} file not found: {name}")
    return path


def _check_input_file(field_name: str, label: str):
    def check(inputs: dict, storage) -> list[tuple[str, str]]:
        value = inputs.get(field_name)
        if isinstance(value, str) and storage.resolve_input(value) is None:
            return [(field_name, f"Invalid {label} file: {value}")]
        return []
    return check


def _save_output(ctx: RunContext, node_id: str, prefix: str, ext: str, writer) -> OutputFile:
    name = ctx.storage.next_output_name(prefix, ext)
    path = ctx.storage.output_path(ctx.task_id, name)
    writer(path)
    return OutputFile(node_id=node_id, path=path, name=name)


# ---------------------------------------------------------------------------- images
@node("LoadImage", {"image": In("STRING")}, ("IMAGE", "MASK"),
      optional={"upload": In("STRING")}, check=_check_input_file("image", "image"))
def load_image(ctx, node_id, image, upload=None):
    path = _input_file(ctx.storage, image, "image")
    img = Image.open(path)
    images, masks, size = [], [], None
    for frame in ImageSequence.Iterator(img):
        frame = ImageOps.exif_transpose(frame)
        if frame.mode == "I":
            frame = frame.point(lambda i: i * (1 / 255))
        rgb = frame.convert("RGB")
        if size is None:
            size = rgb.size
        if rgb.size != size:
            continue
        images.append(_from_pil(rgb))
        if "A" in frame.getbands():
            alpha = np.asarray(frame.getchannel("A"), dtype=np.float32) / 255.0
            masks.append(1.0 - alpha)
        elif frame.mode == "P" and "transparency" in frame.info:
            alpha = np.asarray(frame.convert("RGBA").getchannel("A"), dtype=np.float32) / 255.0
            masks.append(1.0 - alpha)
        else:
            masks.append(np.zeros((64, 64), dtype=np.float32))
        if img.format == "MPO":
            break
    if len({m.shape for m in masks}) > 1:
        masks = [m if m.shape[:2] == (size[1], size[0]) else np.zeros((size[1], size[0]), np.float32) for m in masks]
    return np.stack(images), np.stack(masks)


@node("ImageInvert", {"image": In("IMAGE")}, ("IMAGE",))
def image_invert(ctx, node_id, image):
    return (1.0 - image,)


@node("ImageScaleBy", {"image": In("IMAGE"), "upscale_method": In("COMBO", options=UPSCALE_METHODS),
                       "scale_by": In("FLOAT", 1.0, 0.01, 8.0)}, ("IMAGE",))
def image_scale_by(ctx, node_id, image, upscale_method, scale_by):
    height, width = image.shape[1:3]
    new_w, new_h = round(width * scale_by), round(height * scale_by)
    if new_w < 1 or new_h < 1:
        raise ValueError(f"scale_by {scale_by} gives an empty image ({new_w}x{new_h})")
    return (_resize_batch(image, new_w, new_h, upscale_method),)


@node("ImageScale", {"image": In("IMAGE"), "upscale_method": In("COMBO", options=UPSCALE_METHODS),
                     "width": In("INT", 512, 0, MAX_RESOLUTION), "height": In("INT", 512, 0, MAX_RESOLUTION),
                     "crop": In("COMBO", options=["disabled", "center"])}, ("IMAGE",))
def image_scale(ctx, node_id, image, upscale_method, width, height, crop):
    if width == 0 and height == 0:
        return (image,)
    src_h, src_w = image.shape[1:3]
    if width == 0:
        width = max(1, round(src_w * height / src_h))
    elif height == 0:
        height = max(1, round(src_h * width / src_w))
    if crop == "center":
        old_aspect, new_aspect = src_w / src_h, width / height
        x = y = 0
        if old_aspect > new_aspect:
            x = round((src_w - src_w * (new_aspect / old_aspect)) / 2)
        elif old_aspect < new_aspect:
            y = round((src_h - src_h * (old_aspect / new_aspect)) / 2)
        image = image[:, y:src_h - y, x:src_w - x]
    return (_resize_batch(image, width, height, upscale_method),)


@node("EmptyImage", {"width": In("INT", 512, 1, MAX_RESOLUTION), "height": In("INT", 512, 1, MAX_RESOLUTION),
                     "batch_size": In("INT", 1, 1, 4096), "color": In("INT", 0, 0, 0xFFFFFF)}, ("IMAGE",))
def empty_image(ctx, node_id, width, height, batch_size, color):
    rgb = np.array([(color >> 16) & 0xFF, (color >> 8) & 0xFF, color & 0xFF], dtype=np.float32) / 255.0
    return (np.broadcast_to(rgb, (batch_size, height, width, 3)).astype(np.float32),)


@node("SimNoiseImage", {"seed": In("INT", 0, 0, 0xFFFFFFFFFFFFFFFF), "width": In("INT", 64, 1, MAX_RESOLUTION),
                        "height": In("INT", 64, 1, MAX_RESOLUTION), "batch_size": In("INT", 1, 1, 64)}, ("IMAGE",))
def sim_noise_image(ctx, node_id, seed, width, height, batch_size):
    rng = np.random.default_rng(seed)
    return (rng.random((batch_size, height, width, 3), dtype=np.float32),)


@node("MaskToImage", {"mask": In("MASK")}, ("IMAGE",))
def mask_to_image(ctx, node_id, mask):
    return (np.repeat(mask.reshape((-1, mask.shape[-2], mask.shape[-1]))[..., None], 3, axis=-1),)


@node("ImageToMask", {"image": In("IMAGE"), "channel": In("COMBO", options=["red", "green", "blue", "alpha"])}, ("MASK",))
def image_to_mask(ctx, node_id, image, channel):
    index = ["red", "green", "blue", "alpha"].index(channel)
    if index >= image.shape[-1]:
        raise IndexError(f"index {index} is out of bounds for dimension 3 with size {image.shape[-1]}")
    return (image[..., index].copy(),)


@node("InvertMask", {"mask": In("MASK")}, ("MASK",))
def invert_mask(ctx, node_id, mask):
    return (1.0 - mask,)


def _png_writer(frame: np.ndarray, ctx: RunContext):
    def write(path):
        info = None
        if ctx.add_metadata:
            info = PngInfo()
            info.add_text("prompt", json.dumps(ctx.graph))
        _to_pil(frame).save(path, format="PNG", pnginfo=info, compress_level=4)
    return write


@node("SaveImage", {"images": In("IMAGE"), "filename_prefix": In("STRING", "ComfyUI")}, (), output_node=True)
def save_image(ctx, node_id, images, filename_prefix):
    return [_save_output(ctx, node_id, filename_prefix, "png", _png_writer(frame, ctx)) for frame in images]


@node("PreviewImage", {"images": In("IMAGE")}, (), output_node=True)
def preview_image(ctx, node_id, images):
    return []  # temp files are not API outputs on RunningHub


# ---------------------------------------------------------------------------- text and primitives
@node("PrimitiveString", {"value": In("STRING", "")}, ("STRING",))
def primitive_string(ctx, node_id, value):
    return (value,)


@node("PrimitiveInt", {"value": In("INT", 0, -0x7FFFFFFFFFFFFFFF, 0x7FFFFFFFFFFFFFFF)}, ("INT",))
def primitive_int(ctx, node_id, value):
    return (value,)


@node("PrimitiveFloat", {"value": In("FLOAT", 0.0)}, ("FLOAT",))
def primitive_float(ctx, node_id, value):
    return (value,)


@node("PrimitiveBoolean", {"value": In("BOOLEAN", False)}, ("BOOLEAN",))
def primitive_boolean(ctx, node_id, value):
    return (value,)


@node("StringConcatenate", {"string_a": In("STRING", ""), "string_b": In("STRING", ""),
                            "delimiter": In("STRING", "")}, ("STRING",))
def string_concatenate(ctx, node_id, string_a, string_b, delimiter):
    return (delimiter.join([string_a, string_b]),)


@node("SaveText", {"text": In("STRING", ""), "filename_prefix": In("STRING", "text/ComfyUI")}, (), output_node=True)
def save_text(ctx, node_id, text, filename_prefix):
    out = _save_output(ctx, node_id, filename_prefix, "txt", lambda p: p.write_text(text, encoding="utf-8"))
    out.text = text
    return [out]


@node("SimFail", {"message": In("STRING", "simulated failure"),
                  "exception_type": In("COMBO", options=["RuntimeError", "ValueError", "KeyError", "TypeError",
                                                        "FileNotFoundError", "MemoryError"])},
      ("IMAGE",), optional={"image": In("IMAGE")})
def sim_fail(ctx, node_id, message, exception_type, image=None):
    raise {"RuntimeError": RuntimeError, "ValueError": ValueError, "KeyError": KeyError, "TypeError": TypeError,
           "FileNotFoundError": FileNotFoundError, "MemoryError": MemoryError}[exception_type](message)


# ---------------------------------------------------------------------------- audio
def _decode_audio(container) -> dict:
    import av

    stream = container.streams.audio[0]
    resampler = av.AudioResampler(format="fltp")
    chunks, rate = [], stream.rate or stream.codec_context.sample_rate
    for frame in container.decode(stream):
        for out in resampler.resample(frame):
            chunks.append(out.to_ndarray())
            rate = out.sample_rate
    for out in resampler.resample(None):
        chunks.append(out.to_ndarray())
    if not chunks:
        raise ValueError("no audio samples decoded")
    waveform = np.concatenate(chunks, axis=1).astype(np.float32)
    return {"waveform": waveform[None], "sample_rate": int(rate)}


@node("LoadAudio", {"audio": In("STRING")}, ("AUDIO",), optional={"upload": In("STRING")},
      check=_check_input_file("audio", "audio"))
def load_audio(ctx, node_id, audio, upload=None):
    import av

    with av.open(str(_input_file(ctx.storage, audio, "audio"))) as container:
        return (_decode_audio(container),)


@node("SimSineAudio", {"frequency": In("FLOAT", 440.0, 1.0, 20000.0), "seconds": In("FLOAT", 1.0, 0.01, 600.0),
                       "sample_rate": In("INT", 44100, 8000, 192000), "channels": In("INT", 1, 1, 2)}, ("AUDIO",))
def sim_sine_audio(ctx, node_id, frequency, seconds, sample_rate, channels):
    t = np.arange(int(seconds * sample_rate), dtype=np.float64) / sample_rate
    wave = (0.5 * np.sin(2 * np.pi * frequency * t)).astype(np.float32)
    return ({"waveform": np.tile(wave, (1, channels, 1)), "sample_rate": sample_rate},)


_AUDIO_FORMATS = {  # ext: (container format, codec, sample format)
    "flac": ("flac", "flac", "s16"),
    "wav": ("wav", "pcm_s16le", "s16"),
    "mp3": ("mp3", "libmp3lame", "fltp"),
}


def _write_audio(path, waveform: np.ndarray, sample_rate: int, ext: str, bitrate: int | None = None):
    import av

    fmt, codec, sample_fmt = _AUDIO_FORMATS[ext]
    channels = waveform.shape[0]
    layout = "mono" if channels == 1 else "stereo"
    if channels > 2:
        waveform = waveform[:2]
    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=sample_rate, layout=layout)
        if bitrate:
            stream.bit_rate = bitrate
        clipped = np.clip(waveform, -1.0, 1.0)
        if sample_fmt == "s16":
            packed = (clipped.T * 32767.0).round().astype(np.int16).reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(packed, format="s16", layout=layout)
        else:
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(clipped, dtype=np.float32), format="fltp", layout=layout)
        frame.sample_rate = sample_rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def _save_audio(ctx, node_id, audio, prefix, ext, bitrate=None):
    waveform, rate = np.asarray(audio["waveform"], dtype=np.float32), int(audio["sample_rate"])
    return [
        _save_output(ctx, node_id, prefix, ext, lambda p, w=w: _write_audio(p, w, rate, ext, bitrate))
        for w in waveform
    ]


@node("SaveAudio", {"audio": In("AUDIO"), "filename_prefix": In("STRING", "audio/ComfyUI")}, (),
      optional={"format": In("COMBO", options=["flac", "wav"])}, output_node=True)
def save_audio(ctx, node_id, audio, filename_prefix, format="flac"):
    return _save_audio(ctx, node_id, audio, filename_prefix, format)


@node("SaveAudioMP3", {"audio": In("AUDIO"), "filename_prefix": In("STRING", "audio/ComfyUI"),
                       "quality": In("COMBO", options=["V0", "128k", "320k"])}, (), output_node=True)
def save_audio_mp3(ctx, node_id, audio, filename_prefix, quality):
    bitrate = {"V0": 245_000, "128k": 128_000, "320k": 320_000}[quality]
    return _save_audio(ctx, node_id, audio, filename_prefix, "mp3", bitrate)


# ---------------------------------------------------------------------------- video
@node("LoadVideo", {"file": In("STRING")}, ("VIDEO",), optional={"upload": In("STRING")},
      check=_check_input_file("file", "video"))
def load_video(ctx, node_id, file, upload=None):
    import av

    path = str(_input_file(ctx.storage, file, "video"))
    with av.open(path) as container:
        if not container.streams.video:
            raise ValueError(f"no video stream in {file}")
        vstream = container.streams.video[0]
        fps = vstream.average_rate or vstream.guessed_rate or Fraction(24)
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(vstream)]
    audio = None
    with av.open(path) as container:
        if container.streams.audio:
            audio = _decode_audio(container)
    if not frames:
        raise ValueError(f"no frames decoded from {file}")
    return (Video(np.stack(frames), Fraction(fps), audio),)


@node("GetVideoComponents", {"video": In("VIDEO")}, ("IMAGE", "AUDIO", "FLOAT"))
def get_video_components(ctx, node_id, video):
    audio = video.audio or {"waveform": np.zeros((1, 1, 0), np.float32), "sample_rate": 44100}
    return (video.frames.astype(np.float32) / 255.0, audio, float(video.fps))


@node("CreateVideo", {"images": In("IMAGE"), "fps": In("FLOAT", 30.0, 1.0, 120.0)}, ("VIDEO",),
      optional={"audio": In("AUDIO")})
def create_video(ctx, node_id, images, fps, audio=None):
    frames = np.clip(np.rint(images * 255.0), 0, 255).astype(np.uint8)
    return (Video(frames, Fraction(fps).limit_denominator(1001), audio),)


def _write_video(path, video: Video):
    import av

    frames = video.frames
    h, w = frames.shape[1] - frames.shape[1] % 2, frames.shape[2] - frames.shape[2] % 2
    if h < 2 or w < 2:
        raise ValueError(f"video frames of {frames.shape[2]}x{frames.shape[1]} are too small to encode")
    frames = frames[:, :h, :w]
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=video.fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"crf": "18", "preset": "veryfast"}
        astream = None
        if video.audio is not None and np.asarray(video.audio["waveform"]).shape[-1] > 0:
            wave = np.asarray(video.audio["waveform"], np.float32)[0]
            layout = "mono" if wave.shape[0] == 1 else "stereo"
            astream = container.add_stream("aac", rate=int(video.audio["sample_rate"]), layout=layout)
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
        if astream is not None:
            aframe = av.AudioFrame.from_ndarray(np.ascontiguousarray(np.clip(wave[:2], -1, 1)), format="fltp", layout=layout)
            aframe.sample_rate = int(video.audio["sample_rate"])
            for packet in astream.encode(aframe):
                container.mux(packet)
            for packet in astream.encode(None):
                container.mux(packet)


@node("SaveVideo", {"video": In("VIDEO"), "filename_prefix": In("STRING", "video/ComfyUI"),
                    "format": In("COMBO", options=["auto", "mp4"]), "codec": In("COMBO", options=["auto", "h264"])},
      (), output_node=True)
def save_video(ctx, node_id, video, filename_prefix, format, codec):
    return [_save_output(ctx, node_id, filename_prefix, "mp4", lambda p: _write_video(p, video))]


# ---------------------------------------------------------------------------- validation
_LINK_COMPATIBLE = {("INT", "FLOAT")}


def _error(kind: str, message: str, details: str = "", **extra) -> dict:
    return {"type": kind, "message": message, "details": details, "extra_info": extra}


def _convert(spec: In, name: str, value: Any) -> tuple[Any, dict | None]:
    """ComfyUI's widget value conversion and range checks."""
    if spec.type in ("INT", "FLOAT", "STRING", "BOOLEAN"):
        try:
            if spec.type == "INT":
                if isinstance(value, float) and not value.is_integer():
                    raise ValueError(f"invalid literal for int(): {value!r}")
                value = int(value)
            elif spec.type == "FLOAT":
                value = float(value)
            elif spec.type == "STRING":
                if isinstance(value, (dict, list)):
                    raise ValueError("not a string")
                value = str(value)
            elif spec.type == "BOOLEAN":
                if isinstance(value, str):
                    if value.lower() not in ("true", "false"):
                        raise ValueError(f"not a boolean: {value!r}")
                    value = value.lower() == "true"
                else:
                    value = bool(value)
        except (TypeError, ValueError) as exc:
            return None, _error(
                "invalid_input_type", f"Failed to convert an input value to a {spec.type} value",
                f"{name}, {value}, {exc}", input_name=name, input_config=spec.config(),
                received_value=value, exception_message=str(exc),
            )
        if spec.min is not None and value < spec.min:
            return None, _error("value_smaller_than_min", f"Value {value} smaller than min of {spec.min}",
                                name, input_name=name, input_config=spec.config(), received_value=value)
        if spec.max is not None and value > spec.max:
            return None, _error("value_bigger_than_max", f"Value {value} bigger than max of {spec.max}",
                                name, input_name=name, input_config=spec.config(), received_value=value)
        return value, None
    if spec.type == "COMBO":
        if value not in spec.options:
            return None, _error("value_not_in_list", "Value not in list",
                                f"{name}: '{value}' not in {spec.options}", input_name=name,
                                input_config=spec.config(), received_value=value)
        return value, None
    # a link type given a literal value
    return None, _error("invalid_input_type", f"Input '{name}' must be linked to a {spec.type} output",
                        f"{name}, {str(value)[:80]}", input_name=name, input_config=spec.config(),
                        received_value=value)


class BuiltinExecutor(Executor):
    name = "builtin"

    def __init__(self, storage):
        self.storage = storage

    # -- validation -----------------------------------------------------------
    def _validate_node(self, graph: dict, node_id: str, cache: dict, errors: dict, storage) -> bool:
        if node_id in cache:
            return cache[node_id]
        cache[node_id] = True  # guards cycles; corrected below
        node = graph[node_id]
        spec = NODE_TYPES[node["class_type"]]
        inputs = node.get("inputs", {})
        node_errors, ok = [], True
        for name, in_spec in {**spec.required, **spec.optional}.items():
            required = name in spec.required
            if name not in inputs:
                if required:
                    node_errors.append(_error("required_input_missing", "Required input is missing", name,
                                              input_name=name))
                continue
            value = inputs[name]
            if isinstance(value, list):
                if len(value) != 2 or not isinstance(value[1], int) or isinstance(value[1], bool):
                    node_errors.append(_error("bad_linked_input",
                                              "Bad linked input, must be a length-2 list of [node_id, slot_index]",
                                              name, input_name=name, input_config=in_spec.config(),
                                              received_value=value))
                    continue
                source_id = str(value[0])
                if source_id not in graph:
                    node_errors.append(_error("exception_during_inner_validation",
                                              "Exception when validating inner node",
                                              f"{name}: linked node {source_id!r} does not exist",
                                              input_name=name, input_config=in_spec.config(),
                                              received_value=value))
                    continue
                source_spec = NODE_TYPES.get(graph[source_id]["class_type"])
                if source_spec is None:
                    ok = False
                    continue
                slot = value[1]
                received = source_spec.returns[slot] if 0 <= slot < len(source_spec.returns) else None
                expected = "STRING" if in_spec.type == "COMBO" else in_spec.type
                if received is None or (received != expected and expected != "*"
                                        and (received, expected) not in _LINK_COMPATIBLE):
                    node_errors.append(_error("return_type_mismatch", "Return type mismatch between linked nodes",
                                              f"{name}, received_type({received}) mismatch input_type({expected})",
                                              input_name=name, input_config=in_spec.config(),
                                              received_type=received, linked_node=value))
                    continue
                if not self._validate_node(graph, source_id, cache, errors, storage):
                    ok = False
            else:
                _, err = _convert(in_spec, name, value)
                if err:
                    node_errors.append(err)
        if spec.check and not node_errors:
            for name, message in spec.check(inputs, storage):
                node_errors.append(_error("custom_validation_failed", "Custom validation failed for node",
                                          f"{name} - {message}", input_name=name,
                                          input_config=spec.required.get(name, In("STRING")).config(),
                                          received_value=inputs.get(name)))
        if node_errors:
            errors[node_id] = {"errors": node_errors, "dependent_outputs": [], "class_type": spec.class_type}
            ok = False
        cache[node_id] = ok
        return ok

    def validate(self, graph: dict, storage=None) -> dict:
        """ComfyUI's validate_prompt, reduced: returns promptTips; raises PromptInvalid.
        Input files are looked up in `storage` (the creating account's view), default all."""
        storage = storage or self.storage
        for node_id, node in graph.items():
            class_type = node["class_type"]
            if class_type not in NODE_TYPES:
                title = node.get("_meta", {}).get("title", class_type)
                err = _error("missing_node_type",
                             f"Node '{title}' not found. The custom node may not be installed.",
                             f"Node ID '#{node_id}'", node_id=node_id, class_type=class_type, node_title=title)
                raise PromptInvalid({
                    "result": False, "error": err, "outputs_to_execute": [],
                    "node_errors": {node_id: {"errors": [err], "dependent_outputs": [], "class_type": class_type}},
                })
        outputs = sorted((nid for nid, n in graph.items() if NODE_TYPES[n["class_type"]].output_node), key=_id_key)
        if not outputs:
            err = _error("prompt_no_outputs", "Prompt has no outputs")
            raise PromptInvalid({"result": False, "error": err, "outputs_to_execute": [], "node_errors": {}})
        cache, node_errors, good = {}, {}, []
        for out_id in outputs:
            if self._validate_node(graph, out_id, cache, node_errors, storage):
                good.append(out_id)
        for nid, entry in node_errors.items():
            entry["dependent_outputs"] = [o for o in outputs if nid in self._ancestors(graph, o)]
        if not good:
            err = _error("prompt_outputs_failed_validation", "Prompt outputs failed validation")
            raise PromptInvalid({"result": False, "error": err, "outputs_to_execute": [], "node_errors": node_errors})
        return {"result": True, "error": None, "outputs_to_execute": good, "node_errors": node_errors}

    @staticmethod
    def _ancestors(graph: dict, node_id: str) -> set[str]:
        seen, stack = set(), [node_id]
        while stack:
            nid = stack.pop()
            if nid in seen or nid not in graph:
                continue
            seen.add(nid)
            for value in graph[nid].get("inputs", {}).values():
                if isinstance(value, list) and len(value) == 2:
                    stack.append(str(value[0]))
        return seen

    def submit(self, graph, task_id, client_id, storage=None):
        tips = self.validate(graph, storage)
        return tips, {"outputs": tips["outputs_to_execute"], "prompt_id": str(uuid.uuid4())}

    def play(self, ctx, files, failed_node, seconds, steps):
        """The graph ran at once; its ComfyUI-like progress is spread over the running time."""
        order = ctx.executed + ([failed_node] if failed_node and failed_node not in ctx.executed else [])
        play_builtin(ctx.feed, ctx.graph, order, files, seconds, steps, ctx.cancel_event, failed=bool(failed_node))

    # -- execution ------------------------------------------------------------
    def run(self, ctx: RunContext) -> list[OutputFile]:
        graph = ctx.graph
        results: dict[str, tuple] = {}
        executed: list[str] = ctx.executed
        files: list[OutputFile] = []

        def evaluate(node_id: str):
            if node_id in results:
                return results[node_id]
            node = graph[node_id]
            spec = NODE_TYPES[node["class_type"]]
            kwargs, bad_value = {}, None
            for name, value in node.get("inputs", {}).items():
                in_spec = spec.required.get(name) or spec.optional.get(name)
                if in_spec is None:
                    continue  # ComfyUI ignores inputs a node does not declare
                if isinstance(value, list):
                    value = evaluate(str(value[0]))[value[1]]
                    if in_spec.type not in ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"):
                        kwargs[name] = value
                        continue
                kwargs[name], err = _convert(in_spec, name, value)
                if err and bad_value is None:
                    bad_value = f"{err['message']}: {err['details']}"
            ctx.check_cancel()
            try:
                if bad_value:
                    raise ValueError(bad_value)
                out = spec.fn(ctx, node_id, **kwargs)
            except Cancelled:
                raise
            except Exception as exc:  # noqa: BLE001 - any node error fails the task, like ComfyUI
                log.info("task %s: node %s (%s) failed: %s", ctx.task_id, node_id, spec.class_type, exc)
                raise NodeFailure(failed_reason(
                    node_id, spec.class_type, exception_type_name(exc), str(exc),
                    format_traceback(exc), _format_inputs(kwargs), list(executed),
                )) from exc
            executed.append(node_id)
            if spec.output_node:
                files.extend(out or [])
                out = ()
            results[node_id] = tuple(out)
            return results[node_id]

        outputs = (ctx.state or {}).get("outputs") or sorted(
            (nid for nid, n in graph.items() if NODE_TYPES[n["class_type"]].output_node), key=_id_key)
        for out_id in outputs:
            evaluate(out_id)
        return files


def _id_key(node_id: str):
    return (0, int(node_id), "") if str(node_id).isdigit() else (1, 0, str(node_id))


def _format_inputs(kwargs: dict) -> dict:
    formatted = {}
    for name, value in kwargs.items():
        if isinstance(value, np.ndarray):
            formatted[name] = [f"ndarray(shape={list(value.shape)}, dtype={value.dtype})"]
        elif isinstance(value, Video):
            formatted[name] = [f"Video(frames={list(value.frames.shape)}, fps={float(value.fps)})"]
        elif isinstance(value, dict) and "waveform" in value:
            formatted[name] = [f"Audio(waveform={list(np.shape(value['waveform']))}, sample_rate={value['sample_rate']})"]
        else:
            formatted[name] = [value]
    return formatted
