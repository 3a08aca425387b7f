//! A real coturn (`turnserver`, Debian's `coturn`) listening for TURN over TLS only, with the
//! `use-auth-secret` credentials the node mints: what `deploy/README.md` "TURN" tells operators to run.
//!
//! Its certificate is a fresh self-signed one for its IP (made with `openssl`); a browser is told to trust
//! exactly that key ([`Coturn::spki_sha256`] for Chromium's `--ignore-certificate-errors-spki-list`).
//! Relay sockets are bound on 127.0.0.1 (`relay-ip`), where the test's node listens, with loopback peers
//! allowed (coturn refuses them by default). Killed on drop.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

const INSTALL_HINT: &str =
    "run ./scripts/test (it installs Debian's coturn), or `apt-get install coturn`";

pub struct Coturn {
    child: Child,
    dir: PathBuf,
    /// Where it listens for TURN over TLS.
    pub tls_addr: SocketAddr,
    spki_sha256: String,
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
        run_openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            key.to_str().expect("utf-8 path"),
            "-out",
            cert.to_str().expect("utf-8 path"),
            "-days",
            "2",
            "-subj",
            "/CN=showcall test TURN",
            "-addext",
            &format!("subjectAltName=IP:{listen_ip}"),
        ]);
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

    /// What it logged so far (allocations, refusals), for a failure message.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("turnserver.log")).unwrap_or_default()
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
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
