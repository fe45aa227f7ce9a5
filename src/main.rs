//! `authgate -c gateway.toml`: run the gateway. `authgate -c gateway.toml --test`: check the
//! configuration, print every problem, exit 0 or 64.

use authgate::config::{Config, LogFormat};
use authgate::reload::LogLevelSetter;
use authgate::server::{self, RunOptions};
use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// mimalloc instead of glibc's malloc: the proxy allocates and frees small objects on every
/// request (headers, futures), and the load benchmark measured the difference (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit status for a bad configuration (EX_USAGE, as linkerd and sysexits.h).
const EXIT_BAD_CONFIG: u8 = 64;

/// Exit status when a listener cannot be opened (EX_UNAVAILABLE, sysexits.h).
const EXIT_CANNOT_LISTEN: i32 = 69;

/// A reverse-proxy OpenID Connect authentication gateway.
#[derive(Debug, Parser)]
#[command(name = "authgate", version, about)]
struct Cli {
    /// The configuration file.
    #[arg(
        short = 'c',
        long = "conf",
        value_name = "FILE",
        default_value = "gateway.toml"
    )]
    conf: PathBuf,
    /// Check the configuration and exit: 0 when valid, 64 with every problem listed otherwise.
    #[arg(short = 't', long = "test")]
    test: bool,
    /// Take over the listening sockets of a running authgate (graceful binary upgrade); send
    /// SIGQUIT to the old process after starting the new one with this flag.
    #[arg(short = 'u', long = "upgrade")]
    upgrade: bool,
    /// Run in the background.
    #[arg(short = 'd', long = "daemon")]
    daemon: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(&cli.conf) {
        Ok(c) => c,
        Err(errors) => {
            eprint!("{errors}");
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    };
    if cli.test {
        if let Err(e) = server::check(&config) {
            eprintln!("{}: {e}", cli.conf.display());
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
        println!("{}: configuration ok", cli.conf.display());
        return ExitCode::SUCCESS;
    }
    let set_log_level = init_logging(&config.server.log_level, config.server.log_format);
    exit_when_a_listener_cannot_open();
    let options = RunOptions {
        upgrade: cli.upgrade,
        daemon: cli.daemon,
        config_path: cli.conf.clone(),
        set_log_level,
    };
    match server::build(config, options) {
        Ok((server, _gateway)) => {
            tracing::info!(version = env!("CARGO_PKG_VERSION"), "authgate starting");
            server.run_forever()
        }
        Err(e) => {
            eprintln!("{}: {e}", cli.conf.display());
            ExitCode::from(EXIT_BAD_CONFIG)
        }
    }
}

/// pingora opens each listener inside its service's task and, when the address is still taken
/// after 30 s of retries or the TLS files cannot be loaded, panics there. The task dies and the rest
/// of the process runs on: a gateway without its proxy (or admin) listener that a supervisor
/// sees as alive. Such a gateway exits instead. Any other panic keeps the default behavior (a
/// panic in a request's task ends that request, not the gateway).
fn exit_when_a_listener_cannot_open() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or_default();
        // The second: its TLS files, checked at start (`server::check`), unusable by the time
        // the listener is built.
        if message.starts_with("Failed to build listeners")
            || message.starts_with("Failed to load provided certificates")
        {
            tracing::error!(error = message, "cannot open a listener; exiting");
            std::process::exit(EXIT_CANNOT_LISTEN);
        }
    }));
}

/// Logs to stderr, text or JSON. `AUTHGATE_LOG` overrides `server.log_level`; without it the
/// level can change on reload (the returned setter).
/// The prefix of the log targets whose debug and trace lines carry header values
/// (`pingora_core`, `pingora_proxy`, ...): capped at `info` whatever `log_level` or
/// `AUTHGATE_LOG` says.
const SECRET_BEARING_TARGETS: &str = "pingora";

fn init_logging(level: &str, format: LogFormat) -> Option<LogLevelSetter> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{fmt, reload, EnvFilter, Layer};

    let from_env = EnvFilter::try_from_env("AUTHGATE_LOG").ok();
    let pinned = from_env.is_some();
    let (filter, handle) = reload::Layer::new(from_env.unwrap_or_else(|| EnvFilter::new(level)));
    let output = match format {
        LogFormat::Json => fmt::layer().json().with_writer(std::io::stderr).boxed(),
        LogFormat::Text => fmt::layer().with_writer(std::io::stderr).boxed(),
    };
    // pingora's debug lines print whole request headers (a client's `Authorization`, the
    // identity headers, `X-Forwarded-Access-Token`): no setting may turn them on. A filter
    // function, not an `EnvFilter("trace,...")`: it gives no level hint, so the most verbose
    // level stays `filter`'s, and with it `log`'s maximum, below which pingora's many
    // `debug!` calls per request cost nothing (a "trace" hint cost 5,700 instructions per
    // request under callgrind).
    let never_secrets = tracing_subscriber::filter::filter_fn(|meta| {
        !(meta.target().starts_with(SECRET_BEARING_TARGETS) && *meta.level() > tracing::Level::INFO)
    });
    tracing_subscriber::registry()
        .with(never_secrets)
        .with(filter)
        .with(output)
        .init();
    if pinned {
        return None;
    }
    Some(Arc::new(move |level: &str| {
        let filter = EnvFilter::try_new(level).map_err(|e| e.to_string())?;
        handle.reload(filter).map_err(|e| e.to_string())
    }))
}
