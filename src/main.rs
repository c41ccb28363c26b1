//! The `retrain` command-line tool: a thin shell over the library.

mod cli;

use clap::Parser;

fn main() -> std::process::ExitCode {
    // Behave like other Unix tools when piped into `head`: exit quietly on a closed pipe
    // instead of panicking inside println!.
    #[cfg(target_os = "linux")]
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let args = cli::Cli::parse();
    cli::init_tracing(args.verbose);
    match cli::run(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // Library errors already name their cause in their message; print a cause of
            // the chain only when it adds something.
            let mut msg = e.to_string();
            for cause in e.chain().skip(1) {
                let c = cause.to_string();
                if !msg.contains(&c) {
                    msg = format!("{msg}: {c}");
                }
            }
            eprintln!("error: {msg}");
            std::process::ExitCode::FAILURE
        }
    }
}
