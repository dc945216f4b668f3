//! The open-files budget: `maxclients` plus what the server itself needs must fit
//! `RLIMIT_NOFILE`, as Redis's `adjustOpenFilesLimit` arranges at start-up and on
//! `CONFIG SET maxclients`.
//!
//! Without it a connection flood takes every descriptor, the log cannot create its
//! next segment (EMFILE), and a failed log write poisons the log until a restart. So
//! the limit is raised to `maxclients + reserve` if the OS allows, and otherwise
//! `maxclients` is lowered to what is left after the reserve: extra connections then
//! get `-ERR max number of clients reached` while the log keeps its files.

use crate::config::Config;

/// Redis's `CONFIG_MIN_RESERVED_FDS`: the reserve is never smaller.
pub const MIN_RESERVED_FDS: u64 = 32;

/// Standard input, output and error.
const STDIO_FDS: u64 = 3;

/// The runtime: its epoll instance, the eventfd that wakes it, and the socket pairs
/// of the signal driver and its global registry.
const RUNTIME_FDS: u64 = 6;

/// Files opened for a moment outside the log: the `logfile`, the pid file, the three
/// of CONFIG REWRITE (the file read, its temporary copy, the directory fsynced),
/// `/proc/self/statm` for INFO, and one connection refused for `maxclients` (written
/// to and closed at once, see `listener::admit`).
const TRANSIENT_FDS: u64 = 7;

/// Descriptors the server needs besides one per client: the log's worst case
/// ([`crate::storage::MAX_OPEN_FILES`]), the listening sockets, the runtime's, and the
/// few opened for a moment; at least [`MIN_RESERVED_FDS`].
pub fn reserved_fds(config: &Config) -> u64 {
    // No `bind` means Redis's default pair (IPv4 and IPv6 wildcards).
    let listeners = config.bind.len().max(2) as u64;
    (crate::storage::MAX_OPEN_FILES + listeners + STDIO_FDS + RUNTIME_FDS + TRANSIENT_FDS)
        .max(MIN_RESERVED_FDS)
}

/// What [`adjust_open_files_limit`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Adjustment {
    /// The limit was already high enough.
    Sufficient,
    /// The limit was raised from `from` to `to`.
    Raised { from: u64, to: u64 },
    /// The limit could not reach `wanted`; `limit` is what there is, so only
    /// `maxclients` clients fit (fewer than requested).
    Short {
        wanted: u64,
        limit: u64,
        maxclients: u32,
        os_error: String,
    },
    /// Not even one client fits next to the reserve: the server must not start.
    TooLow { limit: u64, wanted: u64 },
}

fn get_nofile() -> std::io::Result<libc::rlimit> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        Ok(limit)
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn set_nofile(cur: u64, max: u64) -> std::io::Result<()> {
    let limit = libc::rlimit {
        rlim_cur: cur as libc::rlim_t,
        rlim_max: max as libc::rlim_t,
    };
    // SAFETY: setrlimit only reads the struct.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The `strerror` text of an OS error, as Redis logs it.
fn os_reason(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error ") {
        Some(cut) => text[..cut].to_string(),
        None => text,
    }
}

/// Makes room for `maxclients` clients plus `reserve` descriptors: raises the soft
/// `RLIMIT_NOFILE` (and the hard one if permitted) to their sum, or else as far as the
/// hard limit allows, and says how many clients fit then.
pub fn adjust_open_files_limit(maxclients: u32, reserve: u64) -> Adjustment {
    let wanted = u64::from(maxclients) + reserve;
    let (old, hard) = match get_nofile() {
        Ok(l) => (l.rlim_cur, l.rlim_max),
        Err(e) => {
            // As Redis: assume 1024 when the limit cannot even be read.
            return short(wanted, 1024, reserve, os_reason(&e));
        }
    };
    if old >= wanted {
        return Adjustment::Sufficient;
    }
    let error = match set_nofile(wanted, hard.max(wanted)) {
        Ok(()) => {
            return Adjustment::Raised {
                from: old,
                to: wanted,
            }
        }
        Err(e) => os_reason(&e),
    };
    // Not permitted to go that far: take what the hard limit allows.
    let best = if hard > old && set_nofile(hard, hard).is_ok() {
        hard
    } else {
        old
    };
    short(wanted, best, reserve, error)
}

fn short(wanted: u64, limit: u64, reserve: u64, os_error: String) -> Adjustment {
    match limit.checked_sub(reserve).filter(|n| *n >= 1) {
        Some(n) => Adjustment::Short {
            wanted,
            limit,
            maxclients: u32::try_from(n).unwrap_or(u32::MAX),
            os_error,
        },
        None => Adjustment::TooLow { limit, wanted },
    }
}

/// Start-up: adjusts the limit for `config.maxclients`, lowers `config.maxclients`
/// if it cannot, and logs what happened with Redis's wording.
///
/// # Errors
/// Redis's refusal to start when not even one client fits next to the reserve.
pub fn adjust_at_startup(config: &mut Config) -> Result<(), String> {
    let reserve = reserved_fds(config);
    match adjust_open_files_limit(config.maxclients, reserve) {
        Adjustment::Sufficient => Ok(()),
        Adjustment::Raised { from, to } => {
            tracing::info!(
                "Increased maximum number of open files to {} (it was originally set to {}).",
                to,
                from
            );
            Ok(())
        }
        Adjustment::Short {
            wanted,
            limit,
            maxclients,
            os_error,
        } => {
            tracing::warn!(
                "You requested maxclients of {} requiring at least {} max file descriptors.",
                config.maxclients,
                wanted
            );
            tracing::warn!(
                "Server can't set maximum open files to {} because of OS error: {}.",
                wanted,
                os_error
            );
            tracing::warn!(
                "Current maximum open files is {}. maxclients has been reduced to {} to compensate for low ulimit. If you need higher maxclients increase 'ulimit -n'.",
                limit,
                maxclients
            );
            config.maxclients = maxclients;
            Ok(())
        }
        Adjustment::TooLow { limit, wanted } => Err(format!(
            "Your current 'ulimit -n' of {limit} is not enough for the server to start. Please increase your open file limit to at least {wanted}. Exiting."
        )),
    }
}

/// CONFIG SET maxclients: `None` when `maxclients` clients fit (the limit raised if
/// needed), otherwise Redis's reason, naming the number that would fit.
pub fn check_maxclients(maxclients: u32, reserve: u64) -> Option<String> {
    let fits = match adjust_open_files_limit(maxclients, reserve) {
        Adjustment::Sufficient | Adjustment::Raised { .. } => return None,
        Adjustment::Short { maxclients, .. } => maxclients,
        Adjustment::TooLow { .. } => 0,
    };
    Some(format!(
        "The operating system is not able to handle the specified number of clients, try with {fits}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserve_covers_the_log_and_is_at_least_redis_minimum() {
        let config = Config::default();
        let reserve = reserved_fds(&config);
        assert!(reserve >= MIN_RESERVED_FDS);
        assert!(reserve > crate::storage::MAX_OPEN_FILES + 2);
    }

    #[test]
    fn short_limits() {
        assert_eq!(
            short(10_039, 256, 39, "e".into()),
            Adjustment::Short {
                wanted: 10_039,
                limit: 256,
                maxclients: 217,
                os_error: "e".into()
            }
        );
        assert_eq!(
            short(10_039, 39, 39, "e".into()),
            Adjustment::TooLow {
                limit: 39,
                wanted: 10_039
            }
        );
    }
}
