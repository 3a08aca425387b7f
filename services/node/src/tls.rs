//! HTTPS/WSS for the signaling endpoint (demo pages + `/signal`), when the node is given a certificate and
//! key. Browsers only grant camera and microphone to secure contexts, and `http://127.0.0.1` is the only
//! plain-HTTP one: anything else needs TLS here or in a proxy in front.
//!
//! The gRPC side (business API, node link) is served over TLS by tonic itself with [`grpc_server_tls`];
//! [`trusted_ca`] loads the extra roots the node trusts for its outgoing TLS.
//!
//! One task accepts TCP connections; each connection does its TLS handshake and is then served by hyper
//! (HTTP/1.1 with upgrades for the WebSocket, or HTTP/2) with the same axum router as plain HTTP.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;

/// Loads a PEM certificate chain and private key into a TLS acceptor.
pub fn acceptor(cert: &Path, key: &Path) -> anyhow::Result<TlsAcceptor> {
    let chain = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading certificate {}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing certificate {}", cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("reading private key {}", key.display()))?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("TLS protocol versions")?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .context("certificate and key do not match")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The gRPC server's TLS (business API and node link) from a PEM certificate chain and key.
pub fn grpc_server_tls(
    cert: &Path,
    key: &Path,
) -> anyhow::Result<tonic::transport::ServerTlsConfig> {
    let cert_pem =
        std::fs::read(cert).with_context(|| format!("reading certificate {}", cert.display()))?;
    let key_pem =
        std::fs::read(key).with_context(|| format!("reading private key {}", key.display()))?;
    // Checked here, at start, rather than at the first handshake.
    acceptor(cert, key)?;
    Ok(tonic::transport::ServerTlsConfig::new()
        .identity(tonic::transport::Identity::from_pem(cert_pem, key_pem)))
}

/// The PEM bundle of `trusted_ca`, checked to hold at least one certificate.
pub fn trusted_ca(path: &Path) -> anyhow::Result<Vec<u8>> {
    let pem = std::fs::read(path)
        .with_context(|| format!("reading trusted CA bundle {}", path.display()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing trusted CA bundle {}", path.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "trusted CA bundle {} holds no certificate",
        path.display()
    );
    Ok(pem)
}

/// Serves `router` over TLS on `listener` until `stop` flips.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    acceptor: TlsAcceptor,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => break,
        };
        let (tcp, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                continue;
            }
        };
        // Small, latency-bound frames: see the plain-HTTP server.
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        // The gateway caps connections per client address: it reads the peer from this extension.
        let service = TowerToHyperService::new(
            router
                .clone()
                .layer(axum::Extension(axum::extract::ConnectInfo(peer))),
        );
        tokio::spawn(async move {
            let tls = match acceptor.accept(tcp).await {
                Ok(tls) => tls,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
            };
            let served = Builder::new(TokioExecutor::new())
                .serve_connection_with_upgrades(TokioIo::new(tls), service)
                .await;
            if let Err(e) = served {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
}
