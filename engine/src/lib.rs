//! cdrveil's compiled record engine.
//!
//! The per-record path of `pipeline/core` (decode, normalize, consent and warrant
//! lookups, the policy's field actions, pseudonyms, JSON encoding, output keys and
//! headers) in Rust, byte-identical to the Python engine, which stays the readable
//! reference. Python loads and checks the policy and derives the keys; it hands this
//! crate a plan (`pipeline/core/native.py`). Key material never appears in a message,
//! an error or a `repr`, and is wiped when dropped.

pub mod batches;
pub mod decode;
pub mod engine;
pub mod json;
pub mod kafka;
pub mod normalize;
pub mod party;
pub mod pseudocache;
pub mod pseudonym;
pub mod tables;
pub mod time;
pub mod unknown;

#[cfg(feature = "python")]
mod python;
