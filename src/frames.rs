//! Frame sources: a running camera as a stream of decoded RGB frames.
//!
//! | source | what it reads |
//! | --- | --- |
//! | `stdin` (or `-`) | concatenated JPEG frames (MJPEG), as `rpicam-vid --codec mjpeg -o -` and `ffmpeg -f mjpeg -` write them |
//! | `stdin:rgb:WxH` | raw 8-bit RGB frames of `W x H` pixels, back to back (`ffmpeg -f rawvideo -pix_fmt rgb24 -`) |
//! | `dir:PATH` | image files that another program drops into a folder (a motion camera, a timelapse), in order of arrival |
//! | `/dev/videoN`, `rtsp://...`, `http://...`, `libcamera`, `nvargus`, `gst:PIPELINE` | cameras through GStreamer ([`gst`], the `camera` feature) |
//!
//! A JPEG stream is split by walking its markers (segment lengths up to the scan, then the entropy-coded
//! data to the next marker that is not a restart or stuffed byte), so a thumbnail embedded in an EXIF
//! header does not end the frame early. Frames are decoded as they are, never re-encoded.
//!
//! [`Latest`] runs a source on its own thread and keeps only the newest frame: when the model is slower
//! than the camera, older frames are dropped (and counted), never queued without bound.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use image::RgbImage;

use crate::error::{Error, Result};
use crate::preprocess::Floor;

#[cfg(feature = "camera")]
pub mod gst;

/// Largest JPEG frame accepted from a stream (a 12-megapixel frame at high quality is about 6 MB).
pub const MAX_FRAME_BYTES: usize = 32 << 20;

/// One decoded frame.
#[derive(Debug, Clone)]
pub struct Frame {
    pub image: RgbImage,
    /// Position in the source's stream, from 0 (frames dropped by [`Latest`] leave gaps).
    pub index: u64,
    /// When the frame was read from the source.
    pub captured: Instant,
}

/// A stream of frames. `next` blocks until a frame is there and returns `None` when the stream ends.
pub trait FrameSource: Send {
    fn next_frame(&mut self) -> Result<Option<Frame>>;

    /// For a source whose `next_frame` waits in a poll loop (GStreamer): a flag that, once set, makes
    /// it return `Ok(None)` at its next poll, so a stalled camera can be stopped and started again.
    fn stop_flag(&self) -> Option<Arc<AtomicBool>> {
        None
    }
}

/// Opens a source by its spec (module docs). JPEG frames (stdin MJPEG, a folder's files) are decoded
/// no smaller than `floor`, the model's need ([`crate::preprocess::decode_scaled`]); raw and GStreamer
/// frames come at the size the source gives.
pub fn open(spec: &str, floor: Floor) -> Result<Box<dyn FrameSource>> {
    if spec == "stdin" || spec == "-" {
        return Ok(Box::new(Mjpeg::new(std::io::stdin()).with_floor(floor)));
    }
    if let Some(size) = spec.strip_prefix("stdin:rgb:") {
        let (w, h) = size
            .split_once('x')
            .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)))
            .filter(|&(w, h): &(u32, u32)| w > 0 && h > 0 && w <= 16_384 && h <= 16_384)
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "source {spec:?}: the frame size must be WxH, e.g. stdin:rgb:640x480"
                ))
            })?;
        return Ok(Box::new(RawRgb::new(std::io::stdin(), w, h)));
    }
    if let Some(dir) = spec.strip_prefix("dir:") {
        return Ok(Box::new(Folder::new(Path::new(dir))?.with_floor(floor)));
    }
    #[cfg(feature = "camera")]
    if let Some(pipeline) = gst::pipeline_for(spec) {
        return Ok(Box::new(gst::Gst::start(&pipeline)?));
    }
    let camera = spec.starts_with("/dev/video")
        || spec.starts_with("gst:")
        || spec.contains("://")
        || spec == "libcamera"
        || spec == "nvargus";
    if camera && !cfg!(feature = "camera") {
        return Err(Error::Invalid(format!(
            "source {spec:?} needs GStreamer: this edgecl was built without the camera feature \
             (cargo build --features camera); or pipe MJPEG into --source stdin"
        )));
    }
    Err(Error::Invalid(format!(
        "unknown source {spec:?}: use stdin (MJPEG), stdin:rgb:WxH, dir:PATH, /dev/videoN, \
         rtsp://..., http://..., libcamera, nvargus or gst:PIPELINE"
    )))
}

/// Concatenated JPEG frames from a byte stream.
pub struct Mjpeg<R> {
    reader: BufReader<R>,
    index: u64,
    floor: Floor,
}

impl<R: Read + Send> Mjpeg<R> {
    /// Frames decoded at full size; see [`Mjpeg::with_floor`].
    pub fn new(reader: R) -> Self {
        Mjpeg {
            reader: BufReader::with_capacity(1 << 16, reader),
            index: 0,
            floor: Floor::Full,
        }
    }

    /// Frames decoded no smaller than `floor` (a model's [`crate::preprocess::Preprocessor::floor`]).
    pub fn with_floor(mut self, floor: Floor) -> Self {
        self.floor = floor;
        self
    }

    /// The next frame's JPEG bytes, or `None` at the end of the stream.
    pub fn next_jpeg(&mut self) -> Result<Option<Vec<u8>>> {
        let r = &mut self.reader;
        // Skip to the start-of-image marker (tolerating garbage between frames, such as multipart
        // boundaries).
        let mut prev = 0u8;
        loop {
            let Some(b) = read_byte(r)? else {
                return Ok(None);
            };
            if prev == 0xFF && b == 0xD8 {
                break;
            }
            prev = b;
        }
        let mut out = vec![0xFF, 0xD8];
        // Whether the 0xFF of the next marker was already read (at the end of entropy-coded data).
        let mut have_ff = false;
        loop {
            if !have_ff && need(r)? != 0xFF {
                return Err(Error::Invalid(
                    "bad JPEG stream: expected a marker between segments".into(),
                ));
            }
            have_ff = false;
            let mut code = need(r)?;
            while code == 0xFF {
                code = need(r)?;
            }
            out.extend_from_slice(&[0xFF, code]);
            match code {
                0xD9 => return Ok(Some(out)),
                0x01 | 0xD0..=0xD7 => continue,
                _ => {}
            }
            let mut len = [0u8; 2];
            r.read_exact(&mut len).map_err(|_| truncated())?;
            let n = u16::from_be_bytes(len) as usize;
            if n < 2 {
                return Err(Error::Invalid("bad JPEG stream: segment length < 2".into()));
            }
            if out.len() + n > MAX_FRAME_BYTES {
                return Err(too_big());
            }
            out.extend_from_slice(&len);
            let start = out.len();
            out.resize(start + n - 2, 0);
            r.read_exact(&mut out[start..]).map_err(|_| truncated())?;
            if code == 0xDA {
                // Entropy-coded data, up to the next marker that is not a stuffed 0xFF00 or a restart.
                loop {
                    let b = need(r)?;
                    if b != 0xFF {
                        out.push(b);
                    } else if matches!(peek_byte(r)?, Some(0x00 | 0xD0..=0xD7)) {
                        out.push(0xFF);
                        out.push(need(r)?);
                    } else {
                        have_ff = true;
                        break;
                    }
                    if out.len() > MAX_FRAME_BYTES {
                        return Err(too_big());
                    }
                }
            }
        }
    }
}

fn truncated() -> Error {
    Error::Invalid("the stream ended inside a JPEG frame".into())
}

fn too_big() -> Error {
    Error::Invalid(format!("a JPEG frame is over {MAX_FRAME_BYTES} bytes"))
}

/// The next byte of a frame that must go on.
fn need(r: &mut impl BufRead) -> Result<u8> {
    read_byte(r)?.ok_or_else(truncated)
}

impl<R: Read + Send> FrameSource for Mjpeg<R> {
    fn next_frame(&mut self) -> Result<Option<Frame>> {
        let Some(jpeg) = self.next_jpeg()? else {
            return Ok(None);
        };
        let captured = Instant::now();
        let image = crate::preprocess::decode_scaled(&jpeg, self.floor)
            .map_err(|m| Error::Invalid(format!("frame {}: {m}", self.index)))?
            .into_rgb8();
        let index = self.index;
        self.index += 1;
        Ok(Some(Frame {
            image,
            index,
            captured,
        }))
    }
}

fn read_byte(r: &mut impl BufRead) -> Result<Option<u8>> {
    let b = peek_byte(r)?;
    if b.is_some() {
        r.consume(1);
    }
    Ok(b)
}

fn peek_byte(r: &mut impl BufRead) -> Result<Option<u8>> {
    loop {
        match r.fill_buf() {
            Ok(buf) => return Ok(buf.first().copied()),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io("<stream>", e)),
        }
    }
}

/// Raw RGB frames of a fixed size from a byte stream.
pub struct RawRgb<R> {
    reader: R,
    width: u32,
    height: u32,
    index: u64,
}

impl<R: Read + Send> RawRgb<R> {
    pub fn new(reader: R, width: u32, height: u32) -> Self {
        RawRgb {
            reader,
            width,
            height,
            index: 0,
        }
    }
}

impl<R: Read + Send> FrameSource for RawRgb<R> {
    fn next_frame(&mut self) -> Result<Option<Frame>> {
        let mut buf = vec![0u8; self.width as usize * self.height as usize * 3];
        let mut filled = 0;
        while filled < buf.len() {
            match self.reader.read(&mut buf[filled..]) {
                Ok(0) if filled == 0 => return Ok(None),
                Ok(0) => {
                    return Err(Error::Invalid(format!(
                        "the stream ended inside frame {} ({filled} of {} bytes)",
                        self.index,
                        buf.len()
                    )))
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io("<stream>", e)),
            }
        }
        let image = RgbImage::from_raw(self.width, self.height, buf).expect("w * h * 3 bytes");
        let index = self.index;
        self.index += 1;
        Ok(Some(Frame {
            image,
            index,
            captured: Instant::now(),
        }))
    }
}

/// Image files that appear in a folder, oldest first. A file is taken once its size has stayed the same
/// for one poll (a writer that is still writing it is waited for); files there before the source was
/// opened are ignored. The stream never ends.
pub struct Folder {
    dir: PathBuf,
    seen: std::collections::HashSet<PathBuf>,
    sizes: std::collections::HashMap<PathBuf, u64>,
    index: u64,
    poll: Duration,
    floor: Floor,
}

impl Folder {
    pub fn new(dir: &Path) -> Result<Folder> {
        let mut f = Folder {
            dir: dir.to_path_buf(),
            seen: Default::default(),
            sizes: Default::default(),
            index: 0,
            poll: Duration::from_millis(50),
            floor: Floor::Full,
        };
        f.seen = f.images()?.into_iter().map(|(p, _, _)| p).collect();
        Ok(f)
    }

    /// Files decoded no smaller than `floor`.
    pub fn with_floor(mut self, floor: Floor) -> Self {
        self.floor = floor;
        self
    }

    fn images(&self) -> Result<Vec<(PathBuf, std::time::SystemTime, u64)>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(|e| Error::io(&self.dir, e))? {
            let Ok(entry) = entry else { continue };
            let path = entry.path();
            let is_image = path.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                crate::embed::IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str())
            });
            let Ok(meta) = entry.metadata() else { continue };
            if is_image && meta.is_file() {
                let time = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
                out.push((path, time, meta.len()));
            }
        }
        out.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
        Ok(out)
    }
}

impl FrameSource for Folder {
    fn next_frame(&mut self) -> Result<Option<Frame>> {
        loop {
            for (path, _, len) in self.images()? {
                if self.seen.contains(&path) {
                    continue;
                }
                // Stable size over one poll: the writer is done.
                if self.sizes.insert(path.clone(), len) != Some(len) || len == 0 {
                    continue;
                }
                self.seen.insert(path.clone());
                self.sizes.remove(&path);
                let captured = Instant::now();
                let image = match crate::preprocess::decode_for(&path, self.floor) {
                    Ok(i) => i.into_rgb8(),
                    // A file that is not an image (or vanished) is skipped, as a camera's stray file.
                    Err(_) => continue,
                };
                let index = self.index;
                self.index += 1;
                return Ok(Some(Frame {
                    image,
                    index,
                    captured,
                }));
            }
            std::thread::sleep(self.poll);
        }
    }
}

/// What [`Latest`] shares between the reading thread and the consumer.
#[derive(Default)]
struct Slot {
    frame: Option<Frame>,
    /// Frames replaced before anyone took them.
    dropped: u64,
    /// Frames read from the source.
    read: u64,
    /// The source ended (`None`) or failed (`Some(message)`).
    ended: Option<Option<String>>,
}

/// Runs a source on its own thread, keeping only the newest frame (module docs).
pub struct Latest {
    shared: Arc<(Mutex<Slot>, Condvar)>,
    /// Set when the `Latest` is dropped: the reading thread stops after the frame in hand.
    stop: Arc<AtomicBool>,
    /// The source's own stop flag, for one blocked in a poll loop.
    source_stop: Option<Arc<AtomicBool>>,
}

impl Drop for Latest {
    /// Stops the reading thread, which drops (closes) the source: a camera is released for a restart.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(flag) = &self.source_stop {
            flag.store(true, Ordering::SeqCst);
        }
    }
}

/// What [`Latest::wait`] found.
#[derive(Debug)]
pub enum Next {
    Frame(Frame),
    /// No new frame within the timeout; the source is still running.
    Waiting,
    /// The source ended and every frame was taken.
    Ended,
    /// The source failed, with its message.
    Failed(String),
}

/// Counters of a [`Latest`] source.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Counts {
    pub read: u64,
    pub dropped: u64,
}

impl Latest {
    pub fn spawn(mut source: Box<dyn FrameSource>) -> Latest {
        let shared = Arc::new((Mutex::new(Slot::default()), Condvar::new()));
        let writer = Arc::clone(&shared);
        let stop = Arc::new(AtomicBool::new(false));
        let source_stop = source.stop_flag();
        let stopped = Arc::clone(&stop);
        std::thread::spawn(move || loop {
            let next = source.next_frame();
            if stopped.load(Ordering::SeqCst) {
                return;
            }
            let (lock, cv) = &*writer;
            let mut slot = lock.lock().expect("frame slot");
            match next {
                Ok(Some(frame)) => {
                    slot.read += 1;
                    if slot.frame.replace(frame).is_some() {
                        slot.dropped += 1;
                    }
                }
                Ok(None) => slot.ended = Some(None),
                Err(e) => slot.ended = Some(Some(e.to_string())),
            }
            let done = slot.ended.is_some();
            cv.notify_all();
            if done {
                return;
            }
        });
        Latest {
            shared,
            stop,
            source_stop,
        }
    }

    /// The newest frame not taken yet, waiting up to `timeout` for one; `Ok(None)` when the source has
    /// ended and every frame was taken, an error if it failed or stalled past `timeout`.
    pub fn take(&self, timeout: Duration) -> Result<Option<Frame>> {
        match self.wait(timeout) {
            Next::Frame(frame) => Ok(Some(frame)),
            Next::Ended => Ok(None),
            Next::Failed(message) => Err(Error::Invalid(format!("the source failed: {message}"))),
            Next::Waiting => Err(Error::Invalid(format!(
                "the source sent no frame for {:.1} s",
                timeout.as_secs_f64()
            ))),
        }
    }

    /// The newest frame not taken yet, waiting up to `timeout` for one, or what the source is doing
    /// instead. For loops that also serve other work while a camera is quiet.
    pub fn wait(&self, timeout: Duration) -> Next {
        let (lock, cv) = &*self.shared;
        let mut slot = lock.lock().expect("frame slot");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(frame) = slot.frame.take() {
                return Next::Frame(frame);
            }
            match &slot.ended {
                Some(None) => return Next::Ended,
                Some(Some(message)) => return Next::Failed(message.clone()),
                None => {}
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Next::Waiting;
            }
            slot = cv.wait_timeout(slot, left).expect("frame slot").0;
        }
    }

    pub fn counts(&self) -> Counts {
        let slot = self.shared.0.lock().expect("frame slot");
        Counts {
            read: slot.read,
            dropped: slot.dropped,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::codecs::jpeg::JpegEncoder;

    fn jpeg(shade: u8, w: u32, h: u32) -> Vec<u8> {
        let img = RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([shade, (x * 7 % 256) as u8, (y * 5 % 256) as u8])
        });
        let mut out = Vec::new();
        JpegEncoder::new_with_quality(&mut out, 85)
            .encode_image(&img)
            .unwrap();
        out
    }

    #[test]
    fn an_mjpeg_stream_splits_into_its_frames_even_with_garbage_between() {
        let frames: Vec<Vec<u8>> = (0..5).map(|i| jpeg(i * 50, 64 + i as u32, 48)).collect();
        let mut stream = b"junk".to_vec();
        for f in &frames {
            stream.extend_from_slice(f);
            stream.extend_from_slice(b"\r\n--boundary\r\n");
        }
        let mut src = Mjpeg::new(std::io::Cursor::new(stream));
        for (i, f) in frames.iter().enumerate() {
            assert_eq!(src.next_jpeg().unwrap().as_ref(), Some(f), "frame {i}");
        }
        assert_eq!(src.next_jpeg().unwrap(), None);
        let mut src = Mjpeg::new(std::io::Cursor::new(frames.concat()));
        let widths: Vec<u32> = std::iter::from_fn(|| src.next_frame().unwrap())
            .map(|f| f.image.width())
            .collect();
        assert_eq!(widths, [64, 65, 66, 67, 68]);
    }

    #[test]
    fn an_embedded_thumbnail_does_not_end_the_frame() {
        // An APP1 segment that carries a whole JPEG (as EXIF thumbnails do), then the real image.
        let thumb = jpeg(10, 8, 8);
        let main = jpeg(200, 40, 30);
        let mut app1 = vec![0xFF, 0xE1];
        app1.extend_from_slice(&((thumb.len() + 2) as u16).to_be_bytes());
        app1.extend_from_slice(&thumb);
        let mut frame = main[..2].to_vec();
        frame.extend_from_slice(&app1);
        frame.extend_from_slice(&main[2..]);
        let mut src = Mjpeg::new(std::io::Cursor::new([frame.clone(), main.clone()].concat()));
        assert_eq!(src.next_jpeg().unwrap(), Some(frame));
        assert_eq!(src.next_jpeg().unwrap(), Some(main));
    }

    #[test]
    fn a_truncated_frame_is_an_error_and_raw_rgb_frames_have_their_size() {
        let f = jpeg(1, 32, 32);
        let mut src = Mjpeg::new(std::io::Cursor::new(f[..f.len() - 10].to_vec()));
        assert!(src.next_jpeg().unwrap_err().to_string().contains("ended"));
        let mut raw = RawRgb::new(std::io::Cursor::new(vec![7u8; 4 * 2 * 3 * 2 + 5]), 4, 2);
        assert_eq!(
            raw.next_frame().unwrap().unwrap().image.get_pixel(3, 1).0,
            [7, 7, 7]
        );
        assert!(raw.next_frame().unwrap().is_some());
        assert!(raw
            .next_frame()
            .unwrap_err()
            .to_string()
            .contains("5 of 24"));
    }

    /// A source that produces frames faster than they are taken.
    struct Fast(u64);

    impl FrameSource for Fast {
        fn next_frame(&mut self) -> Result<Option<Frame>> {
            if self.0 == 200 {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(1));
            self.0 += 1;
            Ok(Some(Frame {
                image: RgbImage::new(1, 1),
                index: self.0 - 1,
                captured: Instant::now(),
            }))
        }
    }

    #[test]
    fn latest_drops_old_frames_and_counts_them() {
        let latest = Latest::spawn(Box::new(Fast(0)));
        let mut taken = Vec::new();
        while let Some(f) = latest.take(Duration::from_secs(5)).unwrap() {
            taken.push(f.index);
            std::thread::sleep(Duration::from_millis(20));
        }
        let c = latest.counts();
        assert_eq!(c.read, 200);
        assert!(taken.windows(2).all(|w| w[0] < w[1]), "{taken:?}");
        assert_eq!(c.dropped + taken.len() as u64, 200);
        assert!(c.dropped > 100, "{c:?}");
        assert_eq!(
            *taken.last().unwrap(),
            199,
            "the newest frame is never dropped"
        );
    }

    #[test]
    fn a_folder_source_yields_new_files_in_order_of_arrival() {
        let dir = tempfile::tempdir().unwrap();
        RgbImage::new(4, 4)
            .save(dir.path().join("old.png"))
            .unwrap();
        let mut src = Folder::new(dir.path()).unwrap();
        let writer = {
            let dir = dir.path().to_path_buf();
            std::thread::spawn(move || {
                for (i, name) in ["b.png", "a.png"].into_iter().enumerate() {
                    std::thread::sleep(Duration::from_millis(120));
                    RgbImage::new(5 + i as u32, 4).save(dir.join(name)).unwrap();
                }
            })
        };
        let w: Vec<u32> = (0..2)
            .map(|_| src.next_frame().unwrap().unwrap().image.width())
            .collect();
        writer.join().unwrap();
        assert_eq!(w, [5, 6]);
    }
}
