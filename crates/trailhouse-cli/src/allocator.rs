//! The process's allocator: mimalloc (its v2, without transparent huge pages: freed memory goes
//! back to the system soon, see the workspace's `Cargo.toml`), keeping freed memory 100 ms
//! before it does instead of mimalloc's 10.
//!
//! An ingest frees and takes again most of what it holds for every chunk of log files (the
//! columns it builds, the partitions it gathers, the Parquet pages it writes): returned after
//! 10 ms, each came back as fresh pages the kernel faulted in and zeroed. Measured on the
//! 2M-event trail (83,601 files, 1,530 partitions), alternated: system time 3.4-4.7 s of
//! 19-20 s CPU -> 1.6-1.7 s, 180,000-203,000 -> 217,000-229,000 events/s, peak 482-491 ->
//! 567-568 MiB (never returned: 222,000-228,000 events/s, 597-615 MiB). Queries measured the
//! same either way (`ip-activity`, `resource-history`, `who-deleted` over 20M events).

use std::os::raw::c_long;

use libmimalloc_sys::{mi_option_set, mi_option_t};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` of mimalloc v2's `mimalloc.h` (the bindings name the options around
/// it, not this one): how long freed memory waits before it goes back to the system, in ms.
const PURGE_DELAY: mi_option_t = 15;

/// Our purge delay, in milliseconds.
const PURGE_DELAY_MS: c_long = 100;

/// mimalloc's own setting of the purge delay, which wins over ours.
const PURGE_DELAY_VAR: &str = "MIMALLOC_PURGE_DELAY";

/// Sets our purge delay, unless [`PURGE_DELAY_VAR`] gives one. Called first thing in `main`.
#[allow(unsafe_code)]
pub fn configure() {
    if std::env::var_os(PURGE_DELAY_VAR).is_some() {
        return;
    }
    // SAFETY: `mi_option_set` takes any option and value and only stores the value in
    // mimalloc's table of options, which its allocations read.
    unsafe { mi_option_set(PURGE_DELAY, PURGE_DELAY_MS) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(unsafe_code)]
    fn purge_delay() -> c_long {
        // SAFETY: `mi_option_get` reads mimalloc's table of options.
        unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) }
    }

    #[test]
    fn the_option_set_is_the_purge_delay() {
        if std::env::var_os(PURGE_DELAY_VAR).is_some() {
            return;
        }
        // Option 15 has the purge delay's default, 10 ms (its neighbours default to 1 and 0),
        // until it is set.
        assert_eq!(purge_delay(), 10);
        configure();
        assert_eq!(purge_delay(), PURGE_DELAY_MS);
    }
}
