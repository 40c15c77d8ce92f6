//! What /proc says about an MTA's processes: memory (VmRSS, RssAnon, Pss)
//! and CPU time, summed over its process group (tern: the daemon and any
//! helper it forked; Postfix: master and every daemon it started).

/// A field of /proc/PID/FILE in kB, e.g. `("status", "VmRSS:")` or
/// `("smaps_rollup", "Pss:")`; 0 if the process or field is gone.
pub fn field_kib(pid: u32, file: &str, field: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/{file}")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The fields of /proc/PID/stat after the command name (state first), or
/// nothing if the process is gone.
fn stat_fields(pid: u32) -> Vec<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name, in parentheses, may itself contain spaces.
    stat.rsplit_once(") ")
        .map(|(_, after)| after.split(' ').map(str::to_string).collect())
        .unwrap_or_default()
}

/// Processes of group `pgid`, zombies included if `zombies` (an exited
/// child not yet reaped still holds its CPU times, but no memory).
pub fn group_pids(pgid: u32, zombies: bool) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return out;
    };
    let want = pgid.to_string();
    for e in rd.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let f = stat_fields(pid);
        if f.len() > 2 && f[2] == want && (zombies || f[0] != "Z") {
            out.push(pid);
        }
    }
    out.sort_unstable();
    out
}

/// Memory of a process group at one moment, in kB.
#[derive(Debug, Clone, Default)]
pub struct Memory {
    /// Per live process: pid, VmRSS, RssAnon, Pss.
    pub procs: Vec<(u32, u64, u64, u64)>,
}

impl Memory {
    /// Reads every live process of group `pgid`.
    pub fn of_group(pgid: u32) -> Memory {
        let procs = group_pids(pgid, false)
            .into_iter()
            .map(|p| {
                (
                    p,
                    field_kib(p, "status", "VmRSS:"),
                    field_kib(p, "status", "RssAnon:"),
                    field_kib(p, "smaps_rollup", "Pss:"),
                )
            })
            .collect();
        Memory { procs }
    }
    /// VmRSS summed (shared pages counted once per process).
    pub fn rss(&self) -> u64 {
        self.procs.iter().map(|p| p.1).sum()
    }
    /// RssAnon summed (private memory: heap, stacks).
    pub fn anon(&self) -> u64 {
        self.procs.iter().map(|p| p.2).sum()
    }
    /// Pss summed: shared pages split among the processes sharing them.
    pub fn pss(&self) -> u64 {
        self.procs.iter().map(|p| p.3).sum()
    }
    /// "pid N M kB + ..." for the log.
    pub fn detail(&self) -> String {
        let v: Vec<String> = self
            .procs
            .iter()
            .map(|p| format!("pid {} {} kB", p.0, p.1))
            .collect();
        v.join(" + ")
    }
}

/// CPU seconds (user + system) the process group has used so far,
/// including children it already reaped: for every member (zombies too)
/// utime + stime + cutime + cstime. A child reaped by a member moves its
/// times into that member's cutime/cstime, so the sum is conserved while
/// Postfix's daemons come and go, as long as the master (the group
/// leader) lives. /proc counts in clock ticks (1/100 s on Linux).
pub fn cpu_secs(pgid: u32) -> f64 {
    let ticks: u64 = group_pids(pgid, true)
        .into_iter()
        .map(|p| {
            let f = stat_fields(p);
            // utime, stime, cutime, cstime: fields 14..=17 of the line,
            // 11..=14 after the command name.
            (11..=14)
                .filter_map(|i| f.get(i).and_then(|v| v.parse::<i64>().ok()))
                .map(|v| v.max(0) as u64)
                .sum::<u64>()
        })
        .sum();
    ticks as f64 / 100.0
}

/// min, median, max of `v` (sorted in place); zeros if empty.
pub fn spread(v: &mut [f64]) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    match v {
        [] => (0.0, 0.0, 0.0),
        _ => (v[0], v[v.len() / 2], v[v.len() - 1]),
    }
}
