//! Herald from a Rust backend: [`publish`] an event (with an idempotency key, retried while
//! Herald asks for it), [`mint_token`] a subscriber or publisher token, and [`verify_signature`]
//! of a callback signed as Herald's worker signs it. The signature scheme itself is
//! [`signature`], which Herald's own `/callbacks` uses too.

mod publish;
mod random;
pub mod signature;
mod token;

pub use publish::{publish, Event, PublishError, Published};
pub use random::random_id;
pub use signature::{verify_signature, SignatureError};
pub use token::{mint_token, Grant};
