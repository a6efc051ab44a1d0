//! A running `passerelle serve`: its process, and what it prints (lines, and
//! the events of `log.format = "json"`).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};

use crate::util::wait_for;

/// How long a server may take to report that it is ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a signalled server may take to exit.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// A running `passerelle serve`; killed when dropped.
pub struct Server {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Server {
    /// Spawns `command` (a `passerelle serve`) and waits until it reports ready.
    pub(crate) fn start(command: &mut Command) -> Self {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn passerelle serve");
        let (sender, lines) = mpsc::channel();
        let stdout: Box<dyn std::io::Read + Send> = Box::new(child.stdout.take().expect("stdout"));
        let stderr: Box<dyn std::io::Read + Send> = Box::new(child.stderr.take().expect("stderr"));
        for stream in [stdout, stderr] {
            let sender = sender.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if sender.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        let mut server = Self { child, lines, seen: Vec::new() };
        server.wait_for_line("passerelle ready", READY_TIMEOUT);
        server
    }

    /// Waits until a line of output contains `needle` and returns it; panics
    /// with everything seen so far after `timeout`.
    pub fn wait_for_line(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        if let Some(line) = self.seen.iter().find(|l| l.contains(needle)) {
            return line.clone();
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!("no line containing {needle:?} within {timeout:?}; output:\n{}", self.seen.join("\n")),
            }
        }
    }

    /// Everything the server printed so far.
    pub fn output(&mut self) -> String {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        self.seen.join("\n")
    }

    /// The structured (`log.format = "json"`) lines printed so far whose
    /// message is `message`.
    pub fn json_events(&mut self, message: &str) -> Vec<serde_json::Value> {
        self.output()
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|v| v["message"] == message || v["fields"]["message"] == message)
            .collect()
    }

    /// Waits for the "upload completed" event of `path` (a client path such as
    /// `/inbox/a.csv`) and returns it; panics after `timeout`.
    pub fn wait_for_upload_completed(&mut self, path: &str, timeout: Duration) -> serde_json::Value {
        wait_for(timeout, || self.json_events("upload completed").into_iter().find(|v| field(v, "path") == Some(path)))
            .unwrap_or_else(|| panic!("no \"upload completed\" event for {path}; output:\n{}", self.output()))
    }

    /// Whether the server process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The most resident memory the server process has used so far, in KiB
    /// (`VmHWM` of `/proc/<pid>/status`).
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("/proc/<pid>/status");
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM in /proc/<pid>/status");
        line.split_whitespace().nth(1).and_then(|kib| kib.parse().ok()).expect("VmHWM in kB")
    }

    /// Sends `signal` (e.g. SIGHUP) to the running server.
    pub fn signal(&self, signal: Signal) {
        rustix::process::kill_process(Pid::from_child(&self.child), signal).expect("signal the server");
    }

    /// Sends `signal` and waits (bounded) for the process to exit.
    pub fn stop_with(&mut self, signal: Signal) -> ExitStatus {
        self.signal(signal);
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "server did not stop within {STOP_TIMEOUT:?}:\n{}", self.output());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A string field of a JSON log event, flattened or under `fields`.
pub fn field<'a>(event: &'a serde_json::Value, name: &str) -> Option<&'a str> {
    event[name].as_str().or_else(|| event["fields"][name].as_str())
}
