//! Processes, ports and waiting: the binary under test, OS tools the end-to-end checks need,
//! a guard that never leaks a child, and free loopback ports.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The exporter binary Cargo built for this test run.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_cloudflare-aop-exporter")
}

/// The binary with an empty environment: the test process's variables (`CLOUDFLARE_API_TOKEN`,
/// `RUST_LOG`, `CF_AOP_*`) cannot leak in.
pub fn command_without_env() -> std::process::Command {
    let mut command = std::process::Command::new(binary());
    command.env_clear();
    command
}

/// A loopback address nothing listens on (bound, then released).
pub fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

pub fn find_tool(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|path| path.is_file())
    })
}

/// The first of `names` on `PATH`. Missing, the check is skipped, saying why (`skipped`),
/// unless `CF_AOP_REQUIRE_OS_TOOLS` is set (`scripts/test` sets it): then it fails.
pub fn os_tool(names: &[&str], skipped: &str) -> Option<PathBuf> {
    let found = names.iter().find_map(|name| find_tool(name));
    if found.is_none() {
        assert!(
            std::env::var_os("CF_AOP_REQUIRE_OS_TOOLS").is_none(),
            "{} is required under scripts/test",
            names[0]
        );
        eprintln!("SKIPPED: {skipped}");
    }
    found
}

/// Kills the child on drop, so a failing assertion never leaks a daemon.
pub struct ChildGuard(pub Option<std::process::Child>);

impl ChildGuard {
    pub fn new(child: std::process::Child) -> ChildGuard {
        ChildGuard(Some(child))
    }

    /// SIGTERM (a clean shutdown), then the captured stderr.
    pub fn terminate_and_collect(mut self) -> String {
        let mut child = self.0.take().unwrap();
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let output = child.wait_with_output().unwrap();
        String::from_utf8_lossy(&output.stderr).into_owned()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Waits (checking every 20 ms) until `condition` holds; fails after `limit`.
pub async fn wait_until(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Awaits `future`, failing if it has not finished after `limit` (a bound against a hang, not a
/// timing figure).
pub async fn within<T>(limit: Duration, what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(limit, future)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {limit:?}"))
}
