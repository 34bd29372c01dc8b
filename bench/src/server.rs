//! The server under test as a child process, and what `/proc` says about a process.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

/// A `parlor serve` started in a temporary folder (log, and its fresh SQLite database unless
/// [`StartOptions::database`] names another). Dropping it
/// kills the process (SIGKILL); [`Server::stop`] asks it to stop with SIGTERM first.
pub struct Server {
    child: Option<Child>,
    pub pid: u32,
    pub base_url: String,
    pub database: String,
    pub log_path: PathBuf,
    /// Kept so that the database lives as long as the server (removed on drop unless kept).
    _dir: Option<tempfile::TempDir>,
    pub dir_path: PathBuf,
}

pub struct StartOptions<'a> {
    pub bin: &'a Path,
    pub app_id: &'a str,
    pub master_key: &'a str,
    pub keep_db: bool,
    pub extra_args: &'a [String],
    /// `--database` of the server; `None`: a fresh SQLite file in its temporary folder.
    pub database: Option<&'a str>,
}

/// A free TCP port on 127.0.0.1 (bound then released: the server binds it right after).
fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).context("binding a probe socket")?;
    Ok(listener.local_addr()?.port())
}

impl Server {
    pub fn start(options: &StartOptions<'_>) -> anyhow::Result<Server> {
        if !options.bin.exists() {
            bail!(
                "server binary {} not found: build it with `cargo build --release -p parlor_server` or set PARLOR_BIN",
                options.bin.display()
            );
        }
        // The server runs in the temporary folder, so a relative path must be resolved first.
        let bin = options
            .bin
            .canonicalize()
            .with_context(|| format!("resolving {}", options.bin.display()))?;
        let dir = tempfile::Builder::new()
            .prefix("parlor-bench-")
            .tempdir()
            .context("creating a temporary folder")?;
        let dir_path = dir.path().to_path_buf();
        let db_path = dir_path.join("parlor.db");
        let database = options
            .database
            .map_or_else(|| format!("sqlite://{}", db_path.display()), str::to_owned);
        let log_path = dir_path.join("server.log");
        let log = File::create(&log_path).context("creating the server log")?;
        let port = free_port()?;
        let mut command = Command::new(&bin);
        command
            .arg("serve")
            .args(["--host", "127.0.0.1"])
            .args(["--port", &port.to_string()])
            .args(["--database", &database])
            .args(["--app-id", options.app_id])
            .args(["--master-key", options.master_key])
            .args(options.extra_args)
            .current_dir(&dir_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let pid = child.id();
        let dir = if options.keep_db {
            let _ = dir.keep();
            None
        } else {
            Some(dir)
        };
        Ok(Server {
            child: Some(child),
            pid,
            base_url: format!("http://127.0.0.1:{port}/parse"),
            database,
            log_path,
            _dir: dir,
            dir_path,
        })
    }

    /// `Some(status)` when the process has already exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|child| child.try_wait().ok().flatten())
    }

    /// The last lines of the server's log, for error messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// SIGTERM, then SIGKILL if it has not exited after `grace`.
    pub fn stop(&mut self, grace: Duration) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Memory of a process from `/proc/<pid>/status`, in MB: current RSS and peak RSS (VmHWM).
pub fn memory(pid: u32) -> Value {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| -> Option<f64> {
        status
            .lines()
            .find(|line| line.starts_with(name))
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map(|kb| round1(kb / 1024.0))
    };
    json!({ "rss_mb": field("VmRSS:"), "peak_rss_mb": field("VmHWM:") })
}

/// User + system CPU seconds a process has used so far (`/proc/<pid>/stat`, 100 ticks/s).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start at "state" (field 3).
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// CPU seconds used by the whole machine (all cores, busy time only) from `/proc/stat`.
pub fn machine_busy_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?;
    let values: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let busy: f64 = values
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, v)| v)
        .sum();
    Some(busy / 100.0)
}

pub fn loadavg() -> Value {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let values: Vec<f64> = text
        .split_whitespace()
        .take(3)
        .filter_map(|v| v.parse().ok())
        .collect();
    json!(values)
}

pub fn machine_info() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find(|line| line.starts_with("model name"))
        .and_then(|line| line.split_once(':'))
        .map(|(_, model)| model.trim().to_owned());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_total_mb = meminfo
        .lines()
        .find(|line| line.starts_with("MemTotal:"))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| (kb / 1024.0).round());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .map(|s| s.trim().to_owned());
    json!({
        "nproc": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "cpu_model": cpu_model,
        "mem_total_mb": mem_total_mb,
        "kernel": kernel,
    })
}

pub fn round1(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

pub fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}
