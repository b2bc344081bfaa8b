//! Camera sources through GStreamer (the `camera` feature): the media framework Raspberry Pi OS and
//! JetPack already use, so V4L2 webcams (MJPEG or YUYV), Pi CSI cameras (`libcamerasrc`), Jetson CSI
//! cameras (`nvarguscamerasrc`) and RTSP or HTTP MJPEG IP cameras all end in one `appsink` that hands over
//! packed RGB frames.
//!
//! | spec | pipeline before the RGB conversion |
//! | --- | --- |
//! | `/dev/videoN` | `v4l2src device=/dev/videoN ! decodebin` |
//! | `rtsp://...`, `http://...`, `https://...` | `uridecodebin uri=...` |
//! | `libcamera` | `libcamerasrc` |
//! | `nvargus` | `nvarguscamerasrc ! video/x-raw(memory:NVMM),width=1280,height=720 ! nvvidconv` |
//! | `gst:PIPELINE` | `PIPELINE` as written |
//!
//! Each is followed by `videoconvert ! video/x-raw,format=RGB ! appsink`. A source that cannot start fails
//! with the element and GStreamer's message; a stream that errors later ends the source with the same.

use std::time::Instant;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app::AppSink;
use image::RgbImage;

use super::{Frame, FrameSource};
use crate::error::{Error, Result};

/// The pipeline description for a source spec, or `None` if the spec is not a GStreamer one.
pub fn pipeline_for(spec: &str) -> Option<String> {
    let head = if spec.starts_with("/dev/video") {
        format!("v4l2src device={spec} ! decodebin")
    } else if ["rtsp://", "http://", "https://"]
        .iter()
        .any(|p| spec.starts_with(p))
    {
        format!("uridecodebin uri={spec}")
    } else if spec == "libcamera" {
        "libcamerasrc".to_string()
    } else if spec == "nvargus" {
        "nvarguscamerasrc ! video/x-raw(memory:NVMM),width=1280,height=720 ! nvvidconv".to_string()
    } else {
        spec.strip_prefix("gst:")?.to_string()
    };
    Some(format!(
        "{head} ! videoconvert ! video/x-raw,format=RGB ! appsink name=edgecl max-buffers=2 sync=false"
    ))
}

pub struct Gst {
    pipeline: gst::Pipeline,
    sink: AppSink,
    index: u64,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

fn gst_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("GStreamer {what}: {e}"))
}

impl Gst {
    /// Builds and starts the pipeline; waits until it plays (or fails, naming the element).
    pub fn start(description: &str) -> Result<Gst> {
        gst::init().map_err(|e| gst_error("init", e))?;
        let pipeline = gst::parse::launch(description)
            .map_err(|e| gst_error(&format!("pipeline {description:?}"), e))?
            .downcast::<gst::Pipeline>()
            .map_err(|_| gst_error("pipeline", "not a pipeline"))?;
        let sink = pipeline
            .by_name("edgecl")
            .and_then(|e| e.downcast::<AppSink>().ok())
            .ok_or_else(|| gst_error("pipeline", "no appsink named edgecl"))?;
        let source = Gst {
            pipeline,
            sink,
            index: 0,
            stop: Default::default(),
        };
        if source.pipeline.set_state(gst::State::Playing).is_err() {
            return Err(source.bus_error().unwrap_or_else(|| {
                gst_error("pipeline", format!("{description:?} would not start"))
            }));
        }
        // Wait for the state change, so a camera that is missing fails here, not at the first frame.
        let (result, _, _) = source.pipeline.state(gst::ClockTime::from_seconds(10));
        if result.is_err() {
            return Err(source.bus_error().unwrap_or_else(|| {
                gst_error("pipeline", format!("{description:?} did not start"))
            }));
        }
        Ok(source)
    }

    /// The first error on the pipeline's bus, with the element that posted it.
    fn bus_error(&self) -> Option<Error> {
        let bus = self.pipeline.bus()?;
        let msg = bus.pop_filtered(&[gst::MessageType::Error])?;
        let gst::MessageView::Error(err) = msg.view() else {
            return None;
        };
        let element = msg
            .src()
            .map(|s| s.path_string().to_string())
            .unwrap_or_else(|| "?".into());
        let debug = err.debug().map(|d| format!(" ({d})")).unwrap_or_default();
        Some(gst_error(
            &format!("element {element}"),
            format!("{}{debug}", err.error()),
        ))
    }
}

impl FrameSource for Gst {
    fn next_frame(&mut self) -> Result<Option<Frame>> {
        loop {
            if let Some(sample) = self
                .sink
                .try_pull_sample(gst::ClockTime::from_mseconds(200))
            {
                let captured = Instant::now();
                let caps = sample
                    .caps()
                    .ok_or_else(|| gst_error("sample", "no caps"))?;
                let s = caps
                    .structure(0)
                    .ok_or_else(|| gst_error("sample", "empty caps"))?;
                let (w, h) = (
                    s.get::<i32>("width").map_err(|e| gst_error("caps", e))? as usize,
                    s.get::<i32>("height").map_err(|e| gst_error("caps", e))? as usize,
                );
                let buffer = sample
                    .buffer()
                    .ok_or_else(|| gst_error("sample", "no buffer"))?;
                let map = buffer.map_readable().map_err(|e| gst_error("buffer", e))?;
                // Packed RGB rows are padded to a multiple of 4 bytes.
                let stride = (w * 3 + 3) & !3;
                if w == 0 || h == 0 || map.len() < stride * (h - 1) + w * 3 {
                    return Err(gst_error(
                        "sample",
                        format!("{} bytes for a {w}x{h} RGB frame", map.len()),
                    ));
                }
                let mut pixels = Vec::with_capacity(w * h * 3);
                for row in 0..h {
                    pixels.extend_from_slice(&map[row * stride..row * stride + w * 3]);
                }
                let image = RgbImage::from_raw(w as u32, h as u32, pixels).expect("w * h * 3");
                let index = self.index;
                self.index += 1;
                return Ok(Some(Frame {
                    image,
                    index,
                    captured,
                }));
            }
            if let Some(e) = self.bus_error() {
                return Err(e);
            }
            if self.sink.is_eos() || self.stop.load(std::sync::atomic::Ordering::SeqCst) {
                return Ok(None);
            }
        }
    }

    fn stop_flag(&self) -> Option<std::sync::Arc<std::sync::atomic::AtomicBool>> {
        Some(std::sync::Arc::clone(&self.stop))
    }
}

impl Drop for Gst {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}
