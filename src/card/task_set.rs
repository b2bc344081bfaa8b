//! Task-conditioned models (`task_conditioned` in the card, models/CARD.md): a task-incremental method's
//! network exported as one ONNX file per task. Each file is an ordinary model (image in, `features` and
//! `logits` over its task's classes); this module checks that a file's card describes a consistent set
//! and finds the set's other files.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{hex, ModelCard};

/// The only scheme so far: one file per task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskScheme {
    FilePerTask,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskConditioned {
    pub scheme: TaskScheme,
    /// This file's task, 0-based.
    pub task: u32,
    pub n_tasks: u32,
    /// This task's classes, in the order of this file's logits.
    pub task_classes: Vec<String>,
    /// The whole set (the same list in every card of it).
    pub files: Vec<TaskFile>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskFile {
    pub task: u32,
    /// A file name beside the card, no directory part.
    pub onnx: String,
    pub sha256: String,
}

/// Largest set a card may describe (a bound checked before anything is allocated per task).
const MAX_TASKS: u32 = 1024;

impl TaskConditioned {
    /// The checks one card can make on its own (CARD.md rules 1-3); `card` is the card that carries it.
    pub(super) fn validate(&self, card: &ModelCard) -> Result<(), String> {
        if self.n_tasks == 0 || self.n_tasks > MAX_TASKS || self.task >= self.n_tasks {
            return Err(format!(
                "task_conditioned.task {} is not in 0..n_tasks-1 (n_tasks {}, at most {MAX_TASKS})",
                self.task, self.n_tasks
            ));
        }
        let mut tasks: Vec<u32> = self.files.iter().map(|f| f.task).collect();
        tasks.sort_unstable();
        if !tasks.iter().copied().eq(0..self.n_tasks) {
            return Err(format!(
                "task_conditioned.files must list the tasks 0..{} once each",
                self.n_tasks - 1
            ));
        }
        let own = self.files.iter().find(|f| f.task == self.task);
        if !own.is_some_and(|f| f.onnx == card.onnx && f.sha256.eq_ignore_ascii_case(&card.sha256))
        {
            return Err(format!(
                "task_conditioned.files does not list this file ({}, sha256 {}) under its task {}",
                card.onnx, card.sha256, self.task
            ));
        }
        match &card.logits {
            Some(l) if l.classes == self.task_classes.len() => {}
            _ => {
                return Err(format!(
                    "a task-conditioned model needs logits over its {} task_classes",
                    self.task_classes.len()
                ))
            }
        }
        if !card.classes.is_empty() && card.classes != self.task_classes {
            return Err("classes must equal task_conditioned.task_classes".into());
        }
        for f in &self.files {
            let plain = Path::new(&f.onnx)
                .file_name()
                .is_some_and(|n| n == f.onnx.as_str());
            if !plain {
                return Err(format!(
                    "task {}: onnx {:?} must be a file name beside the card",
                    f.task, f.onnx
                ));
            }
        }
        Ok(())
    }

    /// The set-level checks (CARD.md rule 4) for the card of `model`: every file of the set exists beside
    /// it with the listed sha256, its card describes the same set under its own task, and no class belongs
    /// to two tasks. Returns the set's model paths in task order, or every problem found.
    pub fn members(&self, model: &Path) -> Result<Vec<PathBuf>, Vec<String>> {
        let dir = model.parent().unwrap_or(Path::new("."));
        let mut files = self.files.clone();
        files.sort_by_key(|f| f.task);
        let mut problems = Vec::new();
        let mut seen: Vec<&str> = Vec::new();
        let mut cards = Vec::new();
        let mut paths = Vec::new();
        for f in &files {
            let path = dir.join(&f.onnx);
            paths.push(path.clone());
            match std::fs::read(&path) {
                Ok(bytes) => {
                    let actual = hex(&Sha256::digest(&bytes));
                    if !actual.eq_ignore_ascii_case(&f.sha256) {
                        problems.push(format!(
                            "task {}: {} has sha256 {actual}, the set lists {}",
                            f.task, f.onnx, f.sha256
                        ));
                    }
                }
                Err(e) => {
                    problems.push(format!("task {}: {}: {e}", f.task, path.display()));
                    continue;
                }
            }
            match ModelCard::load_for(&path) {
                Ok(card) => cards.push((f.task, card)),
                Err(e) => problems.push(format!("task {}: {e}", f.task)),
            }
        }
        for (task, card) in &cards {
            match &card.task_conditioned {
                Some(tc)
                    if tc.scheme == self.scheme
                        && tc.n_tasks == self.n_tasks
                        && tc.task == *task
                        && tc.files == self.files => {}
                _ => problems.push(format!(
                    "task {task}: the card of {} describes a different set",
                    card.onnx
                )),
            }
            if let Some(tc) = &card.task_conditioned {
                for class in &tc.task_classes {
                    if seen.contains(&class.as_str()) {
                        problems.push(format!(
                            "task {task}: class {class:?} also belongs to another task"
                        ));
                    }
                }
                seen.extend(tc.task_classes.iter().map(String::as_str));
            }
        }
        if problems.is_empty() {
            Ok(paths)
        } else {
            Err(problems)
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::super::{ModelCard, CARD_FORMAT};

    fn card(tc: Value) -> Value {
        json!({
            "format": CARD_FORMAT, "name": "t", "onnx": "m.task1.onnx", "sha256": "a".repeat(64),
            "input": {"name": "input", "layout": "NCHW", "channel_order": "GRAY", "height": 28, "width": 28,
                      "pixel_scale": 1.0, "mean": [0.0], "std": [1.0], "resize": "stretch"},
            "features": {"output": "features", "dim": 4},
            "logits": {"output": "logits", "classes": 2},
            "classes": ["c", "d"],
            "task_conditioned": tc,
        })
    }

    fn set() -> Value {
        json!({"scheme": "file_per_task", "task": 1, "n_tasks": 2, "task_classes": ["c", "d"],
               "files": [{"task": 0, "onnx": "m.task0.onnx", "sha256": "b".repeat(64)},
                         {"task": 1, "onnx": "m.task1.onnx", "sha256": "a".repeat(64)}]})
    }

    fn check(v: Value) -> Result<(), String> {
        serde_json::from_value::<ModelCard>(v).unwrap().validate()
    }

    #[test]
    fn a_consistent_card_passes_and_each_broken_rule_is_named() {
        check(card(set())).unwrap();
        check(card(Value::Null)).unwrap(); // no key: an ordinary model

        let broken = |edit: &dyn Fn(&mut Value), want: &str| {
            let mut v = card(set());
            edit(&mut v);
            let err = check(v).unwrap_err();
            assert!(err.contains(want), "{err:?} should contain {want:?}");
        };
        broken(
            &|v| v["task_conditioned"]["task"] = json!(2),
            "not in 0..n_tasks-1",
        );
        broken(
            &|v| v["task_conditioned"]["n_tasks"] = json!(0),
            "not in 0..n_tasks-1",
        );
        broken(
            &|v| v["task_conditioned"]["n_tasks"] = json!(3),
            "tasks 0..2 once each",
        );
        broken(
            &|v| v["task_conditioned"]["files"][0]["task"] = json!(1),
            "tasks 0..1 once each",
        );
        broken(
            &|v| v["task_conditioned"]["files"][1]["sha256"] = json!("c".repeat(64)),
            "does not list this file",
        );
        broken(
            &|v| v["task_conditioned"]["files"][1]["onnx"] = json!("m.task0.onnx"),
            "does not list this file",
        );
        broken(
            &|v| v["logits"]["classes"] = json!(3),
            "logits over its 2 task_classes",
        );
        broken(
            &|v| v["logits"] = Value::Null,
            "logits over its 2 task_classes",
        );
        broken(&|v| v["classes"] = json!(["d", "c"]), "classes must equal");
        broken(
            &|v| v["task_conditioned"]["files"][0]["onnx"] = json!("../m.task0.onnx"),
            "must be a file name",
        );
        broken(
            &|v| v["task_conditioned"]["files"][0]["onnx"] = json!(""),
            "must be a file name",
        );
    }

    #[test]
    fn an_unknown_scheme_is_refused_when_the_card_is_read() {
        let mut tc = set();
        tc["scheme"] = json!("one_graph_with_task_input");
        assert!(serde_json::from_value::<ModelCard>(card(tc)).is_err());
    }
}
