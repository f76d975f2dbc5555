//! Server memory: PSS summed from `/proc/PID/smaps_rollup` over the given
//! PIDs and every process whose `comm` matches one of the given names.

use std::path::Path;

/// The PSS of one process in KiB, `None` if it vanished or is unreadable.
pub fn pss_kib(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    parse_pss(&text)
}

/// Extracts the `Pss:` line (in kB) of a smaps_rollup text.
pub fn parse_pss(text: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix("Pss:")?;
        rest.trim().trim_end_matches("kB").trim().parse().ok()
    })
}

/// PIDs whose `/proc/PID/comm` equals one of `names`.
pub fn pids_named(names: &[String]) -> Vec<u32> {
    let mut pids = Vec::new();
    let Ok(dir) = std::fs::read_dir(Path::new("/proc")) else {
        return pids;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if let Ok(comm) = std::fs::read_to_string(entry.path().join("comm"))
            && names.iter().any(|n| n == comm.trim_end())
        {
            pids.push(pid);
        }
    }
    pids
}

/// Which server processes to measure.
#[derive(Debug, Clone, Default)]
pub struct MemoryProbe {
    pub pids: Vec<u32>,
    pub names: Vec<String>,
}

impl MemoryProbe {
    pub fn is_configured(&self) -> bool {
        !self.pids.is_empty() || !self.names.is_empty()
    }

    /// Total PSS in KiB and the number of processes counted.
    pub fn total_kib(&self) -> (u64, usize) {
        let mut pids = self.pids.clone();
        for pid in pids_named(&self.names) {
            if !pids.contains(&pid) {
                pids.push(pid);
            }
        }
        let mut total = 0;
        let mut count = 0;
        for pid in pids {
            if let Some(k) = pss_kib(pid) {
                total += k;
                count += 1;
            }
        }
        (total, count)
    }
}
