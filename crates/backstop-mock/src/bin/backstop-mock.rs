//! `backstop-mock --listen ADDR --script FILE`: the mock provider as a standalone process
//! (the `backstop mock` command calls the same [`backstop_mock::run`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use backstop_mock::{MockError, MockTls};

const USAGE: &str = "usage: backstop-mock [--listen ADDR] [--script FILE] [--tls-cert FILE --tls-key FILE [--http1-only]]\n\
  --listen ADDR     address to listen on (default 127.0.0.1:8090; use 127.0.0.1:0 for any free port)\n\
  --script FILE     fault script, TOML or JSON (see docs/mock.md)\n\
  --tls-cert FILE   serve HTTPS with this PEM certificate chain (leaf first); needs --tls-key\n\
  --tls-key FILE    the PEM private key of that certificate\n\
  --http1-only      over TLS, offer only http/1.1 by ALPN (default: h2 and http/1.1)";

/// The parsed command line.
struct Args {
    listen: SocketAddr,
    script: Option<PathBuf>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    http1_only: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut listen = SocketAddr::from(([127, 0, 0, 1], 8090));
    let mut script = None;
    let (mut tls_cert, mut tls_key, mut http1_only) = (None, None, false);
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
            "--tls-cert" => tls_cert = Some(PathBuf::from(value()?)),
            "--tls-key" => tls_key = Some(PathBuf::from(value()?)),
            "--http1-only" if inline.is_none() => http1_only = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if tls_cert.is_some() != tls_key.is_some() {
        return Err("--tls-cert and --tls-key go together".to_owned());
    }
    if http1_only && tls_cert.is_none() {
        return Err("--http1-only needs --tls-cert and --tls-key (ALPN is part of TLS)".to_owned());
    }
    Ok(Args {
        listen,
        script,
        tls_cert,
        tls_key,
        http1_only,
    })
}

/// Loads the TLS certificate and key, if asked for.
fn load_tls(args: &Args) -> Result<Option<MockTls>, MockError> {
    let cert_and_key = args.tls_cert.as_deref().zip(args.tls_key.as_deref());
    MockTls::from_flags(cert_and_key, args.http1_only)
}

fn main() -> ExitCode {
    let args = match parse_args() {
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
    let outcome = load_tls(&args)
        .and_then(|tls| runtime.block_on(backstop_mock::run_with(args.listen, args.script, tls)));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err @ (MockError::Script { .. } | MockError::Tls { .. })) => {
            eprintln!("backstop-mock: {err}");
            ExitCode::from(2)
        }
        Err(err) => {
            eprintln!("backstop-mock: {err}");
            ExitCode::from(1)
        }
    }
}
