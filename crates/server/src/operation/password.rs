//! Password hashing: argon2id for new hashes (OWASP's parameters: 19 MiB, 2 passes, 1 lane),
//! bcrypt verification for hashes imported from Parse Server.
//!
//! Both are CPU-heavy by design, so they never run on the async workers. They run on a small
//! pool of threads of their own (one per core) at a low scheduling priority (nice 10): when the
//! machine is idle log-ins use every core, and when requests are waiting the kernel runs those
//! first, so a burst of log-ins cannot starve the rest of the server.

use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, OnceLock};

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use parlor_core::Error;
use tokio::sync::oneshot;

type Job = Box<dyn FnOnce() + Send>;

/// The hashing threads' queue.
fn hashing_pool() -> &'static Mutex<Sender<Job>> {
    static POOL: OnceLock<Mutex<Sender<Job>>> = OnceLock::new();
    POOL.get_or_init(|| {
        let (sender, receiver) = channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        let threads = std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(2);
        for index in 0..threads {
            let receiver = receiver.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("parlor-hash-{index}"))
                .spawn(move || run_hashing_thread(&receiver));
            if let Err(error) = spawned {
                tracing::error!(%error, "could not start a password-hashing thread");
            }
        }
        Mutex::new(sender)
    })
}

fn run_hashing_thread(receiver: &Mutex<Receiver<Job>>) {
    // Linux keeps the nice value per thread: this lowers only the hashing threads.
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority has no memory-safety preconditions; `who = 0` is the calling thread.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 10);
    }
    loop {
        let job = match receiver.lock() {
            Ok(receiver) => receiver.recv(),
            Err(_) => return,
        };
        match job {
            Ok(job) => job(),
            Err(_) => return,
        }
    }
}

/// Runs `work` on a hashing thread and waits for it without blocking the runtime.
async fn on_hashing_thread<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Error> {
    let (reply, answer) = oneshot::channel();
    let job: Job = Box::new(move || {
        let _ = reply.send(work());
    });
    hashing_pool()
        .lock()
        .map_err(|_| Error::internal())?
        .send(job)
        .map_err(|_| Error::internal())?;
    answer.await.map_err(|_| Error::internal())
}

/// The outcome of checking a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    No,
    Yes,
    /// Correct, but stored with an older scheme (bcrypt): rehash it with argon2id.
    YesRehash,
}

/// A hash of a random password: verifying against it costs what a real check costs, so a log-in
/// for a user that does not exist takes about as long as one with a wrong password.
pub const DECOY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$ZGVjb3ktc2FsdC1wYXJsb3I$4T7jFGNnOT1CX7hz7dFFfmRxx2Ruv1pJ8aWT3G+OcH4";

/// Hashes a password with argon2id.
pub async fn hash(password: String) -> Result<String, Error> {
    on_hashing_thread(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|hash| hash.to_string())
            .map_err(|_| Error::internal())
    })
    .await?
}

/// Checks a password against a stored hash (argon2 PHC string, or bcrypt `$2a$`/`$2b$`/`$2y$`).
pub async fn verify(password: String, stored: String) -> Verified {
    on_hashing_thread(move || verify_blocking(&password, &stored))
        .await
        .unwrap_or(Verified::No)
}

fn verify_blocking(password: &str, stored: &str) -> Verified {
    if stored.starts_with("$argon2") {
        let Ok(parsed) = PasswordHash::new(stored) else {
            return Verified::No;
        };
        return match Argon2::default().verify_password(password.as_bytes(), &parsed) {
            Ok(()) => Verified::Yes,
            Err(_) => Verified::No,
        };
    }
    if ["$2a$", "$2b$", "$2y$", "$2x$"]
        .iter()
        .any(|prefix| stored.starts_with(prefix))
    {
        // Parse Server's bcrypt truncates at 72 bytes; the truncating verify matches it.
        return match bcrypt::verify(password, stored) {
            Ok(true) => Verified::YesRehash,
            _ => Verified::No,
        };
    }
    Verified::No
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn argon2_round_trip() {
        let hashed = hash("s3cret".into()).await.unwrap();
        assert!(hashed.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert_eq!(verify("s3cret".into(), hashed.clone()).await, Verified::Yes);
        assert_eq!(verify("wrong".into(), hashed).await, Verified::No);
    }

    #[tokio::test]
    async fn parse_server_bcrypt_hashes_verify_and_ask_for_a_rehash() {
        // Made by bcryptjs (cost 10), as Parse Server stores them.
        let stored = bcrypt::hash_with_salt("s3cret", 10, *b"0123456789abcdef")
            .unwrap()
            .format_for_version(bcrypt::Version::TwoA);
        assert!(stored.starts_with("$2a$10$"));
        assert_eq!(
            verify("s3cret".into(), stored.clone()).await,
            Verified::YesRehash
        );
        assert_eq!(verify("nope".into(), stored).await, Verified::No);
        assert_eq!(verify("x".into(), "plaintext".into()).await, Verified::No);
    }

    #[tokio::test]
    async fn the_decoy_hash_is_a_real_argon2id_hash() {
        assert!(PasswordHash::new(DECOY_HASH).is_ok());
        assert_eq!(
            verify("anything".into(), DECOY_HASH.into()).await,
            Verified::No
        );
    }
}
