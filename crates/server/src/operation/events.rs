//! Change events: every committed write is published, after its commit and in commit order,
//! for the live-query hub (and, later, other instances). A failed write publishes nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use parlor_core::object::Object;
use parlor_store::{Change, ChangeSink, WriteOutcome};
use tokio::sync::{broadcast, mpsc};

/// One committed change of one object.
#[derive(Debug)]
pub struct ChangeEvent {
    pub class_name: String,
    /// The state before the write (`None` for a create).
    pub before: Option<Object>,
    /// The state after the write (`None` for a delete).
    pub after: Option<Object>,
    /// When this instance learned of the change (ISO date): sessions that expired before it
    /// receive nothing of it.
    pub at: String,
    /// The states as JSON text, per reader's rights: thousands of subscribers with the same
    /// rights share one rendering instead of each building its own.
    pub renderings: Mutex<HashMap<String, Arc<str>>>,
    /// What each live-query subscription shape (`Subscription::shape`) gets of this change,
    /// `None` for nothing: thousands of subscribers with the same query and rights share one
    /// match and one rendering. A short list, searched in order (one entry per shape).
    pub deliveries: Mutex<Vec<ShapeDelivery>>,
}

/// A subscription shape and what it gets of a change (`None`: nothing).
pub type ShapeDelivery = (Arc<str>, Option<Arc<Delivery>>);

/// The event one subscription shape gets of a change, before the app's afterLiveQueryEvent
/// (which runs per subscriber).
#[derive(Debug)]
pub struct Delivery {
    /// `create`, `update`, `enter`, `leave` or `delete`.
    pub op: &'static str,
    /// The object as JSON text, as the subscriber may see it.
    pub object: Arc<str>,
    /// The state before the change, for `update`, `enter` and `leave`.
    pub original: Option<Arc<str>>,
}

impl ChangeEvent {
    pub fn new(class_name: String, before: Option<Object>, after: Option<Object>) -> ChangeEvent {
        ChangeEvent {
            class_name,
            before,
            after,
            at: parlor_core::value::now_iso(),
            renderings: Mutex::default(),
            deliveries: Mutex::default(),
        }
    }
}

/// The in-process bus. Subscribers that fall more than its capacity behind lose events and
/// are told so (`RecvError::Lagged`), rather than growing memory without bound.
#[derive(Clone)]
pub struct EventBus {
    sender: broadcast::Sender<Arc<ChangeEvent>>,
    /// Where this instance's own changes also go, for other instances (see `relay`).
    outlet: Arc<OnceLock<mpsc::UnboundedSender<Arc<ChangeEvent>>>>,
    /// The task that publishes this instance's changes to the subscribers, once the live
    /// queries have one (`hand_off`).
    handoff: Arc<OnceLock<mpsc::UnboundedSender<Arc<ChangeEvent>>>>,
}

impl Default for EventBus {
    fn default() -> EventBus {
        let (sender, _) = broadcast::channel(8192);
        EventBus {
            sender,
            outlet: Arc::default(),
            handoff: Arc::default(),
        }
    }
}

impl EventBus {
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<ChangeEvent>> {
        self.sender.subscribe()
    }

    /// Also hands every change committed here to `outlet`, in commit order. Set once.
    pub fn set_outlet(&self, outlet: mpsc::UnboundedSender<Arc<ChangeEvent>>) {
        let _ = self.outlet.set(outlet);
    }

    /// From now on, changes committed here reach the subscribers through a task on `runtime`
    /// instead of the commit path itself. Publishing wakes every subscriber (10,000 wake-ups
    /// for one message in a busy chat); the thread that commits, which the writer who made
    /// the change and every writer after it wait on, then only queues the change. Order is
    /// kept: one queue, one task. Set once.
    pub fn hand_off(&self, runtime: &tokio::runtime::Handle) {
        self.handoff.get_or_init(|| {
            let (queue, mut queued) = mpsc::unbounded_channel::<Arc<ChangeEvent>>();
            let sender = self.sender.clone();
            runtime.spawn(async move {
                while let Some(event) = queued.recv().await {
                    let _ = sender.send(event);
                }
            });
            queue
        });
    }

    /// Publishes a change committed by another instance to this instance's subscribers.
    pub fn publish_remote(&self, event: ChangeEvent) {
        let _ = self.sender.send(Arc::new(event));
    }
}

/// The store calls this on its commit path, in commit order.
impl ChangeSink for EventBus {
    fn committed(&self, changes: &[Change<'_>]) {
        let outlet = self.outlet.get();
        let handoff = self.handoff.get();
        // Nobody listening: skip the copies. Not once changes go through the hand-off: who
        // listens is then known only when the queued change is published, and a subscriber
        // arriving meanwhile receives the queued changes, so it must receive this later one too
        // (skipped, it would be left with an older state and nothing to correct it).
        if handoff.is_none() && self.sender.receiver_count() == 0 && outlet.is_none() {
            return;
        }
        for change in changes {
            let (before, after) = match change.outcome {
                WriteOutcome::Created(object) => (None, Some(object.clone())),
                WriteOutcome::Updated { before, after } => {
                    (Some(before.clone()), Some(after.clone()))
                }
                WriteOutcome::Deleted(object) => (Some(object.clone()), None),
            };
            let event = Arc::new(ChangeEvent::new(
                change.class_name.to_owned(),
                before,
                after,
            ));
            if let Some(outlet) = outlet {
                let _ = outlet.send(Arc::clone(&event));
            }
            match handoff {
                Some(handoff) => {
                    let _ = handoff.send(event);
                }
                None => {
                    let _ = self.sender.send(event);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn commit(bus: &EventBus, object_id: &str) {
        let outcome = WriteOutcome::Created(Object {
            object_id: object_id.to_owned(),
            ..Object::default()
        });
        bus.committed(&[Change {
            class_name: "Note",
            outcome: &outcome,
        }]);
    }

    async fn next_id(events: &mut broadcast::Receiver<Arc<ChangeEvent>>) -> Option<String> {
        let event = tokio::time::timeout(Duration::from_secs(5), events.recv())
            .await
            .ok()?
            .ok()?;
        event.after.as_ref().map(|object| object.object_id.clone())
    }

    /// Every client reconnects at once (nobody listens for a moment) while changes wait in the
    /// hand-off's queue: a client back before they are published receives them, and then the
    /// changes committed while nobody listened, or its view would go back in time for good.
    #[test]
    fn a_subscriber_receives_what_follows_the_queued_changes_it_receives() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let bus = EventBus::default();
        let gone = bus.subscribe();
        // The runtime is not driven yet: what is handed off waits in the queue.
        bus.hand_off(runtime.handle());
        commit(&bus, "older");
        drop(gone);
        commit(&bus, "newer");
        let mut back = bus.subscribe();
        runtime.block_on(async {
            assert_eq!(next_id(&mut back).await.as_deref(), Some("older"));
            assert_eq!(next_id(&mut back).await.as_deref(), Some("newer"));
        });
    }
}
