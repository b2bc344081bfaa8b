//! The `edgecl` command line. Exit codes, and what each says about the state file:
//!
//! - 0: success. A command that writes the state (`learn`, `forget`, `rename`, `merge`,
//!   `demo --state`) has saved it;
//!   this holds even if printing the result failed afterwards (a closed pipe).
//! - 1: a negative answer: an image classified as unknown, a model that fails verification, privacy
//!   captures fewer than K (held in RAM only). The state is as it was.
//! - 2: an error (bad input, a state another writer held past `--lock-timeout`, a full disk, ...).
//!   Nothing was written: the state is as it was.

#[macro_use]
mod output;

mod args;
mod classify;
mod completions;
mod demo;
mod eval;
mod forget;
mod head;
mod info;
mod learn;
mod merge;
mod models;
mod rename;
#[cfg(feature = "serve")]
mod serve;
mod verify_model;
mod watch;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "edgecl",
    version,
    about = "On-device class-incremental learning over a frozen ONNX backbone"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Learn a class (new or known) from captures: image files or directories of them.
    Learn(learn::Args),
    /// Classify images: the nearest classes, or "unknown" when none is close enough.
    Classify(classify::Args),
    /// Forget a class: its mean, statistics and stored features.
    Forget(forget::Args),
    /// Rename a class.
    Rename(rename::Args),
    /// Join classes into one, exactly (NCM, LDA, Mahalanobis and RanPAC statistics).
    Merge(merge::Args),
    /// Classify a camera stream (MJPEG on stdin, raw RGB, a folder), one line per frame.
    Watch(watch::Args),
    /// Serve the device: an HTTP API and a web page to teach and watch the camera (`serve` feature).
    #[cfg(feature = "serve")]
    Serve(serve::Args),
    /// Describe a state file: model, classes, memory, runtime.
    Info(info::Args),
    /// Learn Fashion-MNIST's 10 classes from a few captures each, classify the test set, report.
    Demo(demo::Args),
    /// Run a class-incremental protocol (CIFAR-10, Fashion-MNIST or an image folder) for several heads and
    /// write a report: markdown table, JSON and a plot of accuracy against step.
    Eval(eval::Args),
    /// List the models found where models live, in search order, with the default marked.
    Models(models::Args),
    /// Shell completions on stdout (e.g. `edgecl completions bash > /etc/bash_completion.d/edgecl`).
    Completions(completions::CompletionArgs),
    /// The man page (roff) on stdout.
    #[command(hide = true)]
    Manpage,
    /// Check a model against its card: sha256 and reference features on every available runtime.
    VerifyModel(verify_model::Args),
}

/// What a command concluded: success, or a negative answer (exit 1).
pub enum Outcome {
    Yes,
    No,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = match &cli.command {
        Command::Learn(a) => a.common.json,
        Command::Classify(a) => a.common.json,
        Command::Forget(a) => a.json,
        Command::Rename(a) => a.json,
        Command::Merge(a) => a.json,
        Command::Watch(a) => a.common.json,
        #[cfg(feature = "serve")]
        Command::Serve(a) => a.common.json,
        Command::Info(a) => a.common.json,
        Command::Demo(a) => a.common.json,
        Command::Eval(a) => a.common.json,
        Command::VerifyModel(a) => a.json,
        Command::Models(a) => a.json,
        Command::Completions(_) | Command::Manpage => false,
    };
    let result = match cli.command {
        Command::Learn(a) => learn::run(a),
        Command::Classify(a) => classify::run(a),
        Command::Forget(a) => forget::run(a),
        Command::Rename(a) => rename::run(a),
        Command::Merge(a) => merge::run(a),
        Command::Watch(a) => watch::run(a),
        #[cfg(feature = "serve")]
        Command::Serve(a) => serve::run(a),
        Command::Info(a) => info::run(a),
        Command::Demo(a) => demo::run(a),
        Command::Eval(a) => eval::run(a),
        Command::VerifyModel(a) => verify_model::run(a),
        Command::Models(a) => models::run(a),
        Command::Completions(a) => completions::completions(a),
        Command::Manpage => completions::manpage(),
    };
    match result {
        Ok(Outcome::Yes) => ExitCode::SUCCESS,
        Ok(Outcome::No) => ExitCode::from(1),
        Err(e) => {
            if json {
                outln!("{}", serde_json::json!({ "error": format!("{e:#}") }));
            }
            eprintln!("edgecl: error: {}", output::safe(&format!("{e:#}")));
            ExitCode::from(2)
        }
    }
}
