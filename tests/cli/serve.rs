//! `edgecl serve` over HTTP on an ephemeral port: the API, the token, a live MJPEG camera on stdin,
//! a bounded load test that checks every acknowledged write, and `kill -9` during learning.
//!
//! All on the tiny model with tract (no library, nothing outside the repo).

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{class_names, draw, jpeg_frames, s, tiny};

/// A running `edgecl serve` and its address; killed when dropped.
struct Server {
    child: Child,
    base: String,
    log: Arc<std::sync::Mutex<String>>,
}

impl Server {
    fn start(state: &Path, extra: &[&str]) -> Server {
        Server::start_with(state, extra, Stdio::null())
    }

    fn start_with(state: &Path, extra: &[&str], stdin: Stdio) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_edgecl"))
            .args(["serve", "--state", s(state), "--model", s(&tiny())])
            .args(["--runtime", "tract", "--threads", "1"])
            .args(extra)
            .stdin(stdin)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("edgecl serve starts");
        let (tx, rx) = std::sync::mpsc::channel();
        let log = Arc::new(std::sync::Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                sink.lock().unwrap().push_str(&format!("{line}\n"));
                if let Some(url) = line.strip_prefix("edgecl serve: listening on ") {
                    let _ = tx.send(url.trim_end_matches('/').to_string());
                }
            }
        });
        let base = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no listening line; stderr: {}", log.lock().unwrap()));
        Server { child, base, log }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

/// One request; the status and the JSON answer (every answer of the API is JSON).
fn call(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    body: Option<&[u8]>,
    token: Option<&str>,
) -> (u16, Value) {
    let mut req = http_request(method, url);
    if let Some(t) = token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    let mut r = match body {
        Some(b) => agent.run(req.body(b.to_vec()).unwrap()),
        None => agent.run(req.body(Vec::new()).unwrap()),
    }
    .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = r.status().as_u16();
    let text = r.body_mut().read_to_string().unwrap();
    let value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{method} {url} -> {status}: not JSON ({e}): {text}"));
    (status, value)
}

/// Sends only the headers of a POST that declares a `length`-byte body, and reads the server's answer
/// (empty if the server waited for the body: it is given a second, then the socket is shut).
fn headers_only(server: &Server, path: &str, length: usize) -> String {
    let addr = server
        .base
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let mut tcp = std::net::TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    write!(
        tcp,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: image/png\r\n\
         Content-Length: {length}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tcp.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                break
            }
            Err(e) => panic!("POST {path}: {e}"),
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

fn http_request(method: &str, url: &str) -> ureq::http::request::Builder {
    ureq::http::Request::builder().method(method).uri(url)
}

fn png(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

fn json_body(v: Value) -> Vec<u8> {
    serde_json::to_vec(&v).unwrap()
}

#[test]
fn the_api_learns_classifies_renames_merges_and_forgets_and_the_cli_sees_it() {
    let t = tempfile::tempdir().unwrap();
    let state = t.path().join("s.edgecl");
    let server = Server::start(&state, &["--listen", "127.0.0.1:0"]);
    let a = agent();
    let red = draw(&t.path().join("red"), 0, 6, 60);
    let blue = draw(&t.path().join("blue"), 1, 6, 61);
    let green = draw(&t.path().join("green"), 2, 6, 62);

    let (st, health) = call(&a, "GET", &server.url("/healthz"), None, None);
    assert_eq!(
        (st, health["status"].as_str()),
        (200, Some("ok")),
        "{health}"
    );
    // Classifying before any class exists is a clear error, not a crash.
    let (st, e) = call(
        &a,
        "POST",
        &server.url("/api/classify"),
        Some(&png(&red[0])),
        None,
    );
    assert_eq!(st, 400, "{e}");
    assert!(e["error"].as_str().unwrap().contains("class"), "{e}");

    for (name, files) in [("red", &red), ("blue", &blue), ("green", &green)] {
        for (i, f) in files[..5].iter().enumerate() {
            let (st, r) = call(
                &a,
                "POST",
                &server.url(&format!("/api/classes/{name}/captures")),
                Some(&png(f)),
                None,
            );
            assert_eq!(st, 200, "{r}");
            assert_eq!(r["class"], name);
            assert_eq!(r["captures"], i as u64 + 1, "{r}");
            assert_eq!(r["stored"], true);
        }
    }
    // Every acknowledged write is in the file, for another process to read.
    assert_eq!(class_names(&state), ["red", "blue", "green"]);

    for (name, files) in [("red", &red), ("blue", &blue), ("green", &green)] {
        let (st, p) = call(
            &a,
            "POST",
            &server.url("/api/classify?top=2"),
            Some(&png(&files[5])),
            None,
        );
        assert_eq!(st, 200, "{p}");
        assert_eq!(p["label"], name, "{p}");
        assert_eq!(p["top"].as_array().unwrap().len(), 2);
    }
    let (_, classes) = call(&a, "GET", &server.url("/api/classes"), None, None);
    assert_eq!(classes["classes"][1]["name"], "blue");
    assert_eq!(classes["classes"][1]["captures"], 5);

    // Rename (percent-encoded names work), merge, forget.
    let (st, r) = call(
        &a,
        "POST",
        &server.url("/api/classes/blue/rename"),
        Some(&json_body(json!({"to": "bleu café"}))),
        None,
    );
    assert_eq!(st, 200, "{r}");
    assert_eq!(class_names(&state), ["red", "bleu café", "green"]);
    let (st, r) = call(
        &a,
        "POST",
        &server.url("/api/merge"),
        Some(&json_body(
            json!({"from": ["bleu café", "green"], "into": "cool"}),
        )),
        None,
    );
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["captures"], 10, "{r}");
    assert_eq!(class_names(&state), ["red", "cool"]);
    let (st, r) = call(&a, "DELETE", &server.url("/api/classes/cool"), None, None);
    assert_eq!((st, &r["classes"]), (200, &json!(["red"])), "{r}");

    // A class learnt by the CLI in another process shows up in the server within a second.
    let dir = t.path().join("blue-cli");
    std::fs::create_dir_all(&dir).unwrap();
    for f in &blue {
        std::fs::copy(f, dir.join(f.file_name().unwrap())).unwrap();
    }
    let out = super::learn_cmd(&state, "blue", &dir).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, c) = call(&a, "GET", &server.url("/api/classes"), None, None);
        if c["classes"].as_array().unwrap().len() == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the server never saw the CLI's class: {c}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // Bad requests: clear JSON errors that change nothing.
    let before = std::fs::read(&state).unwrap();
    for (method, path, body, want) in [
        ("POST", "/api/classify", Some(b"not an image".to_vec()), 400),
        ("POST", "/api/classify", None, 400),
        ("POST", "/api/classify?top=0", Some(png(&red[0])), 400),
        ("POST", "/api/classify?top=x", Some(png(&red[0])), 400),
        ("POST", "/api/classes/red/captures", None, 400),
        (
            "POST",
            "/api/classes/red/captures",
            Some(b"\x89PNG\r\n\x1a\nbroken".to_vec()),
            400,
        ),
        // No camera on this server.
        ("POST", "/api/classes/red/captures?frames=3", None, 400),
        (
            "POST",
            "/api/classes/%E2%80%AEevil/captures",
            Some(png(&red[0])),
            400,
        ),
        ("DELETE", "/api/classes/nothing", None, 404),
        (
            "POST",
            "/api/classes/nothing/rename",
            Some(json_body(json!({"to": "x"}))),
            404,
        ),
        (
            "POST",
            "/api/classes/red/rename",
            Some(b"{not json".to_vec()),
            400,
        ),
        (
            "POST",
            "/api/classes/red/rename",
            Some(json_body(json!({"to": "x", "extra": 1}))),
            422,
        ),
        (
            "POST",
            "/api/merge",
            Some(json_body(json!({"from": [], "into": "x"}))),
            400,
        ),
        ("GET", "/api/stream.mjpg", None, 404),
        ("GET", "/no/such/route", None, 404),
    ] {
        let (st, e) = call(&a, method, &server.url(path), body.as_deref(), None);
        assert_eq!(st, want, "{method} {path}: {e}");
        assert!(
            !e["error"].as_str().unwrap().is_empty(),
            "{method} {path}: {e}"
        );
    }
    // Too large a body is refused from its declared length, before the client sends any of it
    // (a client that wrote the whole body first could see its connection closed under it).
    let small = Server::start(
        &t.path().join("small.edgecl"),
        &["--listen", "127.0.0.1:0", "--max-body", "1000000"],
    );
    let answer = headers_only(&small, "/api/classify", 2 << 20);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("--max-body 1000000"), "{answer}");
    let answer = headers_only(&small, "/api/classify", 1000);
    assert_eq!(
        answer, "",
        "a body under the limit was answered before it was sent"
    );
    assert_eq!(
        std::fs::read(&state).unwrap(),
        before,
        "a bad request changed the state"
    );

    let (_, info) = call(&a, "GET", &server.url("/api/info"), None, None);
    assert_eq!(
        info["state"]["classes"].as_array().unwrap().len(),
        2,
        "{info}"
    );
    assert_eq!(info["camera"]["status"], "none");
    assert_eq!(info["runtime"]["runtime"], "tract", "{info}");
    let mut r = a.get(server.url("/metrics")).call().unwrap();
    let metrics = r.body_mut().read_to_string().unwrap();
    for name in [
        "edgecl_classes 2",
        "edgecl_state_bytes ",
        "edgecl_job_latency_seconds_bucket{",
        "edgecl_http_requests_total{route=\"/api/classify\",status=\"2xx\"} 3",
        "edgecl_frames_read_total 0",
    ] {
        assert!(metrics.contains(name), "{name} missing from:\n{metrics}");
    }
    let mut r = a.get(server.url("/")).call().unwrap();
    let page = r.body_mut().read_to_string().unwrap();
    assert!(
        page.contains("Hold to capture") && !page.contains("http://") && !page.contains("https://")
    );
}

#[test]
fn writes_need_the_token_and_beyond_loopback_one_is_made() {
    let t = tempfile::tempdir().unwrap();
    let state = t.path().join("s.edgecl");
    let red = draw(&t.path().join("red"), 0, 2, 70);
    let token = "a-token-of-twenty-chars";
    let server = Server::start(&state, &["--listen", "127.0.0.1:0", "--token", token]);
    let a = agent();
    let url = server.url("/api/classes/red/captures");
    let (st, e) = call(&a, "POST", &url, Some(&png(&red[0])), None);
    assert_eq!(st, 401, "{e}");
    let (st, _) = call(
        &a,
        "POST",
        &url,
        Some(&png(&red[0])),
        Some("a-token-of-twenty-charz"),
    );
    assert_eq!(st, 401);
    assert!(!state.exists(), "a refused write made a state");
    let (st, r) = call(&a, "POST", &url, Some(&png(&red[0])), Some(token));
    assert_eq!((st, &r["captures"]), (200, &json!(1)), "{r}");
    // Reading needs no token.
    let (st, _) = call(&a, "GET", &server.url("/api/classes"), None, None);
    assert_eq!(st, 200);
    drop(server);

    // Beyond loopback with no token: one is generated and printed; writes need it.
    let open = Server::start(&state, &["--listen", "0.0.0.0:0"]);
    let log = open.log();
    let generated = log
        .split("#token=")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_hexdigit()).next())
        .unwrap_or_else(|| panic!("no token printed: {log}"))
        .to_string();
    assert_eq!(generated.len(), 32, "{log}");
    let url = open
        .url("/api/classes/red/captures")
        .replace("0.0.0.0", "127.0.0.1");
    assert_eq!(call(&a, "POST", &url, Some(&png(&red[1])), None).0, 401);
    assert_eq!(
        call(&a, "POST", &url, Some(&png(&red[1])), Some(&generated)).0,
        200
    );
    // A short token is refused at start.
    let out = Command::new(env!("CARGO_BIN_EXE_edgecl"))
        .args([
            "serve",
            "--state",
            s(&state),
            "--model",
            s(&tiny()),
            "--token",
            "short",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 16"));
}

/// Feeds an MJPEG stream of the drawn class in `shown` (0 red, 1 blue) at about 30 frames a second,
/// until `stop`.
fn camera(
    mut stdin: std::process::ChildStdin,
    frames: [Vec<Vec<u8>>; 2],
    shown: Arc<AtomicU8>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut i = 0;
        while !stop.load(Ordering::SeqCst) {
            let set = &frames[shown.load(Ordering::SeqCst) as usize];
            if stdin.write_all(&set[i % set.len()]).is_err() {
                return;
            }
            i += 1;
            std::thread::sleep(Duration::from_millis(33));
        }
    })
}

/// Reads Server-Sent Events until one has `label`; panics after `limit`.
fn wait_for_label(agent: &ureq::Agent, url: &str, label: &str, limit: Duration) -> Value {
    let r = agent.get(url).call().unwrap();
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let mut lines = BufReader::new(r.into_body().into_reader()).lines();
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        let line = lines.next().expect("the event stream ended").unwrap();
        if let Some(data) = line.strip_prefix("data: ") {
            let v: Value = serde_json::from_str(data).unwrap();
            if v["label"] == label {
                return v;
            }
        }
    }
    panic!("no event labelled {label} within {limit:?}");
}

#[test]
fn a_live_camera_on_stdin_is_captured_classified_streamed_and_its_end_reported() {
    let t = tempfile::tempdir().unwrap();
    let state = t.path().join("s.edgecl");
    let frames = [
        jpeg_frames(&t.path().join("red"), 0, 8, 80),
        jpeg_frames(&t.path().join("blue"), 1, 8, 81),
    ];
    let mut server = Server::start_with(
        &state,
        &[
            "--listen",
            "127.0.0.1:0",
            "--source",
            "stdin",
            "--stall",
            "3",
        ],
        Stdio::piped(),
    );
    let shown = Arc::new(AtomicU8::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let feed = camera(
        server.child.stdin.take().unwrap(),
        frames,
        Arc::clone(&shown),
        Arc::clone(&stop),
    );
    let a = agent();
    // Teach red from the next 4 live frames, then blue.
    for (i, name) in ["red", "blue"].into_iter().enumerate() {
        shown.store(i as u8, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(300));
        let (st, r) = call(
            &a,
            "POST",
            &server.url(&format!("/api/classes/{name}/captures?frames=4")),
            None,
            None,
        );
        assert_eq!(st, 200, "{r}");
        assert_eq!(
            (r["learned"].as_u64(), r["captures"].as_u64()),
            (Some(4), Some(4)),
            "{r}"
        );
    }
    // The live label follows what the camera shows.
    let events = server.url("/api/events");
    let blue = wait_for_label(&a, &events, "blue", Duration::from_secs(20));
    assert!(blue["latency_ms"].as_f64().unwrap() > 0.0, "{blue}");
    shown.store(0, Ordering::SeqCst);
    wait_for_label(&a, &events, "red", Duration::from_secs(20));

    // The camera view: multipart JPEG parts.
    let r = a.get(server.url("/api/stream.mjpg")).call().unwrap();
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("multipart/x-mixed-replace"));
    let mut head = vec![0u8; 4096];
    let mut body = r.into_body().into_reader();
    body.read_exact(&mut head).unwrap();
    let text = String::from_utf8_lossy(&head);
    assert!(
        text.starts_with("--frame\r\nContent-Type: image/jpeg\r\n"),
        "{text}"
    );
    let start = head.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(
        &head[start..start + 2],
        [0xFF, 0xD8],
        "a JPEG starts the part"
    );
    drop(body);

    let m = a
        .get(server.url("/metrics"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    assert!(m.contains("edgecl_camera_up 1"), "{m}");
    let classified = m
        .lines()
        .find_map(|l| l.strip_prefix("edgecl_frames_classified_total "))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap();
    assert!(classified > 0.0, "{m}");

    // The camera stops: health says so (stdin cannot restart), the API still answers.
    stop.store(true, Ordering::SeqCst);
    feed.join().unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let health = loop {
        let (st, h) = call(&a, "GET", &server.url("/healthz"), None, None);
        if st == 503 {
            break h;
        }
        assert!(
            Instant::now() < deadline,
            "health never reported the ended camera: {h}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(health["camera"]["status"], "down", "{health}");
    assert!(
        health["camera"]["message"]
            .as_str()
            .unwrap()
            .contains("ended"),
        "{health}"
    );
    let (st, r) = call(
        &a,
        "POST",
        &server.url("/api/classes/red/captures?frames=2"),
        None,
        None,
    );
    assert_eq!(st, 400, "{r}");
    assert!(r["error"].as_str().unwrap().contains("frames"), "{r}");
    assert_eq!(
        call(&a, "GET", &server.url("/api/classes"), None, None).0,
        200
    );
    let _ = server.child.kill();
}

fn percentile(sorted: &[Duration], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e3
}

/// 8 clients classify and learn at once for `EDGECL_LOAD_SECONDS` (default 20) seconds while the CLI
/// learns in the same state; every acknowledged capture is in the state afterwards.
#[test]
fn load_many_clients_at_once_lose_no_acknowledged_write() {
    let seconds: u64 = std::env::var("EDGECL_LOAD_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let t = tempfile::tempdir().unwrap();
    let state = t.path().join("s.edgecl");
    let server = Server::start(&state, &["--listen", "127.0.0.1:0"]);
    let images: Vec<Vec<u8>> = (0..3u8)
        .flat_map(|c| draw(&t.path().join(format!("c{c}")), c, 4, 90 + c as u32))
        .map(|p| png(&p))
        .collect();
    let images = Arc::new(images);
    // One class first, so classify has something to answer.
    let a = agent();
    assert_eq!(
        call(
            &a,
            "POST",
            &server.url("/api/classes/seed/captures"),
            Some(&images[0]),
            None
        )
        .0,
        200
    );

    let stop_at = Instant::now() + Duration::from_secs(seconds);
    let clients: Vec<_> = (0..8)
        .map(|c| {
            let base = server.base.clone();
            let images = Arc::clone(&images);
            std::thread::spawn(move || {
                let a = agent();
                let (mut acked, mut latencies, mut other) = (0u64, Vec::new(), 0u64);
                let mut i = c;
                while Instant::now() < stop_at {
                    let img = &images[i % images.len()];
                    let started = Instant::now();
                    let (st, _) = if i % 2 == 0 {
                        call(
                            &a,
                            "POST",
                            &format!("{base}/api/classes/client{c}/captures"),
                            Some(img),
                            None,
                        )
                    } else {
                        call(&a, "POST", &format!("{base}/api/classify"), Some(img), None)
                    };
                    latencies.push(started.elapsed());
                    match (st, i % 2) {
                        (200, 0) => acked += 1,
                        (200, _) => {}
                        _ => other += 1,
                    }
                    i += 1;
                }
                (acked, latencies, other)
            })
        })
        .collect();
    // Meanwhile another process learns in the same state, through the lock.
    let cli_dir = t.path().join("c1");
    let mut cli_acked = 0u64;
    while Instant::now() + Duration::from_secs(3) < stop_at {
        let out = super::learn_cmd(&state, "from-cli", &cli_dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        cli_acked += 4;
    }
    let mut all = Vec::new();
    let mut acked = Vec::new();
    for c in clients {
        let (n, lat, other) = c.join().unwrap();
        assert_eq!(
            other,
            0,
            "requests failed under load; server log:\n{}",
            server.log()
        );
        acked.push(n);
        all.extend(lat);
    }
    all.sort();
    let total = all.len() as f64;
    eprintln!(
        "load: 8 clients, {seconds} s: {} requests, {:.1} per second; latency p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms; {} captures acknowledged; CLI learnt {cli_acked} meanwhile",
        all.len(),
        total / seconds as f64,
        percentile(&all, 0.5),
        percentile(&all, 0.9),
        percentile(&all, 0.99),
        percentile(&all, 1.0),
        acked.iter().sum::<u64>()
    );
    // The file, read by another process, has every acknowledged capture (and nothing more).
    let out = Command::new(env!("CARGO_BIN_EXE_edgecl"))
        .args(["info", "--state", s(&state), "--json", "--no-model"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info: Value = serde_json::from_slice(&out.stdout).unwrap();
    let captures = |name: &str| {
        info["state"]["classes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .map_or(0, |c| c["captures"].as_u64().unwrap())
    };
    for (c, n) in acked.iter().enumerate() {
        assert!(*n > 0, "client {c} got no capture acknowledged");
        assert_eq!(captures(&format!("client{c}")), *n, "client {c}");
    }
    assert_eq!(captures("from-cli"), cli_acked);
    assert_eq!(captures("seed"), 1);
}

#[test]
fn kill_9_during_learning_leaves_the_last_good_state_with_every_acknowledged_capture() {
    let t = tempfile::tempdir().unwrap();
    let state = t.path().join("s.edgecl");
    let img = png(&draw(&t.path().join("red"), 0, 1, 95)[0]);
    let mut server = Server::start(&state, &["--listen", "127.0.0.1:0"]);
    let base = server.base.clone();
    let acked = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = Arc::clone(&acked);
    let writer = std::thread::spawn(move || {
        let a = agent();
        loop {
            let req = http_request("POST", &format!("{base}/api/classes/red/captures"))
                .body(img.clone())
                .unwrap();
            match a.run(req) {
                Ok(r) if r.status() == 200 => {
                    counter.fetch_add(1, Ordering::SeqCst);
                }
                _ => return,
            }
        }
    });
    std::thread::sleep(Duration::from_millis(1500));
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
    writer.join().unwrap();
    let acked = acked.load(Ordering::SeqCst);
    assert!(acked > 0);
    let learner = edgecl::learner::Learner::load(&state).expect("the state decodes after kill -9");
    let info = learner.info();
    let captures = info.classes[0].captures;
    // Every acknowledged capture is there; at most the one in flight more.
    assert!(
        captures == acked || captures == acked + 1,
        "{captures} on disk, {acked} acknowledged"
    );
    // No temp file is left to confuse the next start, or it is cleaned by it.
    let again = Server::start(&state, &["--listen", "127.0.0.1:0"]);
    let (_, c) = call(&agent(), "GET", &again.url("/api/classes"), None, None);
    assert_eq!(c["classes"][0]["captures"], captures);
}

/// A GStreamer camera that ends (here after 20 frames) is started again, and the restarts are counted.
#[cfg(feature = "camera")]
#[test]
fn a_gstreamer_camera_that_ends_is_restarted_and_reported() {
    let t = tempfile::tempdir().unwrap();
    let state = t.path().join("s.edgecl");
    let source = "gst:videotestsrc is-live=true num-buffers=20 ! video/x-raw,width=96,height=72,framerate=30/1";
    let server = Server::start(&state, &["--listen", "127.0.0.1:0", "--source", source]);
    let a = agent();
    let deadline = Instant::now() + Duration::from_secs(30);
    let restarts = loop {
        let m = a
            .get(server.url("/metrics"))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        let value = |name: &str| {
            m.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        // Two restarts and frames beyond the first run's 20: the camera came back.
        if value("edgecl_camera_restarts_total ") >= 2.0
            && value("edgecl_frames_read_total ") > 20.0
        {
            break value("edgecl_camera_restarts_total ");
        }
        assert!(
            Instant::now() < deadline,
            "no restart seen:\n{m}\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        server.log().contains("the source ended; retrying in"),
        "{}",
        server.log()
    );
    // Between runs, captures from live frames still work.
    let (st, r) = call(
        &a,
        "POST",
        &server.url("/api/classes/bars/captures?frames=2"),
        None,
        None,
    );
    assert_eq!(st, 200, "{r} after {restarts} restarts");
}
