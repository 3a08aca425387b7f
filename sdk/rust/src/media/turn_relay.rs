//! TURN over TLS (RFC 8656 on a TLS connection, RFC 7065 `turns:` URLs): the relay a session falls back
//! to when nothing but TLS on 443 leaves its network, so neither the node's UDP nor its ICE-TCP port can
//! be reached.
//!
//! The node hands each login its TURN servers with credentials of its own (`LoginInfo::ice_servers`).
//! Before it makes its offer, a session whose [`MediaOptions::turn`](super::MediaOptions::turn) is on
//! connects to the first `turns:` server, allocates a relayed UDP address there and adds it as a
//! **relayed** candidate ([`TurnRelay::candidate`]) beside its host candidates — what a browser does with
//! `iceServers`. str0m checks the relayed pair with the others and nominates it only when nothing more
//! direct answers (relayed candidates have the lowest priority). A server that cannot be reached or
//! refuses the credentials within [`ALLOCATE_TIMEOUT`] is skipped: the session goes on without a relay.
//!
//! The TURN protocol is `turn_client_rustls` (sans IO); the connection and the timers are ours, in one
//! task per relay ([`run`]). str0m sends "from" the relayed address: such datagrams go to
//! [`TurnRelay::send`], which the task sends to the peer through the server, asking for the peer's
//! permission first (datagrams for a peer wait for it, at most [`PERMISSION_QUEUE`] of them). What the
//! server relays back comes out of [`TurnRelay::recv`] with the peer's address, for str0m to take as
//! received on the relayed address.
//!
//! Bounds: [`OUTGOING_QUEUE`] datagrams queued towards the task and [`INBOUND_QUEUE`] from it; a
//! datagram that finds its queue full is dropped, as a full UDP socket buffer drops (media is
//! loss-tolerant; STUN and DTLS retransmit). The connection reads at most [`READ_CHUNK`] bytes at a
//! time, so what one read decrypts fits what the TURN client takes per call. A connection that closes
//! or fails ends the relay: its datagrams are dropped from then on, and a session that ran over it
//! ends when ICE notices (as one whose UDP path dies).

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use str0m::Candidate;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{mpsc, oneshot};
use turn_client_rustls::Transmit;
use turn_client_rustls::proto::types::{Instant as TurnInstant, TransportType, TurnCredentials};
use turn_client_rustls::{
    TurnClientApi, TurnClientRustls, TurnConfig, TurnEvent, TurnPollRet, TurnRecvRet,
};

use crate::{IceServer, SdkError};

/// How long connecting, the TLS handshake and the allocation may take together.
pub(crate) const ALLOCATE_TIMEOUT: Duration = Duration::from_secs(5);
/// Datagrams from the session not yet taken by the relay's task.
pub(crate) const OUTGOING_QUEUE: usize = 256;
/// Datagrams relayed back and not yet taken by the session.
const INBOUND_QUEUE: usize = 1024;
/// Datagrams for one peer waiting for its permission on the server.
pub(crate) const PERMISSION_QUEUE: usize = 64;
/// Bytes read from the TLS connection at once (see the module docs).
const READ_CHUNK: usize = 512;

/// A `turns:` URL's server: `turns:<host>[:<port>][?transport=tcp]`, port 5349 by default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TurnsServer {
    pub(crate) host: String,
    pub(crate) port: u16,
}

impl TurnsServer {
    /// The server of a `turns:` URL; `None` for other schemes (`turn:` over UDP or TCP is not
    /// spoken here) and for URLs that do not parse.
    pub(crate) fn parse(url: &str) -> Option<Self> {
        let rest = url.strip_prefix("turns:")?;
        let (authority, query) = rest.split_once('?').unwrap_or((rest, ""));
        if !query.is_empty() && !query.split('&').any(|kv| kv == "transport=tcp") {
            return None;
        }
        let (host, port) = match authority.strip_prefix('[') {
            Some(v6) => {
                let (host, after) = v6.split_once(']')?;
                let port = match after.strip_prefix(':') {
                    Some(p) => p.parse().ok()?,
                    None if after.is_empty() => 5349,
                    None => return None,
                };
                (host, port)
            }
            None => match authority.rsplit_once(':') {
                Some((host, port)) => (host, port.parse().ok()?),
                None => (authority, 5349),
            },
        };
        if host.is_empty() || host.contains(['/', '@', ' ']) {
            return None;
        }
        Some(Self {
            host: host.to_owned(),
            port,
        })
    }
}

/// The `turns:` servers of a login's ICE servers, each with its credentials, in the order given.
pub(crate) fn turns_servers(servers: &[IceServer]) -> Vec<(TurnsServer, TurnCredentials)> {
    servers
        .iter()
        .flat_map(|server| {
            let credentials = TurnCredentials::new(&server.username, &server.credential);
            server
                .urls
                .iter()
                .filter_map(|url| TurnsServer::parse(url))
                .map(move |url| (url, credentials.clone()))
        })
        .collect()
}

/// The TLS settings relays use: the public web roots, plus `extra_roots` (PEM, a private CA).
pub(crate) fn tls_config(extra_roots_pem: Option<&str>) -> Result<Arc<ClientConfig>, SdkError> {
    let mut roots =
        rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(pem) = extra_roots_pem {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject as _;
        for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            let cert = cert.map_err(|e| SdkError::Transport(format!("turn ca: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| SdkError::Transport(format!("turn ca: {e}")))?;
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SdkError::Transport(format!("tls: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// An allocation on a TURN server, and the task that keeps it.
pub(crate) struct TurnRelay {
    relayed: SocketAddr,
    local: SocketAddr,
    outgoing: mpsc::Sender<(SocketAddr, Vec<u8>)>,
    incoming: mpsc::Receiver<(SocketAddr, Vec<u8>)>,
    task: tokio::task::AbortHandle,
}

impl std::fmt::Debug for TurnRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnRelay")
            .field("relayed", &self.relayed)
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

impl TurnRelay {
    /// Connects to `server` over TLS and allocates a relayed UDP address, within [`ALLOCATE_TIMEOUT`].
    pub(crate) async fn allocate(
        server: &TurnsServer,
        credentials: TurnCredentials,
        tls: Arc<ClientConfig>,
    ) -> Result<Self, SdkError> {
        let what = format!("turn server {}:{}", server.host, server.port);
        let server_name = ServerName::try_from(server.host.clone())
            .map_err(|e| SdkError::Transport(format!("{what}: {e}")))?;
        let connect = async {
            let stream = TcpStream::connect((server.host.as_str(), server.port))
                .await
                .map_err(|e| SdkError::Transport(format!("{what}: {e}")))?;
            let _ = stream.set_nodelay(true);
            let local = stream
                .local_addr()
                .map_err(|e| SdkError::Transport(format!("{what}: {e}")))?;
            let remote = stream
                .peer_addr()
                .map_err(|e| SdkError::Transport(format!("{what}: {e}")))?;
            let client = TurnClientRustls::allocate(
                local,
                remote,
                TurnConfig::new(credentials),
                server_name,
                tls,
            );
            let (outgoing, outgoing_rx) = mpsc::channel(OUTGOING_QUEUE);
            let (incoming_tx, incoming) = mpsc::channel(INBOUND_QUEUE);
            let (allocated_tx, allocated) = oneshot::channel();
            let task = tokio::spawn(run(stream, client, outgoing_rx, incoming_tx, allocated_tx))
                .abort_handle();
            let relay = |relayed| TurnRelay {
                relayed,
                local,
                outgoing,
                incoming,
                task,
            };
            match allocated.await {
                Ok(Ok(relayed)) => Ok(relay(relayed)),
                Ok(Err(why)) => Err(SdkError::Transport(format!("{what}: {why}"))),
                Err(_) => Err(SdkError::Transport(format!(
                    "{what}: the connection ended before an allocation"
                ))),
            }
        };
        tokio::time::timeout(ALLOCATE_TIMEOUT, connect)
            .await
            .map_err(|_| {
                SdkError::Transport(format!("{what}: no allocation within {ALLOCATE_TIMEOUT:?}"))
            })?
    }

    /// The relayed address: where the server receives for us, what the candidate announces.
    pub(crate) fn relayed_addr(&self) -> SocketAddr {
        self.relayed
    }

    /// The relayed candidate (its base is the relayed address; `local` the TLS connection's end).
    pub(crate) fn candidate(&self) -> Result<Candidate, SdkError> {
        Candidate::relayed(self.relayed, self.local, "udp")
            .map_err(|e| SdkError::Transport(format!("relayed candidate {}: {e}", self.relayed)))
    }

    /// Sends `datagram` to `to` through the server; dropped when the queue is full or the relay ended.
    pub(crate) fn send(&self, to: SocketAddr, datagram: &[u8]) {
        if self.outgoing.try_send((to, datagram.to_vec())).is_err() {
            tracing::trace!(%to, len = datagram.len(), "turn datagram dropped");
        }
    }

    /// The next datagram the server relayed back, with the peer it came from. Pending forever once the
    /// relay ended (its path is then simply silent).
    pub(crate) async fn recv(&mut self) -> (SocketAddr, Vec<u8>) {
        match self.incoming.recv().await {
            Some(datagram) => datagram,
            None => std::future::pending().await,
        }
    }
}

impl Drop for TurnRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The TURN client's clock: time since the relay's task started (`TurnInstant::from_std` measures the
/// time elapsed since the instant it is given).
#[derive(Clone, Copy)]
struct Clock(std::time::Instant);

impl Clock {
    fn now(self) -> TurnInstant {
        TurnInstant::from_std(self.0)
    }
}

/// The relay's task: the TLS connection, the TURN client's timers, permissions and both directions.
async fn run(
    stream: TcpStream,
    mut client: TurnClientRustls,
    mut outgoing: mpsc::Receiver<(SocketAddr, Vec<u8>)>,
    incoming: mpsc::Sender<(SocketAddr, Vec<u8>)>,
    allocated: oneshot::Sender<Result<SocketAddr, String>>,
) {
    let clock = Clock(std::time::Instant::now());
    let now = || clock.now();
    let (server, local) = (client.remote_addr(), client.local_addr());
    let (mut reader, mut writer) = stream.into_split();
    let mut allocated = Some(allocated);
    // Datagrams waiting for their peer's permission, by peer IP.
    let mut waiting: HashMap<IpAddr, VecDeque<(SocketAddr, Vec<u8>)>> = HashMap::new();
    let mut buf = [0u8; READ_CHUNK];
    let ended = loop {
        if let Err(e) = flush(&mut client, &mut writer, now()).await {
            break e;
        }
        while let Some(event) = client.poll_event() {
            match event {
                TurnEvent::AllocationCreated(_, relayed) => {
                    if let Some(tx) = allocated.take() {
                        let _ = tx.send(Ok(relayed));
                    }
                }
                TurnEvent::AllocationCreateFailed(family) => {
                    if let Some(tx) = allocated.take() {
                        let _ = tx.send(Err(format!("allocation refused ({family:?})")));
                    }
                }
                TurnEvent::PermissionCreated(_, ip) => {
                    for (to, datagram) in waiting.remove(&ip).unwrap_or_default() {
                        send_to(&mut client, &mut writer, to, datagram, now()).await;
                    }
                }
                TurnEvent::PermissionCreateFailed(_, ip) => {
                    let dropped = waiting.remove(&ip).map_or(0, |q| q.len());
                    tracing::debug!(%ip, dropped, "turn permission refused");
                }
                other => tracing::trace!(?other, "turn event"),
            }
        }
        let wait = match client.poll(now()) {
            TurnPollRet::WaitUntil(at) => at.saturating_duration_since(now()),
            TurnPollRet::Closed => break "the server closed the allocation".to_owned(),
            other => {
                tracing::trace!(?other, "turn poll");
                Duration::from_millis(100)
            }
        };
        if wait.is_zero() {
            // The client has something to write or a timer due: go round again (writes come first).
            tokio::task::yield_now().await;
            continue;
        }
        tokio::select! {
            read = reader.read(&mut buf) => match read {
                Ok(0) => break "the server closed the connection".to_owned(),
                Err(e) => break format!("read: {e}"),
                Ok(n) => {
                    let transmit = Transmit::new(
                        &buf[..n],
                        TransportType::Tcp,
                        server,
                        local,
                    );
                    if let TurnRecvRet::PeerData(data) = client.recv(transmit, now()) {
                        forward(&incoming, data.peer, data.data());
                    }
                    while let Some(data) = client.poll_recv(now()) {
                        forward(&incoming, data.peer, data.data());
                    }
                }
            },
            next = outgoing.recv() => match next {
                // The session is gone.
                None => break "closed".to_owned(),
                Some((to, datagram)) => {
                    if client.have_permission(TransportType::Udp, to.ip()) {
                        send_to(&mut client, &mut writer, to, datagram, now()).await;
                    } else {
                        let queue = waiting.entry(to.ip()).or_default();
                        if queue.is_empty()
                            && let Err(e) = client.create_permission(TransportType::Udp, to.ip(), now())
                        {
                            tracing::debug!(peer = %to, error = %e, "turn permission not asked");
                        }
                        if queue.len() < PERMISSION_QUEUE {
                            queue.push_back((to, datagram));
                        }
                    }
                }
            },
            () = tokio::time::sleep(wait) => {}
        }
    };
    if let Some(tx) = allocated.take() {
        let _ = tx.send(Err(ended.clone()));
    }
    tracing::debug!(%server, reason = %ended, "turn relay ended");
}

/// Writes what the TURN client has to send (TLS records) to the connection.
async fn flush(
    client: &mut TurnClientRustls,
    writer: &mut OwnedWriteHalf,
    now: TurnInstant,
) -> Result<(), String> {
    while let Some(transmit) = client.poll_transmit(now) {
        writer
            .write_all(transmit.data.as_ref())
            .await
            .map_err(|e| format!("write: {e}"))?;
    }
    Ok(())
}

async fn send_to(
    client: &mut TurnClientRustls,
    writer: &mut OwnedWriteHalf,
    to: SocketAddr,
    datagram: Vec<u8>,
    now: TurnInstant,
) {
    match client.send_to(TransportType::Udp, to, datagram, now) {
        Ok(Some(transmit)) => {
            let transmit = transmit.build();
            if let Err(e) = writer.write_all(transmit.data.as_ref()).await {
                tracing::debug!(error = %e, "turn write failed");
            }
        }
        Ok(None) => {}
        Err(e) => tracing::trace!(peer = %to, error = %e, "turn datagram not sent"),
    }
}

fn forward(incoming: &mpsc::Sender<(SocketAddr, Vec<u8>)>, peer: SocketAddr, data: &[u8]) {
    if incoming.try_send((peer, data.to_vec())).is_err() {
        tracing::trace!(%peer, len = data.len(), "relayed datagram dropped: the session is behind");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turns_urls_parse_with_their_port_or_5349() {
        let parse = TurnsServer::parse;
        let server = |host: &str, port| {
            Some(TurnsServer {
                host: host.to_owned(),
                port,
            })
        };
        assert_eq!(
            parse("turns:turn.example.com:443?transport=tcp"),
            server("turn.example.com", 443)
        );
        assert_eq!(parse("turns:10.0.0.1"), server("10.0.0.1", 5349));
        assert_eq!(parse("turns:[::1]:443"), server("::1", 443));
        assert_eq!(parse("turns:[::1]"), server("::1", 5349));
        for other in [
            "turn:turn.example.com:3478",
            "turn:turn.example.com:443?transport=tcp",
            "turns:turn.example.com:443?transport=udp",
            "turns::443",
            "turns:host:notaport",
            "https://turn.example.com",
        ] {
            assert_eq!(parse(other), None, "{other}");
        }
    }

    #[test]
    fn only_turns_servers_are_taken_with_their_credentials() {
        let servers = [IceServer {
            urls: vec![
                "turn:t.example.com:3478".into(),
                "turns:t.example.com:443?transport=tcp".into(),
            ],
            username: "1:demo:alice".into(),
            credential: "secret".into(),
            expires_at_ms: 1000,
        }];
        let taken = turns_servers(&servers);
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].0.port, 443);
    }
}
