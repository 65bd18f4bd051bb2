//! The process's open-file limit: raised from its soft to its hard value at start, as Go's
//! runtime does, and what the settings need of it.
//!
//! A desktop session, a systemd service and a Docker container usually start a process with a
//! soft limit of 1,024 files, while their hard limit is far higher (often 524,288). Left alone,
//! Herald would fail to accept its 1,021st connection, whatever `--max-subscribers` says.

/// Files Herald needs besides its client connections: the listeners, Redis connections, the
/// worker client's pool, the log, and headroom for a burst of connections closing.
pub(crate) const RESERVED: u64 = 128;

/// Raises the soft open-file limit to the hard one, and returns the limit now in force.
pub(crate) fn raise_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(err) => {
            let (soft, _) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap_or((1024, 1024));
            tracing::warn!(%err, soft, "cannot raise the open-file limit");
            soft
        }
    }
}

/// How many connections fit under `limit` open files: the default of `--max-connections`.
pub(crate) fn connection_budget(limit: u64) -> usize {
    usize::try_from(limit.saturating_sub(RESERVED)).unwrap_or(usize::MAX).max(1)
}

/// A warning, when `limit` open files cannot hold what the settings promise: `streams` open
/// streams, or `connections` open connections when they are capped explicitly.
pub(crate) fn shortfall(limit: u64, streams: u32, connections: Option<u32>) -> Option<String> {
    let wanted = u64::from(connections.unwrap_or(streams));
    let needed = wanted + RESERVED;
    (limit < needed).then(|| {
        let setting = if connections.is_some() { "--max-connections" } else { "--max-subscribers" };
        format!(
            "the open-file limit is {limit}, and {setting} {wanted} needs {needed}: raise the hard limit \
             (ulimit -Hn, LimitNOFILE= in a systemd unit, --ulimit nofile= in Docker) or lower {setting}"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_budget_leaves_room_for_everything_else() {
        assert_eq!(connection_budget(1024), 896);
        assert_eq!(connection_budget(100), 1);
        assert!(connection_budget(u64::MAX) > 1_000_000);
    }

    #[test]
    fn a_limit_below_what_the_settings_need_is_named_with_the_setting_to_change() {
        assert_eq!(shortfall(20_000, 10_000, None), None);
        let short = shortfall(1024, 10_000, None).expect("a warning");
        assert!(short.contains("--max-subscribers 10000 needs 10128"), "{short}");
        let short = shortfall(4096, 10_000, Some(5000)).expect("a warning");
        assert!(short.contains("--max-connections 5000"), "{short}");
    }
}
