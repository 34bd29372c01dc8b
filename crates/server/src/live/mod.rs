//! LiveQuery (parse-protocol.md §11) over WebSocket, on the REST port and mount path.
//!
//! Each connection runs one task, on the live-query runtime (`spawn`), that reads client frames
//! and the change-event bus and writes to the socket through a bounded queue. For every
//! committed change of a subscribed class it evaluates the subscription's filter with the same
//! in-memory matcher as the property test checks against SQL, against the state before and
//! after, each time together with *that subscriber's* read rights (ACL, CLP pointer
//! permissions), and sends `create`/`update`/`enter`/`leave`/`delete` accordingly. Objects are
//! rendered through the operation layer for that subscriber, so protectedFields and server-only
//! fields never leave.
//!
//! - `hub`: settings, the per-user connection count and the shared subscription shapes.
//! - `connection`: one client's protocol state machine and its queue.
//! - `frame`: the shape each client frame must have, checked as Parse Server checks it.
//! - `subscription`: one query, its rights and the event a change gives it.

mod connection;
mod frame;
mod hub;
mod subscription;

pub use connection::serve_socket;
pub use hub::{Hub, LiveConfig};
pub use subscription::{EventKind, Subscription};

use crate::http::AppState;

/// Bytes of frames a connection buffers before writing them: an event frame is ~700 bytes,
/// so a connection that fell behind writes two events per system call, and catches up (a
/// starved fan-out without it fell seconds behind at 10,000 subscribers). tungstenite's write
/// buffer keeps the size it once grew to, so it stays this small: a 32 KiB one let every
/// connection keep a few KB after a busy fan-out.
pub const WRITE_BUFFER: usize = 1024;

/// Runs a connection's task on the live-query runtime, away from the request path.
///
/// One event wakes every subscriber's task at once (10,000 of them for one message in a busy
/// chat). On the runtime that serves requests they would queue ahead of the request that
/// committed the change and of every request after it, so a create would wait for its own
/// fan-out. On their own threads, at a lower priority, they take the cores the requests leave
/// (the kernel's scheduler runs a woken request worker first), and the changes reach them
/// through a task of that runtime rather than from the commit path (`EventBus::hand_off`).
/// The sockets stay registered with the server's reactor, which wakes these tasks across
/// runtimes.
pub fn spawn(state: &AppState, connection: impl Future<Output = ()> + Send + 'static) {
    match runtime() {
        Some(runtime) => {
            state.operations.events.hand_off(runtime.handle());
            runtime.spawn(connection);
        }
        None => {
            tokio::spawn(connection);
        }
    }
}

/// How much lower than the request workers the live-query threads run (a `nice` value):
/// under contention the kernel gives a request worker about three times their share.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
const NICENESS: libc::c_int = 5;

/// The process's live-query runtime, started with the first connection; `None` when the
/// system refuses its threads (connections then run on the caller's runtime).
fn runtime() -> Option<&'static tokio::runtime::Runtime> {
    static RUNTIME: std::sync::OnceLock<Option<tokio::runtime::Runtime>> =
        std::sync::OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .thread_name("parlor-live")
                .on_thread_start(lower_priority)
                .enable_all()
                .build()
                .ok()
        })
        .as_ref()
}

/// Lowers the calling thread's priority by [`NICENESS`]; best effort. Elsewhere than Linux a
/// niceness is the whole process's, so the threads keep the default there.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: gettid and setpriority only read their arguments; on Linux PRIO_PROCESS with a
    // thread id sets that thread's own niceness.
    unsafe {
        let thread = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, thread as libc::id_t, NICENESS);
    }
}
