//! Running a command to completion with a deadline; failures show command, stdout and stderr.

use std::fmt;
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long one command may run unless told otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// What a finished command did.
pub struct Run {
    /// The command line, for messages.
    pub cmd: String,
    /// Its exit status.
    pub status: ExitStatus,
    /// Everything it wrote to stdout (empty if stdout went to a file).
    pub stdout: Vec<u8>,
    /// Everything it wrote to stderr, lossily decoded.
    pub stderr: String,
    /// Wall time.
    pub elapsed: Duration,
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOW: usize = 4000;
        let stdout = if self.stdout.len() > SHOW {
            format!(
                "{}… ({} bytes in all)",
                String::from_utf8_lossy(&self.stdout[..SHOW]),
                self.stdout.len()
            )
        } else {
            String::from_utf8_lossy(&self.stdout).into_owned()
        };
        write!(
            f,
            "command: {}\nstatus:  {}\nelapsed: {:.2?}\n--- stdout ---\n{}\n--- stderr ---\n{}\n---",
            self.cmd, self.status, self.elapsed, stdout, self.stderr
        )
    }
}

impl Run {
    /// stdout as trimmed UTF-8.
    pub fn out(&self) -> String {
        String::from_utf8_lossy(&self.stdout).trim().to_string()
    }

    /// Panics with everything known unless the command exited 0.
    #[track_caller]
    pub fn ok(self) -> Self {
        if !self.status.success() {
            panic!("command failed (expected exit 0)\n{self}");
        }
        self
    }

    /// Panics with everything known unless the command exited non-zero (and was not killed by
    /// a signal: a crash is not a clean refusal).
    #[track_caller]
    pub fn fails(self) -> Self {
        if self.status.success() {
            panic!("command succeeded but should have failed\n{self}");
        }
        if self.status.code().is_none() {
            panic!("command was killed by a signal instead of failing cleanly\n{self}");
        }
        self
    }

    /// Panics unless stderr contains `needle` (case-insensitive).
    #[track_caller]
    pub fn stderr_mentions(self, needle: &str) -> Self {
        if !self.stderr.to_lowercase().contains(&needle.to_lowercase()) {
            panic!("stderr does not mention {needle:?}\n{self}");
        }
        self
    }
}

/// Describes a `Command` as a shell-like line.
pub fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Runs `cmd` (stdin closed) until it exits or `DEFAULT_TIMEOUT` passes, capturing its output.
pub fn run_cmd(cmd: &mut Command) -> Run {
    run_cmd_with(cmd, None, DEFAULT_TIMEOUT)
}

/// Like [`run_cmd`], but stdout goes to the file `stdout_to` (for large binary output) and the
/// deadline is `timeout`.
pub fn run_cmd_with(cmd: &mut Command, stdout_to: Option<&Path>, timeout: Duration) -> Run {
    let line = describe(cmd);
    cmd.stdin(Stdio::null()).stderr(Stdio::piped());
    match stdout_to {
        Some(p) => {
            let f = std::fs::File::create(p)
                .unwrap_or_else(|e| panic!("creating {}: {e}", p.display()));
            cmd.stdout(f);
        }
        None => {
            cmd.stdout(Stdio::piped());
        }
    }
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start `{line}`: {e}"));
    let out_reader = child.stdout.take().map(reader_thread);
    let err_reader = child.stderr.take().map(reader_thread);
    let status = wait_deadline(&mut child, timeout, &line);
    let stdout = out_reader
        .map(|h| h.join().expect("stdout reader"))
        .unwrap_or_default();
    let stderr = err_reader
        .map(|h| h.join().expect("stderr reader"))
        .unwrap_or_default();
    Run {
        cmd: line,
        status,
        stdout,
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        elapsed: start.elapsed(),
    }
}

fn reader_thread<R: Read + Send + 'static>(mut r: R) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        buf
    })
}

/// Waits for `child` with a deadline; on timeout kills it and panics.
pub fn wait_deadline(child: &mut Child, timeout: Duration, what: &str) -> ExitStatus {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status,
            Ok(None) => {}
            Err(e) => panic!("waiting for `{what}`: {e}"),
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`{what}` did not finish within {timeout:?}; killed it");
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Polls `check` until it returns `Some`, or panics with `what` after `timeout`.
#[track_caller]
pub fn poll_until<T>(timeout: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(v) = check() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}
