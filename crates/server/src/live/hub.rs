//! What all live-query connections share: the settings, and how many connections each user
//! holds (the per-user limit).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

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
#[derive(Debug, Default)]
pub struct Hub {
    pub config: LiveConfig,
    connections_per_user: Mutex<HashMap<String, usize>>,
}

impl Hub {
    pub fn new(config: LiveConfig) -> Hub {
        Hub {
            config,
            connections_per_user: Mutex::default(),
        }
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
