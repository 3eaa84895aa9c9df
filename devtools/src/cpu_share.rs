//! Lambda's CPU share for a function process: Lambda gives a function CPU in
//! proportion to its memory, one vCPU at 1,769 MB, so at 128 MB it gets 128/1769 of a core
//! while it runs. This models it with a cgroup v1 `cpu` controller quota the harness creates for
//! one child process and removes afterwards: a 20 ms period (the kernel refuses quotas under
//! 1 ms, and a long period lets a short burst escape the share), and a quota of
//! `period × memory / 1769` rounded up (128 MB: 1,448 µs; 512 MB: 5,789 µs; 1,769 MB and above:
//! the whole period).
//!
//! Two models of init: **full speed** (the process joins the cgroup once it first polls the
//! Runtime API, as if init ran unthrottled) and **throttled** (it joins before it execs, so its
//! init runs under the quota too). [`LambdaInstance`](crate::lambda_emulator::LambdaInstance)
//! places its process either way.
//!
//! Only the processes the harness starts are ever moved, and every cgroup it creates is removed
//! when its [`CpuCgroup`] is dropped. When the controller is not writable (no root, cgroup v2
//! only), [`CpuCgroup::create`] says why and the caller runs unthrottled.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Memory at which Lambda gives a function one whole vCPU.
pub const ONE_VCPU_MB: u64 = 1769;

/// The quota's period.
pub const PERIOD: Duration = Duration::from_millis(20);

/// Where cgroup v1's `cpu` controller is mounted.
const CPU_CONTROLLER: &str = "/sys/fs/cgroup/cpu";

/// When the process joins its quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitModel {
    /// After its first poll of the Runtime API: init at full speed.
    FullSpeed,
    /// Before it execs: init under the quota too.
    Throttled,
}

impl InitModel {
    /// `full-speed` or `throttled`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FullSpeed => "full-speed",
            Self::Throttled => "throttled",
        }
    }
}

/// A Lambda memory size's CPU share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuShare {
    /// The function's memory, MB.
    pub memory_mb: u64,
}

impl CpuShare {
    /// The quota per [`PERIOD`], microseconds: `period × memory / 1769` rounded up, at most the
    /// period and at least the kernel's 1 ms.
    pub fn quota_us(self) -> u64 {
        let period = PERIOD.as_micros() as u64;
        (period * self.memory_mb)
            .div_ceil(ONE_VCPU_MB)
            .clamp(1_000, period)
    }
}

/// A cgroup holding one function process under a [`CpuShare`]; removed on drop.
#[derive(Debug)]
pub struct CpuCgroup {
    path: PathBuf,
    share: CpuShare,
}

impl CpuCgroup {
    /// Creates a cgroup with `share`'s quota, or says why it can't (then run unthrottled).
    pub fn create(share: CpuShare) -> Result<Self, String> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let controller = Path::new(CPU_CONTROLLER);
        if !controller.join("cgroup.procs").exists() {
            return Err(format!("no cgroup v1 cpu controller at {CPU_CONTROLLER}"));
        }
        let name = format!(
            "hookrelay-bench-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let path = controller.join(name);
        std::fs::create_dir(&path)
            .map_err(|error| format!("cgroups are not writable here ({error})"))?;
        let cgroup = Self { path, share };
        let period = PERIOD.as_micros().to_string();
        cgroup.write("cpu.cfs_period_us", &period)?;
        cgroup.write("cpu.cfs_quota_us", &share.quota_us().to_string())?;
        Ok(cgroup)
    }

    /// The share it enforces.
    pub fn share(&self) -> CpuShare {
        self.share
    }

    /// The file a process writes its pid to, to join (the throttled-init wrapper does).
    pub fn procs_file(&self) -> PathBuf {
        self.path.join("cgroup.procs")
    }

    /// Moves process `pid` (all its threads) into the cgroup. Only pids the harness started.
    pub fn add(&self, pid: u32) -> Result<(), String> {
        self.write("cgroup.procs", &pid.to_string())
    }

    /// How often the kernel throttled the group, and for how long in all.
    pub fn throttled(&self) -> Option<(u64, Duration)> {
        let stat = std::fs::read_to_string(self.path.join("cpu.stat")).ok()?;
        let field = |name: &str| {
            stat.lines()
                .find_map(|line| line.strip_prefix(name)?.trim().parse::<u64>().ok())
        };
        Some((
            field("nr_throttled ")?,
            Duration::from_nanos(field("throttled_time ")?),
        ))
    }

    fn write(&self, file: &str, value: &str) -> Result<(), String> {
        std::fs::write(self.path.join(file), value)
            .map_err(|error| format!("write {value} to {}/{file}: {error}", self.path.display()))
    }
}

impl Drop for CpuCgroup {
    fn drop(&mut self) {
        // The kernel refuses to remove a cgroup until its last process has exited and been
        // reaped; the caller stops the process first, so a few short waits are enough.
        for _ in 0..50 {
            if std::fs::remove_dir(&self.path).is_ok() || !self.path.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("could not remove the cgroup {}", self.path.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_follow_lambdas_memory_to_cpu_ratio_within_the_kernels_limits() {
        let quota = |memory_mb| CpuShare { memory_mb }.quota_us();
        assert_eq!(quota(128), 1_448);
        assert_eq!(quota(512), 5_789);
        assert_eq!(quota(1769), 20_000);
        assert_eq!(quota(3008), 20_000, "one period at most");
        assert_eq!(quota(64), 1_000, "the kernel's 1 ms at least");
    }

    #[test]
    fn a_process_that_joined_the_cgroup_is_throttled_and_the_cgroup_is_removed_after() {
        let cgroup = match CpuCgroup::create(CpuShare { memory_mb: 128 }) {
            Ok(cgroup) => cgroup,
            Err(why) => {
                eprintln!("skipped, as the bench would run unthrottled: {why}");
                return;
            }
        };
        let path = cgroup.path.clone();
        // The throttled-init wrapper's way in: join, then exec a busy loop.
        let mut child = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(r#"echo $$ > "$0" && exec /bin/sh -c 'while :; do :; done'"#)
            .arg(cgroup.procs_file())
            .spawn()
            .expect("start a busy loop");
        // Fifteen 20 ms periods: a busy loop overruns its 1,448 µs in each.
        std::thread::sleep(Duration::from_millis(300));
        let (times, _) = cgroup.throttled().expect("cpu.stat");
        let _ = child.kill();
        let _ = child.wait();
        assert!(times > 0, "the kernel never throttled the busy loop");
        drop(cgroup);
        assert!(!path.exists(), "{} left behind", path.display());
    }
}
