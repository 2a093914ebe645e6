//! The `clsync` binary: the command line ([`cli`]) over the library.

mod cli;
mod manpages;

fn main() -> std::process::ExitCode {
    cli::main()
}
