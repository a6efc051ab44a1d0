//! Several nodes of one installation: `passerelle serve` processes sharing
//! its catalog (PostgreSQL, see [`Passerelle::with_postgres`]) and its data
//! directory, each with its own `node.id`, listeners and admin endpoint.

use crate::installation::Passerelle;
use crate::server::Server;
use crate::util::free_port;

/// One running node.
pub struct Node {
    /// Its `serve` process.
    pub server: Server,
    /// The loopback port of its SFTP listener.
    pub sftp_port: u16,
    /// The loopback port of its admin endpoint (`/healthz`, `/metrics`).
    pub admin_port: u16,
}

impl Passerelle {
    /// Starts `passerelle serve` as node `id`, on SFTP and admin ports of
    /// its own, with `env` on top of the installation's configuration, and
    /// waits until it is ready.
    pub fn serve_node(&self, id: &str, env: &[(&str, &str)]) -> Node {
        let (sftp_port, admin_port) = (free_port(), free_port());
        let mut command = self.command(&["serve"]);
        command
            .env("PASSERELLE_NODE_ID", id)
            .env("PASSERELLE_SFTP_LISTEN", format!("127.0.0.1:{sftp_port}"))
            .env("PASSERELLE_ADMIN_LISTEN", format!("127.0.0.1:{admin_port}"))
            .envs(env.iter().copied());
        Node { server: Server::start(&mut command), sftp_port, admin_port }
    }
}
