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
    decode_bytes(&bytes).map_err(|message| Error::Image {
        path: path.to_path_buf(),
        message,
    })
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
}
