//! What the commands write on the console: their output on stdout, and their exit codes.

use std::io::Write;
use std::process::ExitCode;

/// Exit code for usage and configuration errors.
pub const EXIT_CONFIG: u8 = 2;

/// Writes `text` to stdout; a closed pipe (`| head`) ends the output quietly, not in a panic.
pub fn emit(text: &str, command: &str) -> ExitCode {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{command}: cannot write to stdout: {error}");
            ExitCode::FAILURE
        }
    }
}
