//! The `parlor` binary: `parlor serve` runs the server, `parlor schema` prints the live schema,
//! `parlor export` / `parlor import` move a whole database through a folder of JSON lines.

use std::ffi::OsStr;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use parlor_server::config::{DEFAULT_DATABASE, LogFormat, ServeOptions};
use parlor_server::schema_doc::{SchemaFormat, render};
use tokio::net::TcpListener;

/// Parlor: a Parse-compatible backend for generative-AI chat products.
/// Requests allocate many small JSON values across threads, where glibc's allocator spends
/// a quarter of a read's CPU time (measured with perf on the history query).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the server (REST API at http://<host>:<port><mount-path>).
    Serve(Box<ServeOptions>),
    /// Prints the live schema (the chat template's classes are created first if the database is new).
    Schema {
        /// Database URL.
        #[arg(long, env = "PARLOR_DATABASE", default_value = DEFAULT_DATABASE)]
        database: String,
        /// Output format.
        #[arg(long, value_enum, default_value = "json")]
        format: SchemaFormat,
    },
    /// Writes the whole database (schemas, every object with its hidden fields, relations,
    /// files) as JSON lines, one file per class, into a folder.
    Export {
        /// Database URL.
        #[arg(long, env = "PARLOR_DATABASE", default_value = DEFAULT_DATABASE)]
        database: String,
        /// The folder to write (created if missing).
        #[arg(long)]
        out: PathBuf,
    },
    /// Loads a folder written by `parlor export` into an empty database.
    Import {
        /// Database URL.
        #[arg(long, env = "PARLOR_DATABASE", default_value = DEFAULT_DATABASE)]
        database: String,
        /// The folder to read.
        #[arg(long = "in")]
        input: PathBuf,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let command = Cli::parse().command;
    // `serve` logs as its settings say (`--log-format`); the other commands as text. Logs go to
    // stderr: stdout carries the server's own lines and `parlor schema`'s document.
    let serve = match &command {
        Command::Serve(options) => Some(options.as_ref().clone().resolve()?),
        _ => None,
    };
    let colour = log_colours(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    parlor_server::logging::init(
        serve
            .as_ref()
            .map_or(LogFormat::Text, |config| config.log_format),
        colour,
    );
    // Every command may build an HTTP client (the LLM providers' probe at start-up).
    parlor_server::ai::provider::install_crypto_provider();
    match (serve, command) {
        (Some(config), _) => {
            let listener = TcpListener::bind((config.host.as_str(), config.port)).await?;
            parlor_server::run(config, listener, shutdown_signal()).await
        }
        (None, Command::Serve(_)) => Ok(()),
        (None, Command::Schema { database, format }) => {
            let options = ServeOptions {
                database: Some(database),
                ..ServeOptions::default()
            };
            let config = options.resolve()?;
            let operations = parlor_server::open_operations(&config, String::new()).await?;
            // The classes the API lists, so the console's diagram and this print agree.
            let schemas = operations.listed_schemas().await?;
            let refs: Vec<_> = schemas.iter().map(|schema| schema.as_ref()).collect();
            // A closed pipe (`parlor schema | head`) is not an error worth a panic.
            let mut stdout = std::io::stdout().lock();
            let _ = writeln!(stdout, "{}", render(&refs, format));
            operations.store.close().await;
            Ok(())
        }
        (None, Command::Export { database, out }) => {
            let store = open_database(database).await?;
            let exported = parlor_server::transfer::export(store.as_ref(), &out).await;
            store.close().await;
            println!("exported {} to {}", exported?, out.display());
            Ok(())
        }
        (None, Command::Import { database, input }) => {
            let store = open_database(database).await?;
            let imported = parlor_server::transfer::import(store.as_ref(), &input).await;
            store.close().await;
            println!("imported {} from {}", imported?, input.display());
            Ok(())
        }
    }
}

/// The bare store behind a database URL: no template classes are created, so an import
/// finds the database as empty as it is.
async fn open_database(
    database: String,
) -> anyhow::Result<std::sync::Arc<dyn parlor_store::Store>> {
    let options = ServeOptions {
        database: Some(database),
        ..ServeOptions::default()
    };
    parlor_server::open_store(&options.resolve()?).await
}

/// Whether log lines carry ANSI colours: only on a terminal, and never when `NO_COLOR` is set
/// to anything but the empty string (<https://no-color.org>). A file, a pipe or a log
/// collector would otherwise get escape codes in every line.
fn log_colours(is_terminal: bool, no_color: Option<&OsStr>) -> bool {
    is_terminal && no_color.is_none_or(OsStr::is_empty)
}

/// Resolves on Ctrl-C or SIGTERM. The handlers are installed when this is called, not when the
/// future is first polled, so a signal that arrives while the server starts still stops it
/// gracefully instead of killing it.
fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let interrupt = signal(SignalKind::interrupt()).ok();
        let terminate = signal(SignalKind::terminate()).ok();
        async move {
            let wait = |handler: Option<tokio::signal::unix::Signal>| async move {
                match handler {
                    Some(mut handler) => {
                        handler.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = wait(interrupt) => {},
                () = wait(terminate) => {},
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_only_on_a_terminal_without_no_color() {
        assert!(log_colours(true, None));
        assert!(log_colours(true, Some(OsStr::new(""))));
        assert!(!log_colours(true, Some(OsStr::new("1"))));
        assert!(!log_colours(false, None));
        assert!(!log_colours(false, Some(OsStr::new("1"))));
    }
}
