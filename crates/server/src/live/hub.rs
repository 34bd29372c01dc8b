//! What all live-query connections share: the settings, how many connections each user
//! holds (the per-user limit), and a register of the open connections and their
//! subscriptions by class, which the metrics gauges follow and the console's Live screen
//! reads (`GET {mount}/serverStatus`).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use super::subscription::Shape;
use crate::metrics::Metrics;

/// Live-query settings (`--live-query-*`).
#[derive(Debug, Clone)]
pub struct LiveConfig {
    /// Classes live queries serve; `None`: every class.
    pub classes: Option<Vec<String>>,
    /// Subscriptions one connection may hold.
    pub max_subscriptions: usize,
    /// Connections one user may hold at once.
    pub max_connections_per_user: usize,
    /// Frames waiting for one client before it counts as too slow.
    pub queue: usize,
}

impl Default for LiveConfig {
    fn default() -> LiveConfig {
        LiveConfig {
            classes: None,
            max_subscriptions: 1000,
            max_connections_per_user: 100,
            queue: 1000,
        }
    }
}

/// Shared by every connection of one server.
#[derive(Default)]
pub struct Hub {
    pub config: LiveConfig,
    connections_per_user: Mutex<HashMap<String, usize>>,
    /// The open connections by a key of their own: touched when a client connects,
    /// subscribes, unsubscribes or leaves, never per event.
    connections: Mutex<HashMap<u64, ConnectionRecord>>,
    next_key: AtomicU64,
    /// One copy of each subscription shape in use: subscribers of the same query with the
    /// same rights hold one copy between them, and an event's shared deliveries are found
    /// by comparing pointers.
    shapes: Mutex<Shapes>,
    /// The server's metrics when they are on: the connection and subscription gauges move
    /// with this register, so they cannot drift from it.
    pub metrics: Option<Arc<Metrics>>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Hub")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The interned shapes, and how many there were after the last sweep of unused ones.
#[derive(Default)]
struct Shapes {
    held: HashMap<Arc<str>, Arc<Shape>>,
    swept_at: usize,
}

/// What the register knows of one open connection.
#[derive(Debug, Clone)]
struct ConnectionRecord {
    client_id: String,
    address: IpAddr,
    opened_at: String,
    user_id: Option<String>,
    /// `(requestId, className)` of each subscription.
    subscriptions: Vec<(i64, String)>,
}

impl Hub {
    pub fn new(config: LiveConfig, metrics: Option<Arc<Metrics>>) -> Hub {
        Hub {
            config,
            metrics,
            ..Hub::default()
        }
    }

    /// Registers a new connection; it leaves the register when the returned value drops.
    pub fn register(self: &Arc<Hub>, client_id: &str, address: IpAddr) -> Registration {
        let key = self.next_key.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut connections) = self.connections.lock() {
            connections.insert(
                key,
                ConnectionRecord {
                    client_id: client_id.to_owned(),
                    address,
                    opened_at: parlor_core::value::now_iso(),
                    user_id: None,
                    subscriptions: Vec::new(),
                },
            );
        }
        if let Some(metrics) = &self.metrics {
            metrics.live_connections.inc();
        }
        Registration {
            hub: Arc::clone(self),
            key,
        }
    }

    fn with_record(&self, key: u64, change: impl FnOnce(&mut ConnectionRecord)) {
        if let Ok(mut connections) = self.connections.lock()
            && let Some(record) = connections.get_mut(&key)
        {
            change(record);
        }
    }

    /// The held copy of `shape`, which becomes the held copy when there is none.
    pub fn intern(&self, shape: Arc<Shape>) -> Arc<Shape> {
        let Ok(mut shapes) = self.shapes.lock() else {
            return shape;
        };
        if let Some(held) = shapes.held.get(&shape.key) {
            return Arc::clone(held);
        }
        // Shapes nobody holds any more go when the set has doubled since the last sweep, so
        // the sweeps cost a constant per shape added.
        if shapes.held.len() >= 2 * shapes.swept_at.max(64) {
            shapes.held.retain(|_, held| Arc::strong_count(held) > 1);
            shapes.swept_at = shapes.held.len();
        }
        shapes
            .held
            .insert(Arc::clone(&shape.key), Arc::clone(&shape));
        shape
    }

    /// Counts a slow client cut off (its queue filled, or it fell behind the event bus).
    pub fn count_slow_consumer(&self) {
        if let Some(metrics) = &self.metrics {
            metrics.live_slow_consumers_dropped.inc();
        }
    }

    /// Counts event frames queued for clients.
    pub fn count_events(&self, events: usize) {
        if let Some(metrics) = &self.metrics
            && events > 0
        {
            metrics.live_events.inc_by(events as u64);
        }
    }

    /// How many connections are open (`request.clients` of `beforeConnect`).
    pub fn connection_count(&self) -> usize {
        self.connections
            .lock()
            .map(|connections| connections.len())
            .unwrap_or_default()
    }

    /// The open connections and their subscriptions: totals, subscriptions per class, and
    /// the `limit` connections opened last (`clientId`, `userId`, `address`, `openedAt`,
    /// `subscriptions` by class).
    pub fn status(&self, limit: usize) -> Value {
        let records: Vec<ConnectionRecord> = self
            .connections
            .lock()
            .map(|connections| connections.values().cloned().collect())
            .unwrap_or_default();
        let mut by_class: BTreeMap<&str, u64> = BTreeMap::new();
        let mut users = std::collections::HashSet::new();
        for record in &records {
            for (_, class_name) in &record.subscriptions {
                *by_class.entry(class_name.as_str()).or_default() += 1;
            }
            if let Some(user_id) = &record.user_id {
                users.insert(user_id.as_str());
            }
        }
        let subscriptions: u64 = by_class.values().sum();
        let mut newest: Vec<&ConnectionRecord> = records.iter().collect();
        newest.sort_by(|a, b| b.opened_at.cmp(&a.opened_at));
        let clients: Vec<Value> = newest
            .into_iter()
            .take(limit)
            .map(|record| {
                let mut classes: BTreeMap<&str, u64> = BTreeMap::new();
                for (_, class_name) in &record.subscriptions {
                    *classes.entry(class_name.as_str()).or_default() += 1;
                }
                json!({
                    "clientId": record.client_id,
                    "userId": record.user_id,
                    "address": record.address.to_string(),
                    "openedAt": record.opened_at,
                    "subscriptions": classes,
                })
            })
            .collect();
        json!({
            "connections": records.len(),
            "users": users.len(),
            "subscriptions": subscriptions,
            "subscriptionsByClass": by_class,
            "clients": clients,
        })
    }

    /// Whether live queries serve this class.
    pub fn serves(&self, class_name: &str) -> bool {
        self.config
            .classes
            .as_ref()
            .is_none_or(|classes| classes.iter().any(|class| class == class_name))
    }

    /// Counts a connection of `user_id`; `None` when the user already holds the most allowed.
    /// The count drops when the returned slot does.
    pub fn admit(self: &Arc<Hub>, user_id: &str) -> Option<UserSlot> {
        let mut counts = self.connections_per_user.lock().ok()?;
        let count = counts.entry(user_id.to_owned()).or_insert(0);
        if *count >= self.config.max_connections_per_user {
            return None;
        }
        *count += 1;
        Some(UserSlot {
            hub: Arc::clone(self),
            user_id: user_id.to_owned(),
        })
    }
}

/// One user's connection, counted while it lives.
#[derive(Debug)]
pub struct UserSlot {
    hub: Arc<Hub>,
    user_id: String,
}

impl UserSlot {
    pub fn user_id(&self) -> &str {
        &self.user_id
    }
}

impl Drop for UserSlot {
    fn drop(&mut self) {
        if let Ok(mut counts) = self.hub.connections_per_user.lock()
            && let Some(count) = counts.get_mut(&self.user_id)
        {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.user_id);
            }
        }
    }
}

/// One connection's place in the hub's register, removed (and its subscriptions uncounted)
/// when dropped, however the connection ends.
pub struct Registration {
    hub: Arc<Hub>,
    key: u64,
}

impl Registration {
    /// The user the connection's `connect` logged in as (`None`: anonymous, or a token that
    /// ended).
    pub fn set_user(&self, user_id: Option<&str>) {
        self.hub.with_record(self.key, |record| {
            record.user_id = user_id.map(str::to_owned)
        });
    }

    /// A subscription added (or replaced, when the request id is held already).
    pub fn subscribed(&self, request_id: i64, class_name: &str) {
        let mut added = false;
        self.hub.with_record(self.key, |record| {
            match record
                .subscriptions
                .iter_mut()
                .find(|(held, _)| *held == request_id)
            {
                Some(held) => held.1 = class_name.to_owned(),
                None => {
                    record
                        .subscriptions
                        .push((request_id, class_name.to_owned()));
                    added = true;
                }
            }
        });
        if added && let Some(metrics) = &self.hub.metrics {
            metrics.live_subscriptions.inc();
        }
    }

    /// The hub's copy of a subscription shape.
    pub fn intern(&self, shape: Arc<Shape>) -> Arc<Shape> {
        self.hub.intern(shape)
    }

    /// A subscription ended.
    pub fn unsubscribed(&self, request_id: i64) {
        let mut removed = false;
        self.hub.with_record(self.key, |record| {
            let before = record.subscriptions.len();
            record.subscriptions.retain(|(held, _)| *held != request_id);
            removed = record.subscriptions.len() < before;
        });
        if removed && let Some(metrics) = &self.hub.metrics {
            metrics.live_subscriptions.dec();
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let record = self
            .hub
            .connections
            .lock()
            .ok()
            .and_then(|mut connections| connections.remove(&self.key));
        if let Some(metrics) = &self.hub.metrics {
            metrics.live_connections.dec();
            let held = record.map_or(0, |record| record.subscriptions.len());
            metrics
                .live_subscriptions
                .dec_by(i64::try_from(held).unwrap_or(i64::MAX));
        }
    }
}
