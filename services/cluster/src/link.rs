//! The node link: actor envelopes between nodes over tonic.
//!
//! [`LinkCourier`] is the actors' `Courier`: one client stream per peer node, opened on first use to the
//! peer's advertised gRPC address (from the cluster view) and kept open; envelopes to a peer go through
//! one unbounded queue into that stream, so they arrive in the order sent. When the stream breaks
//! (the peer died or restarted) the queue is dropped with whatever it held — requests among them time out
//! as UNAVAILABLE — and the next envelope opens a new stream.
//!
//! [`NodeLinkService`] is the receiving side: it decodes each envelope and hands it to the hub, one after
//! another, so per-peer order holds end to end.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use showcall_actors::messages::TraceContext;
use showcall_actors::remote::{Courier, Envelope};
use showcall_actors::trace::TRACEPARENT;
use showcall_actors::{Hub, NodeId};
use showcall_proto::node as pb;
use showcall_proto::node::node_link_client::NodeLinkClient;
use showcall_proto::node::node_link_server::{NodeLink, NodeLinkServer};
use tokio::sync::mpsc;
use tonic::{Request, Response, Status, Streaming};

use crate::membership::Membership;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// See the module docs.
#[derive(Debug, Clone)]
pub struct LinkCourier {
    membership: Membership,
    peers: Arc<Mutex<HashMap<NodeId, mpsc::UnboundedSender<pb::Envelope>>>>,
}

impl LinkCourier {
    pub fn new(membership: Membership) -> Self {
        Self {
            membership,
            peers: Arc::default(),
        }
    }

    fn open(&self, node: &NodeId) -> Option<mpsc::UnboundedSender<pb::Envelope>> {
        let info = self
            .membership
            .read_view(|view| view.nodes.get(node).cloned())?;
        let (tx, rx) = mpsc::unbounded_channel::<pb::Envelope>();
        let node = node.clone();
        let peers = self.peers.clone();
        let queue = tx.clone();
        tokio::spawn(async move {
            let url = format!("http://{}", info.grpc_addr);
            let outcome = async {
                let mut client = NodeLinkClient::connect(url.clone()).await?;
                let stream = futures_util::stream::unfold(rx, |mut rx| async move {
                    rx.recv().await.map(|frame| (frame, rx))
                });
                client.deliver(stream).await?;
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
pub fn unframe(frame: &pb::Envelope) -> Result<Envelope, serde_json::Error> {
    let mut envelope = Envelope::decode(&frame.payload)?;
    envelope.trace = frame
        .trace_context
        .get(TRACEPARENT)
        .and_then(|t| TraceContext::parse(t))
        .unwrap_or_default();
    Ok(envelope)
}

impl Courier for LinkCourier {
    fn send(&self, node: &NodeId, envelope: Envelope) -> bool {
        let frame = frame(&envelope);
        let mut peers = lock(&self.peers);
        let frame = match peers.get(node) {
            Some(tx) => match tx.send(frame) {
                Ok(()) => return true,
                Err(mpsc::error::SendError(frame)) => frame,
            },
            None => frame,
        };
        match self.open(node) {
            Some(tx) => {
                let _ = tx.send(frame);
                peers.insert(node.clone(), tx);
                true
            }
            None => {
                tracing::warn!(%node, target = %frame.actor_key, "envelope dropped: node unknown");
                false
            }
        }
    }
}

/// See the module docs.
#[derive(Debug, Clone)]
pub struct NodeLinkService {
    hub: Hub,
    /// Turns true when this node stops: incoming links end then, so the gRPC server's graceful stop
    /// does not wait for peers that keep their streams open for good.
    stopping: tokio::sync::watch::Receiver<bool>,
}

impl NodeLinkService {
    pub fn new(hub: Hub, stopping: tokio::sync::watch::Receiver<bool>) -> Self {
        Self { hub, stopping }
    }

    pub fn into_server(self) -> NodeLinkServer<Self> {
        NodeLinkServer::new(self)
    }
}

#[tonic::async_trait]
impl NodeLink for NodeLinkService {
    async fn deliver(
        &self,
        request: Request<Streaming<pb::Envelope>>,
    ) -> Result<Response<pb::DeliverSummary>, Status> {
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
            match unframe(&frame) {
                Ok(envelope) => {
                    summary.delivered += 1;
                    self.hub.deliver(envelope).await;
                }
                Err(e) => {
                    summary.malformed += 1;
                    tracing::warn!(from = %frame.from_node, target = %frame.actor_key, error = %e, "malformed envelope dropped");
                }
            }
        }
        Ok(Response::new(summary))
    }
}

#[cfg(test)]
mod tests {
    use showcall_actors::remote::Body;

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
