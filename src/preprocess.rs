//! Capture -> model input: decode (JPEG, PNG, BMP, PPM/PGM), resize and crop as the card says, normalise,
//! and lay out as NCHW f32.
//!
//! Resizing uses `fast_image_resize` (SIMD bilinear convolution) with the crop folded into the same pass,
//! so a 640x480 frame becomes a 224x224 tensor in one resize.

use std::path::Path;

use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
use image::{DynamicImage, GrayImage, RgbImage};

use crate::card::{ChannelOrder, InputSpec, ModelCard, Resize};
use crate::error::{Error, Result};

/// Largest image file edgecl reads (a 48-megapixel JPEG is about 20 MB).
pub const MAX_IMAGE_FILE_BYTES: u64 = 64 << 20;
/// Largest decoded image, in pixels per side and bytes of memory; a decoder asks before it allocates.
pub const MAX_IMAGE_SIDE: u32 = 16_384;
pub const MAX_DECODED_BYTES: u64 = 256 << 20;

/// Opens a file for reading only if it is a regular file. The open does not block (a FIFO with no
/// writer would block it forever) and the type is checked on the opened file, not on the name, so it
/// cannot be swapped in between.
pub fn open_regular(path: &Path) -> Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let f = options.open(path).map_err(|e| Error::io(path, e))?;
    let meta = f.metadata().map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        let kind = file_kind(&meta);
        return Err(Error::Invalid(format!(
            "{}: not a regular file ({kind}); edgecl reads only regular files",
            path.display()
        )));
    }
    Ok(f)
}

fn file_kind(meta: &std::fs::Metadata) -> &'static str {
    let t = meta.file_type();
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_char_device() || t.is_block_device() {
            return "a device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    if t.is_dir() {
        "a directory"
    } else {
        "not a plain file"
    }
}

/// Decodes an image file: a regular file of at most [`MAX_IMAGE_FILE_BYTES`], within the decode
/// limits. The format is guessed from the content, not the extension.
pub fn decode(path: &Path) -> Result<DynamicImage> {
    decode_for(path, Floor::Full)
}

/// Decodes an image file at no less than the size the model's resize needs: a JPEG at least eight times
/// that size in both directions is decoded at 1/8 scale in the DCT domain ([`decode_scaled`]). Anything
/// else is [`decode`].
pub fn decode_for(path: &Path, floor: Floor) -> Result<DynamicImage> {
    let bytes = read_image_file(path)?;
    decode_scaled(&bytes, floor).map_err(|message| Error::Image {
        path: path.to_path_buf(),
        message,
    })
}

/// The smallest decoded size a model's resize needs from an image of a given size (see
/// [`Preprocessor::floor`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Floor {
    /// Decode at full size (no scaling).
    Full,
    /// The decoded image must be at least width x height (the card's `stretch`).
    Size(u32, u32),
    /// The decoded image's shorter side must be at least this (the card's `shorter_side_crop`).
    Shorter(u32),
}

impl Floor {
    /// The floor of a model's input spec (see [`Preprocessor::floor`]).
    pub fn for_input(spec: &InputSpec) -> Floor {
        if std::env::var_os("EDGECL_JPEG_FULL_DECODE").is_some_and(|v| v == "1") {
            return Floor::Full;
        }
        match spec.resize {
            Resize::Stretch => Floor::Size(spec.width, spec.height),
            Resize::ShorterSideCrop => {
                Floor::Shorter(spec.resize_shorter.unwrap_or(spec.height.min(spec.width)))
            }
        }
    }

    /// Least (width, height) for an image of `w` x `h`, keeping its aspect ratio.
    fn least(self, w: u32, h: u32) -> (u32, u32) {
        let up = |a: u32, b: u32, c: u32| ((a as u64 * b as u64).div_ceil(c.max(1) as u64)) as u32;
        match self {
            Floor::Full => (w, h),
            Floor::Size(fw, fh) => (fw, fh),
            Floor::Shorter(s) if w <= h => (s, up(h, s, w)),
            Floor::Shorter(s) => (up(w, s, h), s),
        }
    }
}

/// Decodes an in-memory image at no less than `floor` (see [`decode_for`]). A baseline or progressive
/// 8-bit gray or colour JPEG (SOF0-2) at least eight times the floor in both directions is decoded at 1/8
/// scale by `jpeg-decoder` in the DCT domain, which skips most of the inverse DCT and the colour
/// conversion of pixels the resize would average away, and keeps a 12-megapixel photo from ever existing
/// at full size in memory. Every other image goes through [`decode_bytes`]. The decode limits are the
/// same on both paths.
pub fn decode_scaled(bytes: &[u8], floor: Floor) -> std::result::Result<DynamicImage, String> {
    let Some(sof) = jpeg_frame_header(bytes) else {
        return decode_bytes(bytes);
    };
    let (w, h) = (sof.width as u32, sof.height as u32);
    let (fw, fh) = floor.least(w, h);
    // Only the 1/8 reduction: `jpeg-decoder` decodes about 1.5x slower than the `image` crate's decoder
    // (zune-jpeg), so at 1/2 and 1/4 it saved nothing (a 1080p frame at 1/4: 13.7 ms against 13.1 ms
    // whole; `cargo bench --bench preprocess -- capture`); at 1/8 it is faster (a 12-megapixel photo:
    // 64.9 against 89.5 ms) and decodes 1/64 of the pixels.
    const K: u32 = 8;
    let (sw, sh) = (w.div_ceil(K), h.div_ceil(K));
    if sw < fw || sh < fh {
        return decode_bytes(bytes);
    }
    let usable = matches!(sof.marker, 0xC0..=0xC2)
        && sof.precision == 8
        && matches!(sof.components, 1 | 3)
        && w <= MAX_IMAGE_SIDE
        && h <= MAX_IMAGE_SIDE
        && w as u64 * h as u64 * sof.components as u64 <= MAX_DECODED_BYTES;
    if !usable {
        return decode_bytes(bytes);
    }
    let mut decoder = jpeg_decoder::Decoder::new(bytes);
    decoder.set_max_decoding_buffer_size(MAX_DECODED_BYTES as usize);
    let (ow, oh) = decoder
        .scale(sw as u16, sh as u16)
        .map_err(|e| e.to_string())?;
    let (ow, oh) = (ow as u32, oh as u32);
    if ow < fw || oh < fh {
        return decode_bytes(bytes);
    }
    let pixels = decoder.decode().map_err(|e| e.to_string())?;
    let image = if sof.components == 1 {
        GrayImage::from_raw(ow, oh, pixels).map(DynamicImage::ImageLuma8)
    } else {
        RgbImage::from_raw(ow, oh, pixels).map(DynamicImage::ImageRgb8)
    };
    image.ok_or_else(|| format!("the JPEG decoder returned too few pixels for {ow}x{oh}"))
}

/// A JPEG's frame header (SOFn), found by walking the marker segments from SOI.
struct FrameHeader {
    marker: u8,
    precision: u8,
    height: u16,
    width: u16,
    components: u8,
}

fn jpeg_frame_header(bytes: &[u8]) -> Option<FrameHeader> {
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return None;
    }
    let mut at = 2;
    loop {
        // Fill bytes (0xFF runs) may precede a marker.
        while bytes.get(at) == Some(&0xFF) && bytes.get(at + 1) == Some(&0xFF) {
            at += 1;
        }
        let (&ff, &marker) = (bytes.get(at)?, bytes.get(at + 1)?);
        if ff != 0xFF {
            return None;
        }
        let len = u16::from_be_bytes([*bytes.get(at + 2)?, *bytes.get(at + 3)?]) as usize;
        let segment = bytes.get(at + 4..at + 2 + len)?;
        match marker {
            // SOF0-15 except DHT (C4), JPG (C8) and DAC (CC).
            0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => {
                return (segment.len() >= 6).then(|| FrameHeader {
                    marker,
                    precision: segment[0],
                    height: u16::from_be_bytes([segment[1], segment[2]]),
                    width: u16::from_be_bytes([segment[3], segment[4]]),
                    components: segment[5],
                });
            }
            // Start of scan or end of image before any frame header.
            0xDA | 0xD9 => return None,
            _ if len < 2 => return None,
            _ => at += 2 + len,
        }
    }
}

/// Reads an image file: a regular file of at most [`MAX_IMAGE_FILE_BYTES`].
fn read_image_file(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let f = open_regular(path)?;
    let len = f.metadata().map_err(|e| Error::io(path, e))?.len();
    if len > MAX_IMAGE_FILE_BYTES {
        return Err(Error::Image {
            path: path.to_path_buf(),
            message: format!(
                "{len} bytes is over the {MAX_IMAGE_FILE_BYTES}-byte limit for an image file"
            ),
        });
    }
    let mut bytes = Vec::with_capacity(len as usize);
    f.take(MAX_IMAGE_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    Ok(bytes)
}

/// Decodes an in-memory image (a frame from a stream, a test fixture), within the decode limits.
pub fn decode_bytes(bytes: &[u8]) -> std::result::Result<DynamicImage, String> {
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| e.to_string())?;
    if reader.format().is_none() {
        return Err("unrecognised image format".into());
    }
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_DECODED_BYTES);
    reader.limits(limits);
    reader.decode().map_err(|e| e.to_string())
}

/// Turns images into the card's input tensor. Holds the resizer and scratch buffers so a stream of
/// captures does not allocate per image.
pub struct Preprocessor {
    spec: InputSpec,
    resizer: Resizer,
    rgb: RgbImage,
    gray: GrayImage,
}

impl Preprocessor {
    pub fn new(card: &ModelCard) -> Self {
        let spec = card.input.clone();
        let (w, h) = (spec.width, spec.height);
        Preprocessor {
            spec,
            resizer: Resizer::new(),
            rgb: RgbImage::new(w, h),
            gray: GrayImage::new(w, h),
        }
    }

    /// The smallest decoded size this model's resize needs: what [`decode_for`] may scale a JPEG down to
    /// without losing anything the resize keeps. The environment variable `EDGECL_JPEG_FULL_DECODE=1`
    /// turns the scaled decoding off (for comparing the two, benches/README.md).
    pub fn floor(&self) -> Floor {
        Floor::for_input(&self.spec)
    }

    /// Number of f32 values one image becomes (C x H x W).
    pub fn len(&self) -> usize {
        self.spec.channel_order.channels() * self.spec.height as usize * self.spec.width as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes one image's CHW tensor into `out` (`out.len() == self.len()`).
    pub fn write(&mut self, image: &DynamicImage, out: &mut [f32]) -> Result<()> {
        if out.len() != self.len() {
            return Err(Error::Dimension {
                what: "input buffer",
                expected: self.len(),
                actual: out.len(),
            });
        }
        if image.width() == 0 || image.height() == 0 {
            return Err(Error::Invalid("image has no pixels".into()));
        }
        let options = self.options(image.width(), image.height());
        let plane = self.spec.height as usize * self.spec.width as usize;
        let s = &self.spec;
        // One table per channel: every u8 value's normalised f32, so the loops below are lookups.
        let table = |c: usize| -> [f32; 256] {
            std::array::from_fn(|p| (p as f32 * s.pixel_scale - s.mean[c]) / s.std[c])
        };
        match s.channel_order {
            ChannelOrder::Gray => {
                // Borrow an image that is already 8-bit gray; convert anything else.
                let converted;
                let src = match image {
                    DynamicImage::ImageLuma8(g) => g,
                    other => {
                        converted = other.to_luma8();
                        &converted
                    }
                };
                self.resizer
                    .resize(src, &mut self.gray, &options)
                    .map_err(|e| Error::Invalid(format!("resize failed: {e}")))?;
                let t = table(0);
                for (o, &p) in out.iter_mut().zip(self.gray.as_raw()) {
                    *o = t[p as usize];
                }
            }
            order => {
                let converted;
                let src = match image {
                    DynamicImage::ImageRgb8(rgb) => rgb,
                    other => {
                        converted = other.to_rgb8();
                        &converted
                    }
                };
                self.resizer
                    .resize(src, &mut self.rgb, &options)
                    .map_err(|e| Error::Invalid(format!("resize failed: {e}")))?;
                // Destination channel c takes source channel map[c].
                let map = if order == ChannelOrder::Bgr {
                    [2, 1, 0]
                } else {
                    [0, 1, 2]
                };
                let tables = [table(0), table(1), table(2)];
                let (r, rest) = out.split_at_mut(plane);
                let (g, b) = rest.split_at_mut(plane);
                for (i, px) in self.rgb.as_raw().chunks_exact(3).enumerate() {
                    r[i] = tables[0][px[map[0]] as usize];
                    g[i] = tables[1][px[map[1]] as usize];
                    b[i] = tables[2][px[map[2]] as usize];
                }
            }
        }
        Ok(())
    }

    /// The resize pass: the source rectangle that maps onto the model's input.
    fn options(&self, w: u32, h: u32) -> ResizeOptions {
        let opts = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
        match self.spec.resize {
            Resize::Stretch => opts,
            Resize::ShorterSideCrop => {
                let shorter = self
                    .spec
                    .resize_shorter
                    .unwrap_or(self.spec.height.min(self.spec.width));
                // Scale so the shorter side becomes `shorter`, then take the centred out_w x out_h window;
                // in source pixels that window is (out / scale) wide.
                let scale = shorter as f64 / w.min(h) as f64;
                let cw = (self.spec.width as f64 / scale).min(w as f64);
                let ch = (self.spec.height as f64 / scale).min(h as f64);
                opts.crop((w as f64 - cw) / 2.0, (h as f64 - ch) / 2.0, cw, ch)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card(order: ChannelOrder, resize: Resize, size: u32) -> ModelCard {
        let channels = order.channels();
        serde_json::from_value(serde_json::json!({
            "format": crate::card::CARD_FORMAT, "name": "t", "onnx": "t.onnx", "sha256": "0".repeat(64),
            "input": {"name": "input", "layout": "NCHW", "channel_order": order, "height": size, "width": size,
                      "pixel_scale": 1.0, "mean": vec![100.0; channels], "std": vec![2.0; channels],
                      "resize": resize, "resize_shorter": size * 2},
            "features": {"output": "features", "dim": 4}
        }))
        .unwrap()
    }

    #[test]
    fn normalises_and_lays_out_channels_first() {
        // A uniform image survives any resize unchanged, so every value is (pixel - mean) / std.
        let img = DynamicImage::ImageRgb8(RgbImage::from_pixel(40, 30, image::Rgb([110, 120, 90])));
        let mut p = Preprocessor::new(&card(ChannelOrder::Rgb, Resize::Stretch, 8));
        let mut out = vec![0.0; p.len()];
        p.write(&img, &mut out).unwrap();
        assert!(out[..64].iter().all(|&v| v == 5.0));
        assert!(out[64..128].iter().all(|&v| v == 10.0));
        assert!(out[128..].iter().all(|&v| v == -5.0));
        let mut p = Preprocessor::new(&card(ChannelOrder::Bgr, Resize::Stretch, 8));
        p.write(&img, &mut out).unwrap();
        assert_eq!((out[0], out[64], out[128]), (-5.0, 10.0, 5.0));
    }

    #[test]
    fn shorter_side_crop_keeps_the_centre() {
        // 300x100: left third red, middle third green, right third blue. The centre crop of a square
        // model input sees only the green third.
        let img = RgbImage::from_fn(300, 100, |x, _| match x / 100 {
            0 => image::Rgb([255, 0, 0]),
            1 => image::Rgb([0, 255, 0]),
            _ => image::Rgb([0, 0, 255]),
        });
        let mut p = Preprocessor::new(&card(ChannelOrder::Rgb, Resize::ShorterSideCrop, 16));
        let mut out = vec![0.0; p.len()];
        p.write(&DynamicImage::ImageRgb8(img), &mut out).unwrap();
        let green = (255.0 - 100.0) / 2.0;
        assert!(
            out[256..512].iter().all(|&v| (v - green).abs() < 1e-3),
            "green plane"
        );
        assert!(out[..256].iter().all(|&v| v == -50.0), "no red");
    }

    #[test]
    fn gray_models_get_one_channel() {
        let img = DynamicImage::ImageLuma8(GrayImage::from_pixel(5, 5, image::Luma([104])));
        let mut p = Preprocessor::new(&card(ChannelOrder::Gray, Resize::Stretch, 4));
        let mut out = vec![0.0; p.len()];
        p.write(&img, &mut out).unwrap();
        assert_eq!(out, vec![2.0; 16]);
    }

    #[test]
    fn garbage_bytes_are_an_error() {
        assert!(decode_bytes(b"not an image at all").is_err());
        assert!(decode_bytes(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0]).is_err());
    }

    /// A camera-like scene: smooth shading, a few hard edges and some fine texture, as JPEG.
    fn scene(w: u32, h: u32, gray: bool) -> Vec<u8> {
        let img = RgbImage::from_fn(w, h, |x, y| {
            let (u, v) = (x as f32 / w as f32, y as f32 / h as f32);
            let disc = ((u - 0.5).powi(2) + (v - 0.45).powi(2)).sqrt() < 0.2;
            let stripes = ((x / (w / 64).max(1) + y / (h / 48).max(1)) % 2) as f32 * 30.0;
            let r = if disc {
                220.0
            } else {
                40.0 + 150.0 * u + stripes
            };
            let g = if disc { 60.0 } else { 70.0 + 120.0 * v };
            let b = 90.0 + 80.0 * (1.0 - u) * v + stripes;
            image::Rgb([r as u8, g as u8, b as u8])
        });
        let mut out = Vec::new();
        let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90);
        if gray {
            DynamicImage::ImageRgb8(img)
                .to_luma8()
                .write_with_encoder(enc)
                .unwrap();
        } else {
            img.write_with_encoder(enc).unwrap();
        }
        out
    }

    #[test]
    fn a_large_jpeg_is_decoded_at_the_scale_the_model_needs_and_no_smaller() {
        let photo = scene(2400, 2048, false);
        let dims = |bytes: &[u8], floor| {
            let i = decode_scaled(bytes, floor).unwrap();
            (i.width(), i.height())
        };
        // Shorter side 256: 1/8 gives exactly 256.
        assert_eq!(dims(&photo, Floor::Shorter(256)), (300, 256));
        assert_eq!(dims(&photo, Floor::Size(224, 224)), (300, 256));
        // 1/8 would give 256 < 257: decoded whole.
        assert_eq!(dims(&photo, Floor::Shorter(257)), (2400, 2048));
        assert_eq!(dims(&photo, Floor::Size(1000, 100)), (2400, 2048));
        assert_eq!(dims(&photo, Floor::Full), (2400, 2048));
        // A 1080p frame for a 256 shorter side is decoded whole (1/8 gives 135); for a 32x32 model, at 1/8.
        let frame = scene(1920, 1080, false);
        assert_eq!(dims(&frame, Floor::Shorter(256)), (1920, 1080));
        assert_eq!(dims(&frame, Floor::Size(32, 32)), (240, 135));
        // Portrait: the shorter side is the width.
        assert_eq!(
            dims(&scene(2048, 2400, false), Floor::Shorter(256)),
            (256, 300)
        );
        // Gray stays gray.
        let g = decode_scaled(&scene(2048, 2048, true), Floor::Shorter(256)).unwrap();
        assert!(matches!(g, DynamicImage::ImageLuma8(_)) && g.width() == 256);
    }

    #[test]
    fn the_scaled_decode_gives_the_model_nearly_the_same_input() {
        // The model's input from a 2400x2048 JPEG decoded at 1/8 against decoded whole, in units of the
        // normalised input (here pixel / 255 - 0.5, so 1/255 is one grey level).
        let mut c = card(ChannelOrder::Rgb, Resize::ShorterSideCrop, 224);
        c.input.pixel_scale = 1.0 / 255.0;
        c.input.mean = vec![0.5; 3];
        c.input.std = vec![1.0; 3];
        c.input.resize_shorter = Some(256);
        let mut p = Preprocessor::new(&c);
        let bytes = scene(2400, 2048, false);
        let (mut full, mut scaled) = (vec![0.0; p.len()], vec![0.0; p.len()]);
        p.write(&decode_scaled(&bytes, Floor::Full).unwrap(), &mut full)
            .unwrap();
        let small = decode_scaled(&bytes, p.floor()).unwrap();
        assert_eq!(small.width(), 300);
        p.write(&small, &mut scaled).unwrap();
        let diffs: Vec<f32> = full
            .iter()
            .zip(&scaled)
            .map(|(a, b)| (a - b).abs())
            .collect();
        let mean = diffs.iter().sum::<f32>() / diffs.len() as f32 * 255.0;
        let max = diffs.iter().cloned().fold(0.0, f32::max) * 255.0;
        eprintln!("mean |diff| {mean:.2} grey levels, max {max:.1}");
        // The two paths average with different filters (the 8x8 block mean of the DCT against a bilinear
        // convolution); 2 grey levels is under 1% of the range.
        assert!(mean < 2.0, "mean |diff| {mean:.2} grey levels");
    }

    #[test]
    fn odd_or_hostile_jpeg_headers_fall_back_or_fail_cleanly() {
        // Lossless (SOF3) with precision 0: not for the scaled decoder; the main decoder refuses it.
        let mut lossless = vec![
            0xFF, 0xD8, 0xFF, 0xC3, 0, 11, 0, 0x10, 0, 0x10, 0, 1, 1, 0x11, 0,
        ];
        lossless.extend_from_slice(&[0xFF, 0xD9]);
        assert!(decode_scaled(&lossless, Floor::Shorter(2)).is_err());
        // A real JPEG cut in the middle of its scan, large enough to be scaled: an error, no panic.
        let big = scene(2048, 2048, false);
        // (Either answer is acceptable; a panic fails the test.)
        let _ = decode_scaled(&big[..big.len() / 2], Floor::Shorter(256));
        // A segment length running past the end, and no SOF at all.
        assert!(decode_scaled(&[0xFF, 0xD8, 0xFF, 0xE0, 0xFF, 0xFF, 1], Floor::Full).is_err());
        assert!(jpeg_frame_header(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 2, 0xFF, 0xD9]).is_none());
        // Dimensions over the decode limit are refused before anything is allocated.
        let mut huge = big.clone();
        let sof = (2..huge.len() - 1)
            .find(|&i| huge[i] == 0xFF && huge[i + 1] == 0xC0)
            .unwrap();
        huge[sof + 5..sof + 9].copy_from_slice(&[0xFF, 0xF0, 0xFF, 0xF0]);
        let err = decode_scaled(&huge, Floor::Shorter(256)).unwrap_err();
        assert!(
            err.contains("limit") || err.contains("Limit") || err.contains("large"),
            "{err}"
        );
    }
}
