//! Load and fault tests against the real `herald` binary. They measure time and memory, so this
//! binary holds them apart from the functional suite, and [`ONE_AT_A_TIME`] keeps them apart
//! from each other: each gets the machine to itself.

mod churn;
mod compare;
mod scale;
mod slow_clients;

/// Held for the whole of each test in this binary.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
