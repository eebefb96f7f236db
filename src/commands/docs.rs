//! `kline-etl completions SHELL` (clap_complete) and `kline-etl man` (clap_mangen): both are
//! generated from the same clap definition as `--help`, so they never drift from the flags.

use clap::CommandFactory;

use crate::cli::Shell;

/// The completion script for `shell`.
pub fn completions(shell: Shell) -> Vec<u8> {
    use clap_complete::Shell as S;
    let mut cmd = crate::cli::Cli::command();
    let shell = match shell {
        Shell::Bash => S::Bash,
        Shell::Zsh => S::Zsh,
        Shell::Fish => S::Fish,
        Shell::Powershell => S::PowerShell,
    };
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "kline-etl", &mut out);
    out
}

/// The man page, `kline-etl(1)`, in roff.
pub fn man_page() -> std::io::Result<Vec<u8>> {
    let cmd = crate::cli::Cli::command();
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd).render(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shell_completes_every_subcommand() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish, Shell::Powershell] {
            let text = String::from_utf8(completions(shell)).unwrap();
            for sub in ["run", "fetch", "status", "init", "completions", "man"] {
                assert!(text.contains(sub), "{shell:?} lacks {sub}");
            }
        }
    }

    #[test]
    fn the_man_page_lists_the_subcommands() {
        let page = String::from_utf8(man_page().unwrap()).unwrap();
        assert!(page.starts_with(".ie") || page.contains(".TH"), "{page}");
        assert!(page.contains("kline\\-etl"), "{page}");
        for sub in ["run", "fetch", "plan", "status", "init"] {
            assert!(page.contains(sub), "man page lacks {sub}");
        }
    }
}
