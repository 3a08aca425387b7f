//! Given a certificate and key, the node serves its pages over HTTPS and signaling over WSS — what
//! browsers need off localhost to use a camera.

use std::path::PathBuf;
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use showcall_tests::TestNode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_tungstenite::tungstenite::Message;

fn fixture(name: &str) -> PathBuf {
    showcall_tests::tls_fixture(name)
}

/// A TLS connection to the node that trusts only the test certificate.
async fn tls_connect(node: &TestNode) -> TlsStream<TcpStream> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(fixture("ca.crt")).expect("fixture CA") {
        roots.add(cert.expect("valid pem")).expect("trusted root");
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(node.handle.signal_addr)
        .await
        .expect("tcp connects");
    let name = ServerName::try_from("localhost").expect("server name");
    TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("TLS handshake with the node's certificate")
}

async fn secure_node() -> TestNode {
    TestNode::start_with(|c| {
        c.tls_cert = Some(fixture("localhost.crt"));
        c.tls_key = Some(fixture("localhost.key"));
    })
    .await
}

#[tokio::test]
async fn pages_are_served_over_https() {
    let node = secure_node().await;
    assert!(node.handle.pages_url().starts_with("https://"));
    let mut tls = tls_connect(&node).await;
    tls.write_all(b"GET /host.html HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .expect("request sent");
    let mut page = String::new();
    tls.read_to_string(&mut page).await.expect("response read");
    assert!(
        page.starts_with("HTTP/1.1 200"),
        "{}",
        &page[..page.len().min(200)]
    );
    assert!(page.contains("<html"), "the host page came back");
}

#[tokio::test]
async fn signaling_works_over_wss() {
    let node = secure_node().await;
    assert!(node.url().starts_with("wss://"), "{}", node.url());
    let tls = tls_connect(&node).await;
    let url = format!("wss://localhost:{}/signal", node.handle.signal_addr.port());
    let (mut ws, _) = tokio_tungstenite::client_async(url, tls)
        .await
        .expect("websocket upgrade over TLS");
    let login = json!({ "requestId": "1", "login": { "token": node.token("alice") } });
    ws.send(Message::Text(login.to_string().into()))
        .await
        .expect("sent");
    let reply = loop {
        match ws.next().await.expect("a frame").expect("no error") {
            Message::Text(t) => break serde_json::from_str::<Value>(t.as_str()).expect("json"),
            _ => continue,
        }
    };
    assert_eq!(reply["response"]["login"]["userId"], "alice", "{reply}");
}

#[tokio::test]
async fn plain_http_is_not_served_when_tls_is_on() {
    let node = secure_node().await;
    let mut tcp = TcpStream::connect(node.handle.signal_addr)
        .await
        .expect("tcp connects");
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("sent");
    let mut buf = Vec::new();
    let _ = tcp.read_to_end(&mut buf).await;
    assert!(
        !String::from_utf8_lossy(&buf).contains("200 OK"),
        "no page over plain HTTP"
    );
}
