//! Where the CPU went during a phase (Linux `/proc`; elsewhere nothing is
//! reported): how much the client thread itself used, and how busy the whole
//! machine was. On a shared 2-core machine these two figures say whether a
//! result measured the server, or the generator, or someone else's build.

/// Clock ticks per second of `/proc` times (`USER_HZ`, 100 on Linux).
const TICKS_PER_SEC: f64 = 100.0;

/// Busy and total ticks summed over all CPUs, from `/proc/stat`'s first line.
pub fn parse_proc_stat(text: &str) -> Option<(u64, u64)> {
    let line = text.lines().next()?;
    let mut fields = line.split_whitespace();
    if fields.next()? != "cpu" {
        return None;
    }
    let v: Vec<u64> = fields.take(8).filter_map(|f| f.parse().ok()).collect();
    if v.len() < 8 {
        return None;
    }
    // user nice system idle iowait irq softirq steal
    let idle = v[3] + v[4];
    let busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
    Some((busy, busy + idle))
}

/// User plus system ticks of a thread, from its `/proc/…/stat`. The command
/// name (field 2) may hold spaces and parentheses: fields are counted from
/// the last `)`.
pub fn parse_thread_stat(text: &str) -> Option<u64> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Field 3 (state) is fields[0]; utime is field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// A reading at one moment.
#[derive(Debug, Clone, Copy)]
pub struct Reading {
    machine: Option<(u64, u64)>,
    thread: Option<u64>,
}

impl Reading {
    /// Reads the machine and the calling thread.
    pub fn now() -> Reading {
        Reading {
            machine: std::fs::read_to_string("/proc/stat")
                .ok()
                .and_then(|t| parse_proc_stat(&t)),
            thread: std::fs::read_to_string("/proc/thread-self/stat")
                .ok()
                .and_then(|t| parse_thread_stat(&t)),
        }
    }

    /// CPU seconds the thread used since `earlier`.
    pub fn thread_secs_since(&self, earlier: &Reading) -> Option<f64> {
        Some(self.thread?.checked_sub(earlier.thread?)? as f64 / TICKS_PER_SEC)
    }

    /// Share of all CPUs' time that was busy since `earlier` (0 to 1).
    pub fn machine_busy_since(&self, earlier: &Reading) -> Option<f64> {
        let (b1, t1) = self.machine?;
        let (b0, t0) = earlier.machine?;
        let total = t1.checked_sub(t0)?;
        (total > 0).then(|| b1.saturating_sub(b0) as f64 / total as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat() {
        let text = "cpu  100 5 50 800 20 3 2 0 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n";
        assert_eq!(parse_proc_stat(text), Some((160, 980)));
        assert_eq!(parse_proc_stat("intr 1 2 3"), None);
        assert_eq!(parse_proc_stat("cpu 1 2"), None);
    }

    #[test]
    fn thread_stat_with_an_awkward_name() {
        let text = "4242 (load (test) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 1 0 1000 0 0";
        assert_eq!(parse_thread_stat(text), Some(325));
        assert_eq!(parse_thread_stat("garbage"), None);
    }

    #[test]
    fn readings_on_this_machine() {
        let a = Reading::now();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        assert!(x > 0);
        let b = Reading::now();
        if cfg!(target_os = "linux") {
            assert!(b.thread_secs_since(&a).is_some());
            let busy = b.machine_busy_since(&a).unwrap_or(0.0);
            assert!((0.0..=1.0).contains(&busy));
        }
    }
}
