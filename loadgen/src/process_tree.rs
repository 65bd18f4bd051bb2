//! The processes of a server under benchmark, whatever their number (nginx's master and workers,
//! gunicorn's arbiter and worker): their memory and CPU time summed over the whole tree, the
//! process group that stops them all, and the open-file limit the benchmark raises for them.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command},
};

/// A process and every descendant it has at the moment of each reading.
#[derive(Clone, Copy)]
pub struct ProcessTree {
    root: u32,
}

impl ProcessTree {
    pub fn new(root: u32) -> Self {
        Self { root }
    }

    /// Proportional set size summed over the tree, in KiB: a page shared by several of its
    /// processes (nginx's workers share the master's) counts once in all.
    pub fn pss_kib(&self) -> u64 {
        self.pids().into_iter().map(|pid| rollup_field(pid, "Pss:")).sum()
    }

    /// User plus system CPU time of the tree's processes so far, in seconds (`utime` and `stime`
    /// of `/proc/PID/stat`, which cover every thread of a process).
    pub fn cpu_seconds(&self) -> f64 {
        self.pids().into_iter().filter_map(cpu_ticks).sum::<u64>() as f64 / ticks_per_second()
    }

    /// The root and its descendants, found through every process's parent in `/proc`.
    fn pids(&self) -> Vec<u32> {
        let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
            .expect("/proc is readable")
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter_map(|pid| Some((pid, stat_fields(pid)?.first()?.parse().ok()?)))
            .collect();
        let mut tree = vec![self.root];
        let mut next = 0;
        while next < tree.len() {
            let parent = tree[next];
            tree.extend(parents.iter().filter(|(_, of)| *of == parent).map(|(pid, _)| *pid));
            next += 1;
        }
        tree
    }
}

/// The fields of `/proc/PID/stat` after the command name, starting with the 4th (the parent);
/// `None` once the process is gone.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name, in parentheses, may hold spaces; the state follows it, then the parent.
    let after_name = &stat[stat.rfind(')')? + 1..];
    Some(after_name.split_whitespace().skip(1).map(str::to_owned).collect())
}

/// User plus system CPU time of this process alone so far, in seconds.
pub fn this_process_cpu_seconds() -> f64 {
    cpu_ticks(std::process::id()).expect("this process is running") as f64 / ticks_per_second()
}

fn ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) as f64 }
}

/// `utime` plus `stime` (the 14th and 15th fields) of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let fields = stat_fields(pid)?;
    let field = |number: usize| fields.get(number - 4)?.parse::<u64>().ok();
    Some(field(14)? + field(15)?)
}

/// One KiB figure of `/proc/PID/smaps_rollup`; 0 for a process that is gone.
fn rollup_field(pid: u32, name: &str) -> u64 {
    let Ok(rollup) = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")) else { return 0 };
    rollup
        .lines()
        .find_map(|line| line.strip_prefix(name)?.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Raises this process's soft limit on open files to its hard limit, and returns it. The servers
/// the benchmark starts inherit it, as the generator needs one descriptor per subscriber too.
pub fn raise_open_file_limit() -> u64 {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: both calls only read or write the struct passed to them.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0, "getrlimit(RLIMIT_NOFILE)");
        limit.rlim_cur = limit.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0, "setrlimit(RLIMIT_NOFILE)");
    }
    limit.rlim_cur
}

/// A server that is not one of this package's binaries, started in a process group of its own
/// with its output in a scratch directory. Dropping it (after a panic too) kills the whole group
/// and removes the directory; if the benchmark itself dies, the kernel stops the group's leader.
pub struct ProcessGroup {
    child: Child,
    scratch: PathBuf,
}

impl ProcessGroup {
    /// Starts `command` with stdout and stderr in `output.log` of `scratch`, a directory that
    /// the caller has created and that is removed with the group.
    pub fn start(mut command: Command, scratch: PathBuf) -> Self {
        use std::os::unix::process::CommandExt;

        let log =
            std::fs::File::create(scratch.join("output.log")).expect("a log file in the scratch directory");
        command.stdout(log.try_clone().expect("a second handle on the log")).stderr(log).process_group(0);
        // SAFETY: prctl is async-signal-safe, as code between fork and exec must be.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
        let program = command.get_program().to_string_lossy().into_owned();
        let child = command.spawn().unwrap_or_else(|err| panic!("{program} does not start: {err}"));
        Self { child, scratch }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the group's leader is still alive.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn scratch(&self) -> &Path {
        &self.scratch
    }

    /// The end of the group's output, for the message of a server that did not come up.
    pub fn output_tail(&self) -> String {
        let output = std::fs::read_to_string(self.scratch.join("output.log")).unwrap_or_default();
        let tail: Vec<&str> = output.lines().rev().take(20).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        let group = self.child.id() as libc::pid_t;
        // SAFETY: kill only sends a signal, here to the group this value started.
        unsafe { libc::kill(-group, libc::SIGKILL) };
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}
