//! The open-file limit, which bounds client connections: each one is a file descriptor, and so
//! is the upstream connection it may need. Raised to its hard limit at start, as a server that
//! expects many connections should.

/// Descriptors kept for everything but client connections and their upstreams: the listener,
/// log files, the state store, the runtime's own.
const RESERVED: u64 = 64;

/// The fewest connections allowed, however low the open-file limit.
const MIN_CONNECTIONS: usize = 16;

/// Raises this process's soft open-file limit to its hard limit and returns how many client
/// connections fit in it: half of what is left after [`RESERVED`], so every client connection
/// can have an upstream one. `usize::MAX` where there is no limit.
pub fn connection_room() -> usize {
    #[cfg(unix)]
    {
        use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
        let limit = getrlimit(Resource::Nofile);
        if limit.current < limit.maximum || limit.maximum.is_none() {
            let raised = Rlimit {
                current: limit.maximum,
                maximum: limit.maximum,
            };
            if let Err(error) = setrlimit(Resource::Nofile, raised) {
                tracing::debug!("cannot raise the open-file limit: {error}");
            }
        }
        match getrlimit(Resource::Nofile).current {
            Some(files) => room(files),
            None => usize::MAX,
        }
    }
    #[cfg(not(unix))]
    {
        usize::MAX
    }
}

fn room(files: u64) -> usize {
    usize::try_from(files.saturating_sub(RESERVED) / 2)
        .unwrap_or(usize::MAX)
        .max(MIN_CONNECTIONS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_of_what_is_left_and_never_less_than_the_minimum() {
        assert_eq!(room(20_000), 9_968);
        assert_eq!(room(1_024), 480);
        assert_eq!(room(10), MIN_CONNECTIONS);
    }

    #[test]
    fn the_room_fits_in_the_limit_in_force() {
        let room = connection_room();
        assert!(room >= MIN_CONNECTIONS);
    }
}
