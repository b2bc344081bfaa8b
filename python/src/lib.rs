//! `edgecl._edgecl`: the Python bindings, a thin layer of conversions over [`edgecl::session::Session`].
//!
//! Everything that decides anything (model lookup, learning, the state file and its lock) is the
//! library's; this file turns Python arguments into the library's types and its answers and errors into
//! Python objects. Decoding, embedding, learning and waiting for the state's lock run with the GIL
//! released, so camera threads and UIs keep running.

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use edgecl::backbone::{BackboneOptions, RuntimeChoice};
use edgecl::learner::LearnerConfig;
use edgecl::preprocess::Floor;
use edgecl::session::Session;
use image::{DynamicImage, RgbImage};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyString, PyType};

/// The exception classes, defined in Python so that `UnknownClassError` can also be a `LookupError` and
/// `LockedError` a `TimeoutError` (pyo3's `create_exception!` takes one base).
const EXCEPTIONS: &std::ffi::CStr = c"
class Error(Exception):
    '''An error from the edgecl library; the message is the library's.'''

class UnknownClassError(Error, LookupError):
    '''A class name that the state does not have (forget, rename, merge).'''

class LockedError(Error, TimeoutError):
    '''Another writer held the state's lock for longer than lock_timeout.'''
";

struct Exceptions {
    error: Py<PyType>,
    unknown_class: Py<PyType>,
    locked: Py<PyType>,
}

static EXCEPTION_TYPES: PyOnceLock<Exceptions> = PyOnceLock::new();

fn exceptions(py: Python<'_>) -> PyResult<&Exceptions> {
    EXCEPTION_TYPES.get_or_try_init(py, || {
        let ns = PyDict::new(py);
        ns.set_item("__name__", "edgecl")?;
        py.run(EXCEPTIONS, Some(&ns), None)?;
        let get = |name: &str| -> PyResult<Py<PyType>> {
            Ok(ns
                .get_item(name)?
                .expect("defined above")
                .cast_into::<PyType>()?
                .unbind())
        };
        Ok(Exceptions {
            error: get("Error")?,
            unknown_class: get("UnknownClassError")?,
            locked: get("LockedError")?,
        })
    })
}

/// A library error as the matching Python exception, with the library's message.
fn to_py(e: edgecl::Error) -> PyErr {
    Python::attach(|py| {
        let types = match exceptions(py) {
            Ok(t) => t,
            Err(err) => return err,
        };
        let ty = match e {
            edgecl::Error::UnknownClass(_) => &types.unknown_class,
            edgecl::Error::Locked { .. } => &types.locked,
            _ => &types.error,
        };
        PyErr::from_type(ty.bind(py).clone(), e.to_string())
    })
}

/// An image as given, before decoding (which happens without the GIL).
enum Input {
    Path(PathBuf),
    Encoded(Vec<u8>),
    Pixels(RgbImage),
}

impl Input {
    /// Decodes no smaller than the model needs (a large JPEG at 1/8 scale: `edgecl::preprocess::decode_scaled`).
    fn decode(self, index: usize, floor: Floor) -> edgecl::Result<DynamicImage> {
        match self {
            Input::Path(p) => edgecl::preprocess::decode_for(&p, floor),
            Input::Encoded(bytes) => edgecl::preprocess::decode_scaled(&bytes, floor)
                .map_err(|m| edgecl::Error::Invalid(format!("image {index} (bytes): cannot decode image: {m}"))),
            Input::Pixels(rgb) => Ok(DynamicImage::ImageRgb8(rgb)),
        }
    }
}

const EXPECTED: &str = "a file path (str or os.PathLike), encoded image bytes (JPEG, PNG, BMP, PPM) or an H x W x 3 uint8 RGB array";

/// One image argument: a path, encoded bytes, or an array-like with numpy's `dtype`, `shape` and
/// `tobytes()` (which copies any strides into C order).
fn to_input(obj: &Bound<'_, PyAny>, index: usize) -> PyResult<Input> {
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(Input::Encoded(b.as_bytes().to_vec()));
    }
    if obj.is_instance_of::<PyString>() || obj.hasattr("__fspath__")? {
        return Ok(Input::Path(obj.extract::<PathBuf>()?));
    }
    if obj.hasattr("dtype")? && obj.hasattr("shape")? {
        let dtype = obj.getattr("dtype")?.str()?.to_string();
        let shape: Vec<usize> = obj.getattr("shape")?.extract()?;
        if dtype != "uint8" || shape.len() != 3 || shape[2] != 3 || shape[0] == 0 || shape[1] == 0 {
            let shape_text = match shape.as_slice() {
                [one] => format!("({one},)"),
                s => format!("({})", s.iter().map(usize::to_string).collect::<Vec<_>>().join(", ")),
            };
            return Err(PyValueError::new_err(format!(
                "image {index}: expected an H x W x 3 uint8 RGB array, got dtype {dtype} and shape {shape_text} \
                 (convert BGR, BGRA or grey frames to RGB first, e.g. cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))"
            )));
        }
        let (h, w) = (shape[0], shape[1]);
        let too_big = || PyValueError::new_err(format!("image {index}: {h} x {w} pixels is too large"));
        let (w32, h32) = (u32::try_from(w).map_err(|_| too_big())?, u32::try_from(h).map_err(|_| too_big())?);
        let bytes = obj.call_method0("tobytes")?;
        let bytes = bytes.cast::<PyBytes>()?.as_bytes().to_vec();
        let rgb = RgbImage::from_raw(w32, h32, bytes).ok_or_else(|| {
            PyValueError::new_err(format!("image {index}: tobytes() did not give {h} x {w} x 3 bytes"))
        })?;
        return Ok(Input::Pixels(rgb));
    }
    Err(PyTypeError::new_err(format!(
        "image {index}: expected {EXPECTED}, got {}",
        obj.get_type().name()?
    )))
}

/// `images` as a list of inputs: one image, or an iterable of them (a list, or an N x H x W x 3 array).
fn to_inputs(images: &Bound<'_, PyAny>) -> PyResult<Vec<Input>> {
    let single = images.is_instance_of::<PyString>()
        || images.is_instance_of::<PyBytes>()
        || images.hasattr("__fspath__")?
        || (images.hasattr("ndim")? && images.getattr("ndim")?.extract::<usize>().ok() != Some(4));
    if single {
        return Ok(vec![to_input(images, 0)?]);
    }
    let iter = images.try_iter().map_err(|_| {
        PyTypeError::new_err(format!(
            "images: expected one image or an iterable of images ({EXPECTED}), got {}",
            images.get_type().name().map_or_else(|_| "?".into(), |n| n.to_string())
        ))
    })?;
    iter.enumerate()
        .map(|(i, item)| to_input(&item?, i))
        .collect()
}

fn decode_all(inputs: Vec<Input>, floor: Floor) -> edgecl::Result<Vec<DynamicImage>> {
    inputs.into_iter().enumerate().map(|(i, x)| x.decode(i, floor)).collect()
}

fn check_top(top: i64) -> PyResult<usize> {
    usize::try_from(top)
        .ok()
        .filter(|&t| t >= 1)
        .ok_or_else(|| PyValueError::new_err(format!("top must be at least 1, got {top}")))
}

/// Python-style repr of a string.
fn r(py: Python<'_>, s: &str) -> String {
    PyString::new(py, s)
        .repr()
        .map_or_else(|_| format!("{s:?}"), |x| x.to_string())
}

/// One class's answer for one query (nearest first in `Prediction.top`).
#[pyclass(module = "edgecl", frozen, get_all)]
#[derive(Clone)]
struct Ranked {
    #[pyo3(name = "class_")]
    class: String,
    /// The head's score, higher is better (NCM: cosine similarity to the class mean).
    score: f32,
    /// Distance between the normalised query and the normalised class mean (0 to 2).
    distance: f32,
}

#[pymethods]
impl Ranked {
    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "Ranked(class_={}, score={:.4}, distance={:.4})",
            r(py, &self.class),
            self.score,
            self.distance
        )
    }
}

/// The answer for one image: `label` is the nearest class, or None when it is too far from every
/// class (`unknown`).
#[pyclass(module = "edgecl", frozen, get_all)]
#[derive(Clone)]
struct Prediction {
    label: Option<String>,
    unknown: bool,
    top: Vec<Ranked>,
}

#[pymethods]
impl Prediction {
    fn __repr__(&self, py: Python<'_>) -> String {
        let label = self.label.as_deref().map_or_else(|| "None".to_string(), |l| r(py, l));
        let top: Vec<String> = self.top.iter().map(|t| t.__repr__(py)).collect();
        format!(
            "Prediction(label={label}, unknown={}, top=[{}])",
            if self.unknown { "True" } else { "False" },
            top.join(", ")
        )
    }
}

impl From<edgecl::learner::Prediction> for Prediction {
    fn from(p: edgecl::learner::Prediction) -> Self {
        Prediction {
            label: p.label,
            unknown: p.unknown,
            top: p
                .top
                .into_iter()
                .map(|t| Ranked {
                    class: t.class,
                    score: t.score,
                    distance: t.distance,
                })
                .collect(),
        }
    }
}

/// One class of the state.
#[pyclass(module = "edgecl", frozen, get_all)]
#[derive(Clone)]
struct ClassInfo {
    name: String,
    /// Captures learnt into the class so far.
    captures: u64,
    /// Feature vectors of the class kept in the memory.
    memory_vectors: usize,
    /// Squared distance beyond which a query near this class is unknown (None: no limit yet).
    unknown_threshold: Option<f64>,
}

#[pymethods]
impl ClassInfo {
    fn __repr__(&self, py: Python<'_>) -> String {
        format!("ClassInfo(name={}, captures={})", r(py, &self.name), self.captures)
    }
}

/// What a state holds: its model, head, classes and memory (`edgecl info` as an object).
#[pyclass(module = "edgecl", frozen, get_all)]
struct Info {
    model: String,
    model_sha256: String,
    model_path: String,
    dim: u32,
    head: String,
    classes: Vec<ClassInfo>,
    memory_budget: u64,
    memory_bytes: u64,
    memory_vectors: usize,
    memory_capacity: usize,
    unknown_factor: f32,
    state_bytes: usize,
}

#[pymethods]
impl Info {
    fn __repr__(&self, py: Python<'_>) -> String {
        let classes: Vec<String> = self.classes.iter().map(|c| c.__repr__(py)).collect();
        format!(
            "Info(model={}, dim={}, head={}, classes=[{}], memory_bytes={}, state_bytes={})",
            r(py, &self.model),
            self.dim,
            r(py, &self.head),
            classes.join(", "),
            self.memory_bytes,
            self.state_bytes
        )
    }
}

impl From<edgecl::learner::Info> for Info {
    fn from(i: edgecl::learner::Info) -> Self {
        Info {
            model: i.model,
            model_sha256: i.model_sha256,
            model_path: i.model_path,
            dim: i.dim,
            head: i.head,
            classes: i
                .classes
                .into_iter()
                .map(|c| ClassInfo {
                    name: c.name,
                    captures: c.captures,
                    memory_vectors: c.memory_vectors,
                    unknown_threshold: c.unknown_threshold,
                })
                .collect(),
            memory_budget: i.memory_budget,
            memory_bytes: i.memory_bytes,
            memory_vectors: i.memory_vectors,
            memory_capacity: i.memory_capacity,
            unknown_factor: i.unknown_factor,
            state_bytes: i.state_bytes,
        }
    }
}

/// A state file and its backbone, opened together (`edgecl::session::Session`). Calls from several
/// Python threads take turns; other processes (the CLI, another program) may learn into the same state,
/// and `classify`, `info` and `classes` see what they saved.
#[pyclass(module = "edgecl", frozen)]
struct Learner {
    session: Mutex<Session>,
    lock_timeout: Duration,
    // What never changes, kept apart from the session so that reading it never waits (holding the GIL)
    // for a call that holds the session.
    path: PathBuf,
    model_name: String,
    runtime: &'static str,
    /// The model's decode floor.
    floor: Floor,
}

impl Learner {
    /// The session, for a call made without the GIL. A panic in an earlier call leaves the mutex
    /// poisoned; the state on disk is the truth and every write reloads it, so carry on.
    fn session(&self) -> MutexGuard<'_, Session> {
        self.session.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the session with the GIL released, after picking up what other processes saved.
    fn read<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut Session) -> edgecl::Result<T> + Send,
    ) -> PyResult<T> {
        py.detach(|| {
            let mut s = self.session();
            s.reload_if_changed()?;
            f(&mut *s)
        })
        .map_err(to_py)
    }

    /// Applies `edit` under the state's lock (load, edit, save), with the GIL released.
    fn edit<T: Send>(
        &self,
        py: Python<'_>,
        edit: impl FnOnce(&mut edgecl::learner::Learner) -> edgecl::Result<T> + Send,
    ) -> PyResult<T> {
        let timeout = self.lock_timeout;
        py.detach(|| self.session().edit(timeout, edit)).map_err(to_py)
    }
}

#[pymethods]
impl Learner {
    /// Opens the state at `state` (created at the first `learn` if it does not exist) with the backbone
    /// `model`. With no model: `EDGECL_MODEL`, else the model the state was made with, else the default
    /// model from where models live, as the CLI finds it (`edgecl.models` lists them).
    #[new]
    // Strings are taken as String: abi3 below Python 3.10 cannot lend a &str.
    #[pyo3(
        signature = (state, model=None, *, runtime="auto".to_owned(), threads=None, lock_timeout=10.0),
        text_signature = "(state, model=None, *, runtime='auto', threads=None, lock_timeout=10.0)"
    )]
    fn new(
        py: Python<'_>,
        state: PathBuf,
        model: Option<PathBuf>,
        runtime: String,
        threads: Option<i64>,
        lock_timeout: f64,
    ) -> PyResult<Self> {
        let runtime = match runtime.as_str() {
            "auto" => RuntimeChoice::Auto,
            "ort" => RuntimeChoice::Ort,
            "tract" => RuntimeChoice::Tract,
            other => {
                return Err(PyValueError::new_err(format!(
                    "runtime must be \"auto\", \"ort\" or \"tract\", got {other:?}"
                )))
            }
        };
        let threads = match threads {
            None => None,
            Some(n) => Some(usize::try_from(n).ok().filter(|&n| n >= 1).ok_or_else(|| {
                PyValueError::new_err(format!("threads must be at least 1, got {n}"))
            })?),
        };
        if !(lock_timeout.is_finite() && (0.0..=86_400.0).contains(&lock_timeout)) {
            return Err(PyValueError::new_err(format!(
                "lock_timeout must be a number of seconds from 0 to 86400, got {lock_timeout}"
            )));
        }
        // The same option the CLI's --model reads from the environment.
        let model = model.or_else(|| {
            std::env::var_os("EDGECL_MODEL")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        });
        let options = BackboneOptions {
            runtime,
            threads,
            ..BackboneOptions::default()
        };
        let session = py
            .detach(|| -> edgecl::Result<Session> {
                let existing = match std::fs::metadata(&state) {
                    Ok(_) => Some(edgecl::learner::Learner::load(&state)?),
                    Err(_) => None,
                };
                let model =
                    edgecl::models::find(model.as_deref(), existing.as_ref().map(|l| l.model()))?;
                Session::open(&state, &model, &options, LearnerConfig::default())
            })
            .map_err(to_py)?;
        Ok(Learner {
            path: session.path().to_path_buf(),
            model_name: session.embedder().model().card.name.clone(),
            runtime: session.embedder().runtime().runtime,
            floor: session.embedder().floor(),
            session: Mutex::new(session),
            lock_timeout: Duration::from_secs_f64(lock_timeout),
        })
    }

    /// Learns `images` (one image or an iterable of them) as captures of class `name` and saves the
    /// state under its lock. Returns the number of captures the class now has.
    fn learn(&self, py: Python<'_>, name: String, images: &Bound<'_, PyAny>) -> PyResult<u64> {
        let inputs = to_inputs(images)?;
        let timeout = self.lock_timeout;
        py.detach(|| {
            let images = decode_all(inputs, self.floor)?;
            self.session().learn(&name, &images, timeout)
        })
        .map_err(to_py)
    }

    /// The `top` nearest classes of one image.
    #[pyo3(signature = (image, top=3))]
    fn classify(&self, py: Python<'_>, image: &Bound<'_, PyAny>, top: i64) -> PyResult<Prediction> {
        let top = check_top(top)?;
        if image.hasattr("ndim")? && image.getattr("ndim")?.extract::<usize>().ok() == Some(4) {
            return Err(PyValueError::new_err(
                "classify takes one image (H x W x 3); use classify_many for a batch",
            ));
        }
        let input = to_input(image, 0)?;
        let floor = self.floor;
        let mut out = self.read(py, |s| {
            let img = input.decode(0, floor)?;
            s.classify(std::slice::from_ref(&img), top)
        })?;
        Ok(out.remove(0).into())
    }

    /// The `top` nearest classes of each image, in one batch.
    #[pyo3(signature = (images, top=3))]
    fn classify_many(
        &self,
        py: Python<'_>,
        images: &Bound<'_, PyAny>,
        top: i64,
    ) -> PyResult<Vec<Prediction>> {
        let top = check_top(top)?;
        let inputs = to_inputs(images)?;
        let floor = self.floor;
        let out = self.read(py, |s| {
            let images = decode_all(inputs, floor)?;
            s.classify(&images, top)
        })?;
        Ok(out.into_iter().map(Prediction::from).collect())
    }

    /// Forgets a class: its statistics and stored features.
    fn forget(&self, py: Python<'_>, name: String) -> PyResult<()> {
        self.edit(py, |l| l.forget(&name))
    }

    /// Renames a class; the new name must not be taken (joining classes is `merge`).
    fn rename(&self, py: Python<'_>, old: String, new: String) -> PyResult<()> {
        self.edit(py, |l| l.rename(&old, &new))
    }

    /// Joins the classes `names` into one class `into` (existing, one of them, or new), as if their
    /// captures had been learnt under `into`.
    fn merge(&self, py: Python<'_>, names: Vec<String>, into: String) -> PyResult<()> {
        self.edit(py, |l| {
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            l.merge(&names, &into)
        })
    }

    /// The state's model, head, classes and memory.
    fn info(&self, py: Python<'_>) -> PyResult<Info> {
        self.read(py, |s| Ok(s.learner().info())).map(Info::from)
    }

    /// The class names, in the state's order.
    #[getter]
    fn classes(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        self.read(py, |s| Ok(s.learner().class_names().to_vec()))
    }

    /// The state file's path.
    #[getter]
    fn state(&self) -> PathBuf {
        self.path.clone()
    }

    /// The inference runtime in use: "ort" or "tract".
    #[getter]
    fn runtime(&self) -> &'static str {
        self.runtime
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        // The class count needs the session: wait for it without the GIL.
        let classes = py.detach(|| self.session().learner().class_names().len());
        format!(
            "Learner(state={}, model={}, runtime={}, classes={})",
            r(py, &self.path.display().to_string()),
            r(py, &self.model_name),
            r(py, self.runtime),
            classes
        )
    }
}

/// The models found where edgecl looks for them (`edgecl models`): a list of dicts with `path`, `name`,
/// `bytes`, `sha256` and `dim`.
#[pyfunction]
fn models(py: Python<'_>) -> PyResult<Vec<Bound<'_, PyDict>>> {
    let found = py.detach(edgecl::models::list);
    found
        .into_iter()
        .map(|f| {
            let d = PyDict::new(py);
            d.set_item("path", f.path)?;
            d.set_item("name", f.name)?;
            d.set_item("bytes", f.bytes)?;
            d.set_item("sha256", f.sha256)?;
            d.set_item("dim", f.dim)?;
            Ok(d)
        })
        .collect()
}

#[pymodule]
fn _edgecl(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let types = exceptions(py)?;
    m.add("Error", types.error.bind(py))?;
    m.add("UnknownClassError", types.unknown_class.bind(py))?;
    m.add("LockedError", types.locked.bind(py))?;
    m.add_class::<Learner>()?;
    m.add_class::<Prediction>()?;
    m.add_class::<Ranked>()?;
    m.add_class::<Info>()?;
    m.add_class::<ClassInfo>()?;
    m.add_function(wrap_pyfunction!(models, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
