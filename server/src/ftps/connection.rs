//! One control connection from admission to its end: the states of
//! `prelogin` then `postlogin`, in that order, over one command channel.

use std::sync::Arc;

use tokio::time::Instant;
use tracing::debug;

use super::channel::Context;
use super::passive::PortLeases;
use super::postlogin::FtpSession;
use super::prelogin::{self, Mode};
use super::tls::TlsPolicy;
use crate::engine::{Accepted, ClientStream, ConnectionPermit, Engine, Incoming, Offence};

/// Serves one admitted control connection.
pub(super) async fn serve(incoming: Incoming, engine: Engine, policy: TlsPolicy, ports: Arc<PortLeases>, mode: Mode) {
    let Incoming { accepted: Accepted { stream, peer, permit, tripwire }, local, stop, alive } = incoming;
    let local_ip = local.ip().to_canonical();
    let ctx = Context { engine, peer, local_ip, ports, tls: policy.session(), tripwire, stop };
    run(ctx, stream, mode, permit).await;
    drop(alive);
}

/// Runs the connection to its end: TLS and login within the login grace
/// time, then the logged-in commands.
async fn run(ctx: Context, stream: ClientStream, mode: Mode, mut permit: ConnectionPermit) {
    let deadline = Instant::now() + ctx.engine.config().limits.login_grace_time;
    let Some(mut control) = prelogin::secure(&ctx, stream, mode, deadline).await else {
        score(&ctx);
        return;
    };
    if prelogin::greet(&mut control, mode).await.is_err() {
        return;
    }
    let Some((session, protection)) = prelogin::login(&ctx, &mut control, deadline).await else {
        score(&ctx);
        control.close().await;
        return;
    };
    permit.logged_in();
    control.logged_in(ctx.engine.config().limits.idle_timeout);
    FtpSession::new(&ctx, session, protection).run(&mut control).await;
    score(&ctx);
    control.close().await;
}

/// Whatever broke the protocol is scored once, when the connection ends.
fn score(ctx: &Context) {
    if let Some(what) = ctx.tripwire.tripped() {
        debug!(peer = %ctx.peer, what, "ftps: protocol abuse");
        ctx.engine.offence(ctx.peer, Offence::ProtocolAbuse);
    }
}
