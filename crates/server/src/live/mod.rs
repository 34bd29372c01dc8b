//! LiveQuery (parse-protocol.md §11) over WebSocket, on the REST port and mount path.
//!
//! Each connection runs one task that reads client frames and the change-event bus, and a
//! writer task that drains a bounded queue of outgoing frames to the socket. For every
//! committed change of a subscribed class it evaluates the subscription's filter with the same
//! in-memory matcher as the property test checks against SQL, against the state before and
//! after, each time together with *that subscriber's* read rights (ACL, CLP pointer
//! permissions), and sends `create`/`update`/`enter`/`leave`/`delete` accordingly. Objects are
//! rendered through the operation layer for that subscriber, so protectedFields and server-only
//! fields never leave.
//!
//! - `hub`: settings and the per-user connection count.
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
