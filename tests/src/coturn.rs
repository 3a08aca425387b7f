//! A real coturn (`turnserver`, Debian's `coturn`) listening for TURN over TLS only, with the
//! `use-auth-secret` credentials the node mints: what `deploy/README.md` "TURN" tells operators to run.
//!
//! Its certificate is a fresh one for its IP, signed by a fresh test CA (both made with `openssl`): a Rust
//! client trusts the CA ([`Coturn::ca_pem`](crate::coturn::Coturn::ca_pem)), a browser exactly the certificate's key
//! ([`Coturn::spki_sha256`](crate::coturn::Coturn::spki_sha256) for Chromium's `--ignore-certificate-errors-spki-list`).
//! Relay sockets are bound on 127.0.0.1 (`relay-ip`), where the test's node listens, with loopback peers
//! allowed (coturn refuses them by default). Killed on drop.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use showcall_node::config::{Secret, TurnConfig};
use tokio::process::{Child, Command};

use crate::TestNode;
use crate::netns::IsolatedHost;

const INSTALL_HINT: &str =
    "run ./scripts/test (it installs Debian's coturn), or `apt-get install coturn`";

pub struct Coturn {
    child: Child,
    dir: PathBuf,
    /// Where it listens for TURN over TLS.
    pub tls_addr: SocketAddr,
    spki_sha256: String,
    ca_pem: String,
}

impl Coturn {
    /// Starts coturn on `listen_ip:port`, TLS only (no plain UDP/TCP, no DTLS), sharing `secret`.
    pub async fn start_tls(listen_ip: Ipv4Addr, port: u16, secret: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "showcall-coturn-{}-{listen_ip}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("coturn temp dir");
        let (cert, key) = (dir.join("turn.crt"), dir.join("turn.key"));
        let ca_pem = issue_certificate(&dir, listen_ip);
        let spki_sha256 = spki_sha256(&cert);

        let log = dir.join("turnserver.log");
        let child = Command::new("turnserver")
            .args([
                "-n",
                &format!("--listening-ip={listen_ip}"),
                "--relay-ip=127.0.0.1",
                &format!("--tls-listening-port={port}"),
                "--no-udp",
                "--no-tcp",
                "--no-dtls",
                &format!("--cert={}", cert.display()),
                &format!("--pkey={}", key.display()),
                "--use-auth-secret",
                &format!("--static-auth-secret={secret}"),
                "--realm=showcall",
                "--allow-loopback-peers",
                "--no-cli",
                // Sessions and allocations are logged with their user at `--verbose`.
                "--verbose",
                "--log-file=stdout",
                &format!("--pidfile={}", dir.join("turnserver.pid").display()),
                &format!("--userdb={}", dir.join("turndb").display()),
            ])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).expect("coturn log file"))
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start turnserver ({e}): {INSTALL_HINT}"));
        let mut coturn = Coturn {
            child,
            dir,
            tls_addr: SocketAddr::from((listen_ip, port)),
            spki_sha256,
            ca_pem,
        };
        // Ready once its TLS port accepts connections.
        let start = Instant::now();
        while tokio::net::TcpStream::connect(coturn.tls_addr)
            .await
            .is_err()
        {
            if let Ok(Some(status)) = coturn.child.try_wait() {
                panic!(
                    "turnserver exited at start ({status}); see {}",
                    log.display()
                );
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "turnserver did not listen on {}; see {}",
                coturn.tls_addr,
                log.display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        coturn
    }

    /// base64 of the SHA-256 of its certificate's public key (SubjectPublicKeyInfo).
    pub fn spki_sha256(&self) -> &str {
        &self.spki_sha256
    }

    /// The test CA that signed its certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// What it logged so far (allocations, refusals), for a failure message.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("turnserver.log")).unwrap_or_default()
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("coturn's log (the test failed):\n{}", self.log());
        }
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A CA (`ca.crt`) and a certificate it signed for `ip` (`turn.crt`, `turn.key`) in `dir`; the CA's PEM.
fn issue_certificate(dir: &Path, ip: Ipv4Addr) -> String {
    let path = |name: &str| dir.join(name).to_str().expect("utf-8 path").to_owned();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    let (ca_key, ca_crt) = (path("ca.key"), path("ca.crt"));
    ca.extend([
        "-keyout",
        &ca_key,
        "-out",
        &ca_crt,
        "-days",
        "2",
        "-subj",
        "/CN=showcall test TURN CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign",
    ]);
    run_openssl(&ca);
    let (key, csr, crt) = (path("turn.key"), path("turn.csr"), path("turn.crt"));
    let mut request = vec!["req"];
    request.extend(ec);
    request.extend([
        "-keyout",
        &key,
        "-out",
        &csr,
        "-subj",
        "/CN=showcall test TURN",
    ]);
    run_openssl(&request);
    let ext = path("turn.ext");
    std::fs::write(
        &ext,
        format!("basicConstraints=CA:FALSE\nsubjectAltName=IP:{ip}\nextendedKeyUsage=serverAuth\n"),
    )
    .expect("write the extensions");
    run_openssl(&[
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        &ca_crt,
        "-CAkey",
        &ca_key,
        "-CAcreateserial",
        "-out",
        &crt,
        "-days",
        "2",
        "-extfile",
        &ext,
    ]);
    std::fs::read_to_string(&ca_crt).expect("read the CA")
}

fn run_openssl(args: &[&str]) -> Vec<u8> {
    let out = std::process::Command::new("openssl")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl: {e}"));
    assert!(
        out.status.success(),
        "openssl {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn spki_sha256(cert: &std::path::Path) -> String {
    let public_pem = run_openssl(&[
        "x509",
        "-in",
        cert.to_str().expect("utf-8 path"),
        "-pubkey",
        "-noout",
    ]);
    let dir = cert.parent().expect("cert in a dir");
    let public = dir.join("turn.pub.pem");
    std::fs::write(&public, public_pem).expect("write the public key");
    let der = run_openssl(&[
        "pkey",
        "-pubin",
        "-in",
        public.to_str().expect("utf-8 path"),
        "-outform",
        "der",
    ]);
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &der);
    base64_encode(digest.as_ref())
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The TURN tests' world: a client machine (a network namespace) that reaches only what listens on its
/// link's far end, coturn there for TURN over TLS on 443 only, and a node whose signaling listens there
/// too while its media (UDP and ICE-TCP) stays on 127.0.0.1, out of the client's reach. The node hands
/// logins coturn's URL with credentials minted from the secret they share, as an operator configures it.
pub struct TlsOnlyNetwork {
    pub network: IsolatedHost,
    pub coturn: Coturn,
    pub node: TestNode,
}

/// The secret the node and coturn share in [`TlsOnlyNetwork`].
const TURN_SECRET: &str = "the-turn-secret-shared-with-coturn-0123";
const TLS_PORT: u16 = 443;

impl TlsOnlyNetwork {
    /// Starts it all. `turn`: whether the node hands out coturn at all (without, it has no TURN).
    pub async fn start(turn: bool) -> Self {
        let network = IsolatedHost::create();
        let coturn = Coturn::start_tls(network.outside_ip, TLS_PORT, TURN_SECRET).await;
        let outside = network.outside_ip;
        let node = TestNode::start_with(|config| {
            config.signal_addr = SocketAddr::from((outside, 0));
            // One media worker: its port is `media_addr`'s, the one the relay must reach.
            config.media_workers = 1;
            config.turn = turn.then(|| TurnConfig {
                urls: vec![format!("turns:{outside}:{TLS_PORT}?transport=tcp")],
                secret: Secret(TURN_SECRET.into()),
                credential_ttl: Duration::from_secs(3600),
            });
        })
        .await;
        assert!(node.handle.media_addr.ip().is_loopback());
        Self {
            network,
            coturn,
            node,
        }
    }
}
