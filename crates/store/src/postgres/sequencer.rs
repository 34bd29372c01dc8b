//! Commit order for the change sink, without serialising the commits themselves.
//!
//! A transaction takes a ticket just before it sends `COMMIT` (once it holds every row lock it
//! needs) and reports its changes when its turn comes, tickets in order. Two transactions
//! that touch the same row cannot both hold its lock: the second gets past its `SELECT … FOR
//! UPDATE` only once the first has committed, so it takes a later ticket, and reports after
//! the first. Unrelated transactions commit concurrently, so PostgreSQL can still flush
//! them together (group commit); only their reports wait for one another, briefly.
//!
//! A ticket whose transaction fails (or whose task is dropped) is given up, so later turns
//! never wait for it.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// Hands out tickets and turns.
#[derive(Default)]
pub(crate) struct Sequencer {
    state: Mutex<State>,
    /// Woken whenever the turn moves.
    turn_moved: Notify,
}

#[derive(Default)]
struct State {
    next_ticket: u64,
    /// The ticket whose holder may report now.
    turn: u64,
    /// Tickets given up or reported that the turn has not passed yet.
    done: BTreeSet<u64>,
}

/// A place in the commit order. Dropping it gives the place up.
pub(crate) struct Ticket {
    sequencer: Arc<Sequencer>,
    number: u64,
    finished: bool,
}

impl Sequencer {
    pub(crate) fn ticket(self: &Arc<Sequencer>) -> Ticket {
        let number = match self.state.lock() {
            Ok(mut state) => {
                let number = state.next_ticket;
                state.next_ticket += 1;
                number
            }
            // A poisoned lock only arises from a panic while holding it, which the code
            // below never does; handing out a fresh number would wait forever.
            Err(poisoned) => {
                let mut state = poisoned.into_inner();
                let number = state.next_ticket;
                state.next_ticket += 1;
                number
            }
        };
        Ticket {
            sequencer: Arc::clone(self),
            number,
            finished: false,
        }
    }

    fn is_turn(&self, number: u64) -> bool {
        match self.state.lock() {
            Ok(state) => state.turn == number,
            Err(poisoned) => poisoned.into_inner().turn == number,
        }
    }

    fn finish(&self, number: u64) {
        let mut state = match self.state.lock() {
            Ok(state) => state,
            Err(poisoned) => poisoned.into_inner(),
        };
        state.done.insert(number);
        let mut moved = false;
        loop {
            let turn = state.turn;
            if !state.done.remove(&turn) {
                break;
            }
            state.turn += 1;
            moved = true;
        }
        drop(state);
        if moved {
            self.turn_moved.notify_waiters();
        }
    }
}

impl Ticket {
    /// Waits until every earlier ticket has reported or been given up.
    pub(crate) async fn wait_turn(&self) {
        loop {
            let notified = self.sequencer.turn_moved.notified();
            tokio::pin!(notified);
            // Registered before checking, so a move between the check and the wait wakes us.
            notified.as_mut().enable();
            if self.sequencer.is_turn(self.number) {
                return;
            }
            notified.await;
        }
    }

    /// Passes the turn on (after reporting, or to give the place up).
    pub(crate) fn finish(mut self) {
        self.finished = true;
        self.sequencer.finish(self.number);
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.finished {
            self.sequencer.finish(self.number);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reports come in ticket order even when later tickets are ready first, and a dropped
    /// ticket does not hold the others up.
    #[tokio::test]
    async fn turns_follow_tickets() {
        let sequencer = Arc::new(Sequencer::default());
        let first = sequencer.ticket();
        let second = sequencer.ticket();
        let third = sequencer.ticket();
        let order = Arc::new(Mutex::new(Vec::new()));
        let waiter = {
            let order = Arc::clone(&order);
            tokio::spawn(async move {
                third.wait_turn().await;
                if let Ok(mut order) = order.lock() {
                    order.push(3);
                }
                third.finish();
            })
        };
        tokio::task::yield_now().await;
        drop(second);
        first.wait_turn().await;
        if let Ok(mut order) = order.lock() {
            order.push(1);
        }
        first.finish();
        assert!(waiter.await.is_ok());
        assert_eq!(
            order.lock().map(|order| order.clone()).ok(),
            Some(vec![1, 3])
        );
        let fourth = sequencer.ticket();
        fourth.wait_turn().await;
        fourth.finish();
    }
}
