//! A stand-in camera: writes an MJPEG stream (concatenated JPEG frames) to stdout at a fixed rate, for
//! trying `edgecl watch` / `edgecl serve --source stdin` without a camera, and for measuring them.
//!
//! ```text
//! cargo run --release --example camera_feed -- --fps 30 --size 640x480 --frames 900 photos/*.jpg \
//!   | edgecl watch --state shop.edgecl --source stdin --quiet > /dev/null
//! ```
//! Frames cycle through the given images, each scaled to the frame size (a drawn test pattern when none
//! is given), encoded once at quality 85 and then sent on a fixed clock: a slow reader makes the writes
//! block, as a pipe from a real camera would. At the end it prints on stderr how many frames it sent and
//! at what rate.

use std::io::Write;
use std::time::{Duration, Instant};

use image::codecs::jpeg::JpegEncoder;
use image::imageops::FilterType;
use image::RgbImage;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut fps = 30.0f64;
    let (mut w, mut h) = (640u32, 480u32);
    let mut frames = 300usize;
    let mut paths = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--fps" => fps = args.next().ok_or("--fps N")?.parse()?,
            "--frames" => frames = args.next().ok_or("--frames N")?.parse()?,
            "--size" => {
                let s = args.next().ok_or("--size WxH")?;
                let (a, b) = s.split_once('x').ok_or("--size WxH, e.g. 640x480")?;
                (w, h) = (a.parse()?, b.parse()?);
            }
            _ => paths.push(a),
        }
    }
    if !(fps > 0.0 && fps.is_finite()) || w == 0 || h == 0 {
        return Err("--fps and --size must be positive".into());
    }
    let images: Vec<RgbImage> = if paths.is_empty() {
        vec![RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([
                (x * 255 / w) as u8,
                (y * 255 / h) as u8,
                (((x / 32) + (y / 32)) % 2 * 200) as u8,
            ])
        })]
    } else {
        paths
            .iter()
            .map(|p| {
                Ok(image::open(p)?
                    .resize_exact(w, h, FilterType::Triangle)
                    .into_rgb8())
            })
            .collect::<Result<_, Box<dyn std::error::Error>>>()?
    };
    let jpegs: Vec<Vec<u8>> = images
        .iter()
        .map(|img| {
            let mut out = Vec::new();
            JpegEncoder::new_with_quality(&mut out, 85).encode_image(img)?;
            Ok(out)
        })
        .collect::<Result<_, image::ImageError>>()?;
    let gap = Duration::from_secs_f64(1.0 / fps);
    let mut out = std::io::stdout().lock();
    let start = Instant::now();
    let mut sent = 0;
    for i in 0..frames {
        let due = start + gap * i as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        if out
            .write_all(&jpegs[i % jpegs.len()])
            .and_then(|()| out.flush())
            .is_err()
        {
            break; // the reader went away
        }
        sent += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "camera_feed: {sent} frames of {w}x{h} ({} KB each) in {secs:.1} s: {:.1} per second",
        jpegs.iter().map(Vec::len).sum::<usize>() / jpegs.len() / 1000,
        sent as f64 / secs
    );
    Ok(())
}
