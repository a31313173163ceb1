"""Media layer: ComfyUI values (IMAGE, MASK, AUDIO, frames for VIDEO) <-> file bytes.

Depends on torch, numpy, Pillow and PyAV only; never on ComfyUI's modules (a host adapter
wraps ComfyUI types around these functions). Modules:

- `sniff`        what a file really is, from its first bytes; RunningHub upload fileType
- `limits`       the upload size limit, checked before sending
- `pixels`       float <-> uint8 pixel conversion shared by the image and video code
- `image_encode` IMAGE (+ MASK) -> PNG bytes for upload
- `image_decode` one downloaded image file -> its slot of an (IMAGE, MASK) batch
- `image_batch`  many downloaded image files -> one (IMAGE, MASK) batch, size policies:
                 the one image decode path
- `images`       the three above under one name
- `audio`        AUDIO <-> FLAC/WAV bytes, downloaded audio bytes -> AUDIO
- `video`        probe a downloaded video (its file, or bytes); frames (+ audio) -> MP4 bytes
- `errors`       the exceptions, each saying what the user can do

Importing this package imports nothing heavy; import the submodule you need.
"""
