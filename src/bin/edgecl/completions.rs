//! `edgecl completions SHELL` and `edgecl manpage`: generated from the command-line definitions, so they
//! never drift from them (the Debian package ships both).

use anyhow::Result;
use clap::CommandFactory;

use crate::{Cli, Outcome};

#[derive(clap::Args)]
pub struct CompletionArgs {
    /// bash, zsh, fish, elvish or powershell.
    shell: clap_complete::Shell,
}

pub fn completions(a: CompletionArgs) -> Result<Outcome> {
    let mut cmd = Cli::command();
    clap_complete::generate(a.shell, &mut cmd, "edgecl", &mut std::io::stdout());
    Ok(Outcome::Yes)
}

/// The man page (roff) on stdout: `edgecl manpage > edgecl.1`.
pub fn manpage() -> Result<Outcome> {
    clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
    Ok(Outcome::Yes)
}
