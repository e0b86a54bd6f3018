//! The CPU time a benchmark's own process has used.

/// This process's CPU seconds so far, user and system (from `/proc/self/stat`); zero where it
/// cannot be read.
pub fn own_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) are space-separated; utime and
    // stime are the 14th and 15th fields.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // In clock ticks: the kernel's USER_HZ is 100 on every Linux this runs on.
    (ticks(11) + ticks(12)) / 100.0
}
