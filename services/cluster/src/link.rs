//! The node link: actor envelopes between nodes over tonic.
//!
//! [`LinkCourier`] is the actors' `Courier`: one client stream per peer node, opened on first use to the
//! peer's advertised link address (from the cluster view) and kept open; envelopes to a peer go through
//! one queue into that stream, so they arrive in the order sent. When the stream breaks (the peer died or
//! restarted) the queue is dropped with whatever it held — requests among them time out as UNAVAILABLE —
//! and the next envelope opens a new stream.
//!
//! The queue holds at most [`LINK_QUEUE_ENVELOPES`]: a peer that stops reading (HTTP/2 flow control stops
//! the stream) cannot make this node's memory grow. When it is full the envelope is dropped and the
//! send reports failure, so a request among them fails at once rather than at its timeout; it is counted
//! in `showcall_node_link_dropped_total`.
//!
//! Every stream is opened with a link token (`authorization: Bearer`, see
//! `showcall_auth::cluster_secret`) signed with the cluster secret and naming this node.
//!
//! Every envelope queued for a peer is counted in `showcall_node_link_envelopes_sent_total` (and in
//! [`envelopes_sent`], the process's total, which the benchmarks read).
//!
//! [`NodeLinkService`] is the receiving side: it refuses a stream without a valid link token
//! (UNAUTHENTICATED, logged, counted in `showcall_node_link_refused_total`), drops envelopes that claim
//! to come from another node than the token named, and hands each other envelope to the hub, one after
//! another, so per-peer order holds end to end.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use showcall_auth::ClusterSecret;

use showcall_proto::node as pb;
use showcall_proto::node::node_link_client::NodeLinkClient;
use showcall_proto::node::node_link_server::{NodeLink, NodeLinkServer};
use showcall_protocol::NodeId;
use showcall_protocol::envelope::{Courier, Envelope};
use showcall_protocol::messages::TraceContext;
use showcall_protocol::trace::TRACEPARENT;
use showcall_protocol::wire::{self, Unreadable, WIRE_MAJOR, WIRE_MINOR};
use showcall_runtime::Hub;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status, Streaming};

use crate::membership::Membership;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Envelopes queued for one peer at most (see the module docs): at a few hundred bytes each, tens of
/// megabytes — room for any burst a healthy peer drains, a bound for one that does not.
pub const LINK_QUEUE_ENVELOPES: usize = 65_536;

/// The metadata key of the link token.
const AUTHORIZATION: &str = "authorization";

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// How this node proves it is a member when it opens a link, and checks others: the cluster secret and
/// its own id.
#[derive(Debug, Clone)]
pub struct LinkCredentials {
    secret: ClusterSecret,
    me: NodeId,
}

impl LinkCredentials {
    pub fn new(secret: ClusterSecret, me: NodeId) -> Self {
        Self { secret, me }
    }
}

/// How this node dials its peers' links: plain HTTP/2, or TLS trusting the given roots.
#[derive(Debug, Clone, Default)]
pub enum LinkTransport {
    #[default]
    Plain,
    /// TLS; peers' certificates are checked against these PEM roots (and the public web roots).
    Tls { ca_pem: Option<Vec<u8>> },
}

/// See the module docs.
#[derive(Debug, Clone)]
pub struct LinkCourier {
    membership: Membership,
    credentials: LinkCredentials,
    transport: LinkTransport,
    peers: Arc<Mutex<HashMap<NodeId, mpsc::Sender<pb::Envelope>>>>,
    /// Writes frames as the next minor wire version would (`crate::wire_rehearsal`).
    rehearse_next_minor: bool,
}

impl LinkCourier {
    pub fn new(
        membership: Membership,
        credentials: LinkCredentials,
        transport: LinkTransport,
    ) -> Self {
        Self {
            membership,
            credentials,
            transport,
            peers: Arc::default(),
            rehearse_next_minor: false,
        }
    }

    /// This node's frames are written as a node of the next minor wire version would write them, for
    /// rehearsing a rolling upgrade (`crate::wire_rehearsal`).
    pub fn rehearsing_next_minor(mut self) -> Self {
        self.rehearse_next_minor = true;
        self
    }

    fn open(&self, node: &NodeId) -> Option<mpsc::Sender<pb::Envelope>> {
        let info = self
            .membership
            .read_view(|view| view.nodes.get(node).cloned())?;
        let (tx, rx) = mpsc::channel::<pb::Envelope>(LINK_QUEUE_ENVELOPES);
        if self.rehearse_next_minor {
            // The stream's first frame: a kind this release does not know (queue empty: it fits).
            let _ = tx.try_send(crate::wire_rehearsal::unknown_kind(&self.credentials.me.0));
        }
        let node = node.clone();
        let peers = self.peers.clone();
        let queue = tx.clone();
        let credentials = self.credentials.clone();
        let transport = self.transport.clone();
        tokio::spawn(async move {
            let url = match transport {
                LinkTransport::Plain => format!("http://{}", info.grpc_addr),
                LinkTransport::Tls { .. } => format!("https://{}", info.grpc_addr),
            };
            let outcome = async {
                let mut endpoint = tonic::transport::Endpoint::from_shared(url.clone())?;
                if let LinkTransport::Tls { ca_pem } = &transport {
                    let mut tls = tonic::transport::ClientTlsConfig::new().with_webpki_roots();
                    if let Some(pem) = ca_pem {
                        tls = tls.ca_certificate(tonic::transport::Certificate::from_pem(pem));
                    }
                    endpoint = endpoint.tls_config(tls)?;
                }
                let mut client = NodeLinkClient::new(endpoint.connect().await?);
                let stream = futures_util::stream::unfold(rx, |mut rx| async move {
                    rx.recv().await.map(|frame| (frame, rx))
                });
                let token = credentials.secret.mint(&credentials.me.0, now_unix())?;
                let mut request = Request::new(stream);
                request
                    .metadata_mut()
                    .insert(AUTHORIZATION, format!("Bearer {token}").parse()?);
                client.deliver(request).await?;
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
            }
            .await;
            if let Err(e) = outcome {
                tracing::warn!(%node, %url, error = %e, "node link closed");
            }
            // Forget this stream (unless a newer one replaced it already).
            let mut peers = lock(&peers);
            if peers.get(&node).is_some_and(|tx| tx.same_channel(&queue)) {
                peers.remove(&node);
            }
        });
        Some(tx)
    }
}

/// An envelope as a node link frame; its trace context goes in the frame's `trace_context` (W3C keys).
fn frame(envelope: &Envelope) -> pb::Envelope {
    pb::Envelope {
        from_node: envelope.from.0.clone(),
        actor_key: envelope.target(),
        payload: envelope.encode(),
        wire_major: WIRE_MAJOR,
        wire_minor: WIRE_MINOR,
        trace_context: envelope
            .trace
            .traceparent
            .iter()
            .map(|t| (TRACEPARENT.to_owned(), t.clone()))
            .collect(),
    }
}

/// The envelope a frame carries, with the sender's trace context (dropped when it is not a valid
/// traceparent: a bad trace context must not lose the message).
pub fn unframe(frame: &pb::Envelope) -> Result<Envelope, Unreadable> {
    let mut envelope = wire::read(frame.wire_major, &frame.payload)?;
    envelope.trace = frame
        .trace_context
        .get(TRACEPARENT)
        .and_then(|t| TraceContext::parse(t))
        .unwrap_or_default();
    Ok(envelope)
}

/// Envelopes queued for peers by every link courier of this process.
static ENVELOPES_SENT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many envelopes this process's nodes queued for their peers so far (all nodes of the process
/// together: a benchmark running several in-process nodes reads the cluster's total).
pub fn envelopes_sent() -> u64 {
    ENVELOPES_SENT.load(std::sync::atomic::Ordering::Relaxed)
}

fn count_sent() {
    ENVELOPES_SENT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    metrics::counter!("showcall_node_link_envelopes_sent_total").increment(1);
}

impl Courier for LinkCourier {
    fn send(&self, node: &NodeId, envelope: Envelope) -> bool {
        let mut frame = frame(&envelope);
        if self.rehearse_next_minor {
            frame = crate::wire_rehearsal::as_next_minor(frame);
        }
        let mut peers = lock(&self.peers);
        let frame = match peers.get(node) {
            Some(tx) => match tx.try_send(frame) {
                Ok(()) => {
                    count_sent();
                    return true;
                }
                Err(mpsc::error::TrySendError::Full(frame)) => {
                    metrics::counter!("showcall_node_link_dropped_total", "reason" => "queue_full")
                        .increment(1);
                    tracing::warn!(%node, target = %frame.actor_key, "envelope dropped: the link's queue is full (the peer is not reading)");
                    return false;
                }
                Err(mpsc::error::TrySendError::Closed(frame)) => frame,
            },
            None => frame,
        };
        match self.open(node) {
            Some(tx) => {
                // A new queue has room.
                if tx.try_send(frame).is_ok() {
                    count_sent();
                }
                peers.insert(node.clone(), tx);
                true
            }
            None => {
                tracing::warn!(%node, target = %frame.actor_key, "envelope dropped: node unknown");
                false
            }
        }
    }

    fn reads_minor(&self, node: &NodeId) -> u32 {
        self.membership
            .read_view(|view| view.nodes.get(node).map(|info| info.wire_minor))
            .unwrap_or(0)
    }
}

/// See the module docs.
#[derive(Debug, Clone)]
pub struct NodeLinkService {
    hub: Hub,
    secret: ClusterSecret,
    /// Turns true when this node stops: incoming links end then, so the gRPC server's graceful stop
    /// does not wait for peers that keep their streams open for good.
    stopping: tokio::sync::watch::Receiver<bool>,
}

impl NodeLinkService {
    pub fn new(
        hub: Hub,
        secret: ClusterSecret,
        stopping: tokio::sync::watch::Receiver<bool>,
    ) -> Self {
        Self {
            hub,
            secret,
            stopping,
        }
    }

    /// The member a stream's link token names, or the refusal.
    fn member(&self, request: &Request<Streaming<pb::Envelope>>) -> Result<String, Status> {
        let token = request
            .metadata()
            .get(AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "));
        let verified = match token {
            Some(token) => self
                .secret
                .verify(token, now_unix())
                .map_err(|e| e.to_string()),
            None => Err("no link token".to_owned()),
        };
        verified.map_err(|why| {
            metrics::counter!("showcall_node_link_refused_total").increment(1);
            tracing::warn!(peer = ?request.remote_addr(), %why, "node link refused: not a cluster member");
            Status::unauthenticated(format!("node link refused: {why}"))
        })
    }

    pub fn into_server(self) -> NodeLinkServer<Self> {
        NodeLinkServer::new(self)
    }
}

/// Serves the node link alone on `listener` (the node's `link_addr`), over TLS when `tls` is given,
/// until `shutdown` completes.
pub async fn serve_link(
    listener: tokio::net::TcpListener,
    service: NodeLinkService,
    tls: Option<tonic::transport::ServerTlsConfig>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    tracing::info!(addr = ?listener.local_addr().ok(), tls = tls.is_some(), "node link listening");
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        builder = builder.tls_config(tls)?;
    }
    builder
        .add_service(service.into_server())
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}

#[tonic::async_trait]
impl NodeLink for NodeLinkService {
    async fn deliver(
        &self,
        request: Request<Streaming<pb::Envelope>>,
    ) -> Result<Response<pb::DeliverSummary>, Status> {
        let member = self.member(&request)?;
        let mut stream = request.into_inner();
        let mut summary = pb::DeliverSummary::default();
        let mut stopping = self.stopping.clone();
        loop {
            let frame = tokio::select! {
                frame = stream.message() => match frame? {
                    Some(frame) => frame,
                    None => break,
                },
                // The peer's courier sees the stream end and opens a new one to whoever owns what it
                // sends next.
                Ok(_) = stopping.wait_for(|stop| *stop) => break,
            };
            if frame.from_node != member {
                summary.malformed += 1;
                tracing::warn!(%member, claimed = %frame.from_node, "envelope dropped: it claims another sender than the link's");
                continue;
            }
            match unframe(&frame) {
                Ok(envelope) => {
                    summary.delivered += 1;
                    self.hub.deliver(envelope).await;
                }
                Err(unreadable) => {
                    summary.malformed += 1;
                    metrics::counter!("showcall_node_link_dropped_total", "reason" => unreadable.reason())
                        .increment(1);
                    tracing::warn!(from = %frame.from_node, target = %frame.actor_key, wire = %format!("{}.{}", frame.wire_major, frame.wire_minor), error = %unreadable, "envelope dropped: not readable by this node");
                    if let Unreadable::UnknownKind {
                        reply: Some(reply),
                        detail,
                    } = unreadable
                    {
                        // The sender waits for this answer: tell it now rather than let it time out.
                        self.hub.refuse_request(
                            reply,
                            format!(
                                "{} does not know this request ({detail}); try again",
                                self.hub.node()
                            ),
                        );
                    }
                }
            }
        }
        Ok(Response::new(summary))
    }
}

#[cfg(test)]
mod tests {
    use showcall_protocol::envelope::Body;

    use super::*;

    fn envelope(trace: TraceContext) -> Envelope {
        Envelope {
            from: NodeId("node-a".into()),
            hops: 0,
            trace,
            body: Body::Reply {
                id: 7,
                result: serde_json::json!({"Ok": "Done"}),
            },
        }
    }

    #[test]
    fn the_trace_context_crosses_in_the_frame() {
        let sent = TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
            .expect("valid");
        let framed = frame(&envelope(sent.clone()));
        assert_eq!(
            framed.trace_context.get("traceparent"),
            sent.traceparent.as_ref()
        );
        let received = unframe(&framed).expect("decodes");
        assert_eq!(received.trace, sent);
        assert_eq!(received.target(), "reply/7");
    }

    #[test]
    fn an_untraced_envelope_has_no_trace_context() {
        let framed = frame(&envelope(TraceContext::default()));
        assert!(framed.trace_context.is_empty());
        assert_eq!(
            unframe(&framed).expect("decodes").trace,
            TraceContext::default()
        );
    }

    #[test]
    fn a_malformed_trace_context_is_dropped_not_the_envelope() {
        let mut framed = frame(&envelope(TraceContext::default()));
        framed
            .trace_context
            .insert("traceparent".into(), "garbage".into());
        let received = unframe(&framed).expect("the envelope still arrives");
        assert_eq!(received.trace, TraceContext::default());
    }
}
