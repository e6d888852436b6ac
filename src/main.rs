//! The `keyrot` binary: parse flags, run, exit with the documented code.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    // Files keyrot or a plugin creates (the compiled-code cache, a rewritten
    // credentials file) hold secrets or trusted code: private by default.
    // SAFETY: umask has no preconditions and cannot fail.
    unsafe { libc::umask(0o077) };
    let args = cli::Cli::parse_args();
    cli::init_logging(&args);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            cli::stderr_line(format_args!("error: cannot start the async runtime: {err}"));
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(cli::run(&args));
    // A plugin's file call can be stuck on the blocking pool (a FIFO, a hung
    // mount) after its timeout fired; don't wait for it to exit.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) if cli::is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            cli::report_bad_input(&args, &err);
            ExitCode::from(cli::EXIT_BAD_INPUT)
        }
    }
}
