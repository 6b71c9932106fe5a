//! `backstop-mock --listen ADDR --script FILE`: the mock provider as a standalone process
//! (the `backstop mock` command calls the same [`backstop_mock::run`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: backstop-mock [--listen ADDR] [--script FILE]\n\
  --listen ADDR   address to listen on (default 127.0.0.1:8090; use 127.0.0.1:0 for any free port)\n\
  --script FILE   fault script, TOML or JSON (see docs/mock.md)";

fn parse_args() -> Result<(SocketAddr, Option<PathBuf>), String> {
    let mut listen = SocketAddr::from(([127, 0, 0, 1], 8090));
    let mut script = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f.to_owned(), Some(v.to_owned())),
            None => (arg.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or(format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--listen" => {
                let text = value()?;
                listen = text.parse().map_err(|e| {
                    format!("--listen {text:?}: {e} (expected e.g. 127.0.0.1:8090)")
                })?;
            }
            "--script" => script = Some(PathBuf::from(value()?)),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok((listen, script))
}

fn main() -> ExitCode {
    let (listen, script) = match parse_args() {
        Ok(parsed) => parsed,
        Err(message) if message.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("backstop-mock: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("backstop-mock: cannot start the async runtime: {err}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(backstop_mock::run(listen, script)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err @ backstop_mock::MockError::Script { .. }) => {
            eprintln!("backstop-mock: {err}");
            ExitCode::from(2)
        }
        Err(err) => {
            eprintln!("backstop-mock: {err}");
            ExitCode::from(1)
        }
    }
}
