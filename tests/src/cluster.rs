//! Several nodes behind HAProxy: two `passerelle serve` on loopback
//! addresses of their own (127.0.0.2, 127.0.0.3), one PostgreSQL catalog and
//! one data directory, and HAProxy (Debian's, run as the test user in the
//! foreground) on 127.0.0.1 with the packaged configuration
//! (`packaging/haproxy/haproxy.cfg`), its addresses replaced by the test's.
//! The nodes trust 127.0.0.1 to send PROXY headers, so clients connecting
//! from other loopback addresses (127.0.0.11…) are seen as themselves.
//!
//! ```text
//!  client 127.0.0.11 ─► HAProxy 127.0.0.1 ─(PROXY v2)─► node 127.0.0.2 ─┐ PostgreSQL catalog,
//!  client 127.0.0.12 ─┘   (SFTP, FTPS control)      └► node 127.0.0.3 ─┘ shared data dir
//!  FTPS data: client ─► the node named by PASV, directly
//! ```

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::installation::Passerelle;
use crate::server::Server;
use crate::tools::{Outcome, bounded, python, python_script};
use crate::util::{free_port, wait_for};

/// The loopback addresses of the nodes, in order.
const NODE_ADDRESSES: [&str; 2] = ["127.0.0.2", "127.0.0.3"];

/// HAProxy's address, which the nodes trust for PROXY headers.
pub const HAPROXY_ADDRESS: &str = "127.0.0.1";

/// The example nodes of the packaged configuration, in order.
const TEMPLATE_NODES: [&str; 2] = ["10.0.0.11", "10.0.0.12"];

/// The admin port of the packaged configuration's health checks.
const TEMPLATE_ADMIN_PORT: &str = "port 9100";

/// How long HAProxy may take to listen.
const HAPROXY_READY: Duration = Duration::from_secs(10);

/// How long a load run (`tests/python/cluster_load.py`) may take.
const LOAD_TIMEOUT_SECS: u32 = 300;

/// The ports of one listener set: SFTP, explicit and implicit FTPS.
#[derive(Clone, Copy, Debug)]
pub struct Ports {
    /// SFTP.
    pub sftp: u16,
    /// Explicit FTPS (AUTH TLS).
    pub explicit: u16,
    /// Implicit FTPS.
    pub implicit: u16,
}

impl Ports {
    fn free() -> Self {
        Self { sftp: free_port(), explicit: free_port(), implicit: free_port() }
    }

    /// The port of the packaged configuration's `service` port (22, 21, 990).
    fn of_template(&self, service: &str) -> u16 {
        match service {
            "22" => self.sftp,
            "21" => self.explicit,
            "990" => self.implicit,
            other => panic!("the packaged HAProxy configuration has an unknown service port {other}"),
        }
    }
}

/// One node (sharing the first node's data directory and databases): its
/// address, ports and running server.
pub struct Node {
    /// The running server; `None` once [`Cluster::kill`] killed it.
    pub server: Option<Server>,
    /// The node's loopback address.
    pub address: &'static str,
    /// The node's own listeners (HAProxy connects to them).
    pub ports: Ports,
    /// The node's admin endpoint port (`/healthz`), on its address.
    pub admin_port: u16,
}

/// Two nodes behind HAProxy; everything is stopped and removed when dropped.
pub struct Cluster {
    // Declared in the order they must stop: HAProxy, the servers, then the
    // installation that owns the shared data directory and databases.
    haproxy: Haproxy,
    /// The nodes, in order (127.0.0.2 first).
    pub nodes: Vec<Node>,
    /// HAProxy's listeners on 127.0.0.1: what clients connect to.
    pub front: Ports,
    /// The installation of the first node, for CLI commands and the layout.
    pub p: Passerelle,
}

impl Cluster {
    /// Serves `p` (a [`Passerelle::with_postgres`] installation, its tenants
    /// and users made) on two nodes behind HAProxy, each configured with `env`
    /// as well; returns once the nodes are ready and HAProxy listens.
    pub fn start(mut p: Passerelle, env: &[(&str, &str)]) -> Self {
        assert!(p.pg_catalog_url().is_some(), "nodes share a PostgreSQL catalog: use Passerelle::with_postgres");
        p.set_env("PASSERELLE_LOG_FORMAT", "json");
        p.set_env("PASSERELLE_PROXY_PROTOCOL_TRUSTED_PROXIES", &format!("{HAPROXY_ADDRESS}/32"));
        for (name, value) in env {
            p.set_env(name, value);
        }
        // Started one after the other: the first creates what the data
        // directory lacks (host keys, TLS certificate), the second finds it.
        let nodes = NODE_ADDRESSES.iter().map(|address| Node::start(&p, address)).collect::<Vec<_>>();
        let front = Ports::free();
        let config = haproxy_config(&packaged_haproxy_config(), &front, &nodes);
        let haproxy = Haproxy::start(&p.scratch(), &config, &front);
        Self { haproxy, nodes, front, p }
    }

    /// Kills node `index` with SIGKILL (no drain, no lease given back).
    pub fn kill(&mut self, index: usize) {
        let mut server = self.nodes[index].server.take().expect("the node is running");
        let status = server.stop_with(rustix::process::Signal::KILL);
        assert!(!status.success(), "a killed node does not exit cleanly");
    }

    /// What HAProxy logged so far (one line per connection, `option tcplog`).
    pub fn haproxy_log(&self) -> String {
        std::fs::read_to_string(&self.haproxy.log).unwrap_or_default()
    }

    /// Starts `tests/python/cluster_load.py` with `plan` (HAProxy's address
    /// and ports filled in) in the background.
    pub fn load(&self, mut plan: serde_json::Value) -> Load {
        plan["host"] = HAPROXY_ADDRESS.into();
        plan["sftp_port"] = self.front.sftp.into();
        plan["explicit_port"] = self.front.explicit.into();
        plan["implicit_port"] = self.front.implicit.into();
        Load::start(&plan)
    }
}

impl Node {
    /// Starts a node of `first` (see [`Passerelle::another_node`]) at `address`.
    fn start(first: &Passerelle, address: &'static str) -> Self {
        let ports = Ports::free();
        let admin_port = free_port();
        // Passive ranges of 16 ports below the ephemeral range, on the
        // node's own address.
        let passive = 20_000 + (rand::random::<u16>() % 750) * 16;
        let node = first.another_node();
        let env = [
            ("PASSERELLE_SFTP_LISTEN", format!("{address}:{}", ports.sftp)),
            ("PASSERELLE_FTPS_EXPLICIT_LISTEN", format!("{address}:{}", ports.explicit)),
            ("PASSERELLE_FTPS_IMPLICIT_LISTEN", format!("{address}:{}", ports.implicit)),
            ("PASSERELLE_FTPS_PASSIVE_PORTS", format!("{passive}-{}", passive + 15)),
            ("PASSERELLE_ADMIN_LISTEN", format!("{address}:{admin_port}")),
            ("PASSERELLE_NODE_ID", format!("node-{address}")),
        ];
        let mut command = node.command(&["serve"]);
        command.envs(env);
        let server = Server::start(&mut command);
        Self { server: Some(server), address, ports, admin_port }
    }
}

/// The packaged HAProxy configuration.
pub fn packaged_haproxy_config() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/haproxy/haproxy.cfg");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The packaged configuration with the test's addresses: its `global`
/// section (chroot, user and daemon need root and a service) replaced by
/// one for a foreground HAProxy logging to standard error, its frontends on
/// `front` (127.0.0.1), its example servers replaced by `nodes`. Panics if
/// the packaged file no longer has what is replaced, so that the test
/// follows it.
fn haproxy_config(template: &str, front: &Ports, nodes: &[Node]) -> String {
    let (_, sections) = template.split_once("\ndefaults").expect("a defaults section in haproxy.cfg");
    let mut out = String::from("global\n    maxconn 1000\n    log stderr format raw local0\n\ndefaults");
    let mut servers = 0;
    for line in sections.lines() {
        let mut line = line.to_owned();
        if let Some(service) = line.trim().strip_prefix("bind :") {
            line = format!("    bind {HAPROXY_ADDRESS}:{}", front.of_template(service));
        } else if line.trim_start().starts_with("server ") {
            let (template_node, node) = TEMPLATE_NODES
                .iter()
                .zip(nodes)
                .find(|(template_node, _)| line.contains(&format!(" {template_node}:")))
                .unwrap_or_else(|| panic!("a server line of haproxy.cfg names no example node: {line}"));
            let service = line.split(&format!("{template_node}:")).nth(1).and_then(|rest| rest.split(' ').next());
            let port = node.ports.of_template(service.expect("a server's port"));
            assert!(line.contains(TEMPLATE_ADMIN_PORT), "server checks {TEMPLATE_ADMIN_PORT}: {line}");
            line = line
                .replace(
                    &format!("{template_node}:{}", service.unwrap_or_default()),
                    &format!("{}:{port}", node.address),
                )
                .replace(TEMPLATE_ADMIN_PORT, &format!("port {}", node.admin_port));
            servers += 1;
        }
        out.push_str(&line);
        out.push('\n');
    }
    assert_eq!(servers, 3 * nodes.len(), "three backends (SFTP, explicit and implicit FTPS) of every node:\n{out}");
    out
}

/// `haproxy` from `PATH`, else where Debian puts it.
fn haproxy_binary() -> PathBuf {
    if crate::tools::on_path("haproxy") { PathBuf::from("haproxy") } else { PathBuf::from("/usr/sbin/haproxy") }
}

/// A foreground HAProxy (`-db`); killed when dropped.
struct Haproxy {
    child: Child,
    log: PathBuf,
}

impl Haproxy {
    /// Checks `config` with `haproxy -c`, starts HAProxy on it and waits
    /// until it listens on `front`.
    fn start(scratch: &Path, config: &str, front: &Ports) -> Self {
        let file = scratch.join("haproxy.cfg");
        std::fs::write(&file, config).expect("write haproxy.cfg");
        let checked = Outcome::from(
            Command::new(haproxy_binary())
                .arg("-c")
                .arg("-f")
                .arg(&file)
                .output()
                .expect("haproxy must be installed (scripts/test installs it)"),
        );
        assert!(checked.success(), "haproxy -c refused the configuration:\n{}\n{config}", checked.stderr);
        let log = scratch.join("haproxy.log");
        let output = std::fs::File::create(&log).expect("haproxy log");
        let child = Command::new(haproxy_binary())
            .arg("-db")
            .arg("-f")
            .arg(&file)
            .stdin(Stdio::null())
            .stdout(output.try_clone().expect("log file"))
            .stderr(output)
            .spawn()
            .expect("spawn haproxy");
        let haproxy = Self { child, log };
        // HAProxy listens once these ports can no longer be bound.
        let listening = |port: u16| std::net::TcpListener::bind((HAPROXY_ADDRESS, port)).is_err();
        let ready = wait_for(HAPROXY_READY, || {
            [front.sftp, front.explicit, front.implicit].into_iter().all(listening).then_some(())
        });
        assert!(
            ready.is_some(),
            "HAProxy does not listen after {HAPROXY_READY:?}:\n{}",
            std::fs::read_to_string(&haproxy.log).unwrap_or_default()
        );
        haproxy
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `tests/python/cluster_load.py`.
pub struct Load {
    child: Child,
}

impl Load {
    fn start(plan: &serde_json::Value) -> Self {
        let mut command = bounded(python(), LOAD_TIMEOUT_SECS);
        command.arg(python_script("cluster_load.py"));
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn cluster_load.py");
        child.stdin.take().expect("stdin").write_all(plan.to_string().as_bytes()).expect("write the plan");
        Self { child }
    }

    /// Waits for the run to end and returns its report.
    pub fn finish(self) -> serde_json::Value {
        let out = Outcome::from(self.child.wait_with_output().expect("wait for cluster_load.py"));
        serde_json::from_str(out.stdout.trim()).unwrap_or_else(|e| {
            panic!("cluster_load.py gave no report ({e}), exit {}:\n{}\n{}", out.code, out.stdout, out.stderr)
        })
    }
}
