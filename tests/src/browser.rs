//! Real Chromium for the browser tests, driven over WebDriver: one `chromedriver` per test on a free
//! port, one Chromium session (its own fresh profile) per page, with the flags of DESIGN.md's recipe.
//!
//! - [`Browsers::start`] fails the test with a clear message when Chromium or chromedriver is missing
//!   (`./scripts/test` installs both); it never skips.
//! - Dropping [`Browsers`] kills chromedriver and every Chromium it started (by the pid each profile's
//!   `SingletonLock` names, and chromedriver's process group) and removes the profiles, so a failing test
//!   leaves nothing running.
//! - [`Page`] reads what a person sees (element text, `data-state`) and, through the demo pages'
//!   `window.demo`, WebRTC statistics (`getStats()` inbound-rtp `framesDecoded`). A page we do not control
//!   cannot push to the test, so waits poll the page with a short pause; every wait is bounded by
//!   [`BROWSER_DEADLINE`], which turns a hang into a failure that shows the page's log and saves a
//!   screenshot. Nothing asserts on elapsed time.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

/// How long any single wait on a browser may take before the test fails: generous, because two cores
/// may be running three Chromiums and a build at once. A hang guard, not a timing assertion.
pub const BROWSER_DEADLINE: Duration = Duration::from_secs(60);

/// Pause between two looks at a page while waiting.
const POLL: Duration = Duration::from_millis(100);

/// The Chromium flags that are known to work here (DESIGN.md, "Browser tests: a recipe known to work");
/// `--user-data-dir` (a fresh directory per session) is added to them.
pub const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
];

const CHROMIUM_NAMES: &[&str] = &["chromium", "chromium-browser", "google-chrome", "chrome"];
const INSTALL_HINT: &str = "run ./scripts/test (it installs Debian's chromium and chromium-driver), or \
     `apt-get install chromium chromium-driver`; SHOWCALL_CHROMIUM / SHOWCALL_CHROMEDRIVER name other binaries";

static PROFILES_MADE: AtomicUsize = AtomicUsize::new(0);

/// The workspace's `artifacts/` directory (gitignored).
pub fn artifacts_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits in the workspace")
        .join("artifacts")
}

/// The binary named by `env_var`, or the first of `names` on the PATH; otherwise where it was looked for.
fn find_binary(env_var: &str, names: &[&str]) -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os(env_var) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!("{env_var}={} is not a file", path.display()))
        };
    }
    let dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    names
        .iter()
        .flat_map(|n| dirs.iter().map(move |d| d.join(n)))
        .find(|p| p.is_file())
        .ok_or_else(|| format!("none of {names:?} is on PATH"))
}

/// A chromedriver and the Chromium sessions it runs for one test.
pub struct Browsers {
    driver: Child,
    /// chromedriver's process group (it leads its own), so Drop can end it with all its children.
    driver_group: Option<u32>,
    webdriver_url: String,
    chromium: PathBuf,
    /// Every profile directory handed to a Chromium; each one's `SingletonLock` names its browser's pid.
    profiles: Mutex<Vec<PathBuf>>,
    artifacts: PathBuf,
    /// Flags every Chromium of this harness gets beside [`CHROMIUM_FLAGS`].
    extra_flags: Vec<String>,
}

impl Browsers {
    /// Starts chromedriver on a free port. Screenshots and logs go to `artifacts/<artifacts_dir>/`.
    /// Panics (fails the test) when Chromium or chromedriver is missing.
    pub async fn start(artifacts_dir: &str) -> Self {
        Self::start_in(artifacts_dir, None, Vec::new()).await
    }

    /// Like [`Browsers::start`], but chromedriver and its Chromiums run inside `host`'s network namespace
    /// (they reach only what listens on `host.outside_ip`), each Chromium with `extra_flags` too.
    pub async fn start_isolated(
        artifacts_dir: &str,
        host: &crate::netns::IsolatedHost,
        extra_flags: Vec<String>,
    ) -> Self {
        Self::start_in(artifacts_dir, Some(host), extra_flags).await
    }

    async fn start_in(
        artifacts_dir: &str,
        isolated: Option<&crate::netns::IsolatedHost>,
        extra_flags: Vec<String>,
    ) -> Self {
        let chromium = find_binary("SHOWCALL_CHROMIUM", CHROMIUM_NAMES)
            .unwrap_or_else(|why| panic!("Chromium is not installed ({why}): {INSTALL_HINT}"));
        let chromedriver = find_binary("SHOWCALL_CHROMEDRIVER", &["chromedriver"])
            .unwrap_or_else(|why| panic!("chromedriver is not installed ({why}): {INSTALL_HINT}"));
        let artifacts = artifacts_root().join(artifacts_dir);
        std::fs::create_dir_all(&artifacts)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", artifacts.display()));

        let port = free_port();
        // In a namespace chromedriver is reached over the link, from this side's address only.
        let (mut command, driver_ip) = match isolated {
            None => (Command::new(&chromedriver), "127.0.0.1".to_owned()),
            Some(host) => {
                let mut command = host.command(chromedriver.to_str().expect("utf-8 path"));
                command.arg(format!("--allowed-ips={}", host.outside_ip));
                (command, host.inside_ip.to_string())
            }
        };
        let mut driver = command
            .arg(format!("--port={port}"))
            .arg(format!(
                "--log-path={}",
                artifacts.join("chromedriver.log").display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromedriver.display()));
        let driver_group = driver.id();

        // chromedriver is ready once its port accepts connections.
        let start = Instant::now();
        loop {
            if tokio::net::TcpStream::connect((driver_ip.as_str(), port))
                .await
                .is_ok()
            {
                break;
            }
            if let Ok(Some(status)) = driver.try_wait() {
                panic!(
                    "chromedriver exited at start ({status}); see {}",
                    artifacts.join("chromedriver.log").display()
                );
            }
            assert!(
                start.elapsed() < BROWSER_DEADLINE,
                "chromedriver did not listen on port {port}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        Browsers {
            driver,
            driver_group,
            webdriver_url: format!("http://{driver_ip}:{port}"),
            chromium,
            profiles: Mutex::new(Vec::new()),
            artifacts,
            extra_flags,
        }
    }

    /// Where this test's screenshots go.
    pub fn artifacts(&self) -> &Path {
        &self.artifacts
    }

    /// A new Chromium session (fresh profile) showing `url`; `name` labels its screenshots and failures.
    pub async fn open(&self, name: &str, url: &str) -> Page {
        let profile = std::env::temp_dir().join(format!(
            "showcall-chromium-{}-{}",
            std::process::id(),
            PROFILES_MADE.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&profile);
        std::fs::create_dir_all(&profile)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", profile.display()));
        self.profiles
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(profile.clone());

        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|f| (*f).to_owned()).collect();
        args.extend(self.extra_flags.iter().cloned());
        args.push(format!("--user-data-dir={}", profile.display()));
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": self.chromium,
                "args": args,
            },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!("a JSON object literal");
        };
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.webdriver_url)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "chromedriver could not start Chromium for {name}: {e}; see {}",
                    self.artifacts.join("chromedriver.log").display()
                )
            });
        client
            .set_window_size(1100, 900)
            .await
            .expect("window resizes");
        client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("{name} cannot load {url}: {e}"));
        Page {
            name: name.to_owned(),
            client,
            artifacts: self.artifacts.clone(),
        }
    }
}

impl Drop for Browsers {
    fn drop(&mut self) {
        let profiles =
            std::mem::take(&mut *self.profiles.lock().unwrap_or_else(|p| p.into_inner()));
        // Chromium's browser process: its profile's SingletonLock is a symlink to "<host>-<pid>". Its
        // renderers and helpers exit with it.
        for profile in &profiles {
            let pid = std::fs::read_link(profile.join("SingletonLock"))
                .ok()
                .and_then(|target| {
                    let target = target.to_string_lossy().into_owned();
                    target.rsplit_once('-').map(|(_, pid)| pid.to_owned())
                })
                .filter(|pid| pid.parse::<u32>().is_ok());
            if let Some(pid) = pid {
                kill(&pid);
            }
        }
        // chromedriver and anything left in its process group.
        if let Some(group) = self.driver_group {
            kill(&format!("-{group}"));
        }
        let _ = self.driver.start_kill();
        for profile in &profiles {
            let _ = std::fs::remove_dir_all(profile);
        }
    }
}

/// Sends SIGKILL to a pid (or, negative, a process group) this harness started.
fn kill(target: &str) {
    let _ = std::process::Command::new("kill")
        .args(["-KILL", "--", target])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("bound address").port()
}

/// One page in its own Chromium session.
pub struct Page {
    pub name: String,
    pub client: Client,
    artifacts: PathBuf,
}

impl Page {
    /// Clicks the element with this id (as a person would: a trusted click, so media may autoplay).
    pub async fn click(&self, id: &str) {
        self.wait_enabled(id).await;
        let el = self.client.find(Locator::Id(id)).await;
        let el = el.unwrap_or_else(|e| panic!("{}: no #{id}: {e}", self.name));
        el.click()
            .await
            .unwrap_or_else(|e| panic!("{}: cannot click #{id}: {e}", self.name));
    }

    /// Ticks (or unticks) a checkbox.
    pub async fn set_checked(&self, id: &str, checked: bool) {
        let el = self.client.find(Locator::Id(id)).await;
        let el = el.unwrap_or_else(|e| panic!("{}: no #{id}: {e}", self.name));
        if el.is_selected().await.unwrap_or(false) != checked {
            el.click()
                .await
                .unwrap_or_else(|e| panic!("{}: cannot click #{id}: {e}", self.name));
        }
    }

    /// Runs a script in the page (the last statement must `return` what is wanted).
    pub async fn eval(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("{}: script failed: {e}\n{script}", self.name))
    }

    /// The `data-state` of an element (the demo pages' machine-readable states).
    pub async fn data_state(&self, id: &str) -> String {
        let v = self
            .eval(
                "const el = document.getElementById(arguments[0]); return el ? (el.dataset.state || '') : null;",
                vec![json!(id)],
            )
            .await;
        v.as_str()
            .unwrap_or_else(|| panic!("{}: no #{id}", self.name))
            .to_owned()
    }

    /// An element's text as shown.
    pub async fn text(&self, id: &str) -> String {
        let v = self
            .eval(
                "const el = document.getElementById(arguments[0]); return el ? el.textContent : null;",
                vec![json!(id)],
            )
            .await;
        v.as_str()
            .unwrap_or_else(|| panic!("{}: no #{id}", self.name))
            .trim()
            .to_owned()
    }

    /// Whether an element is visible (not `hidden`, not inside a hidden section).
    pub async fn is_visible(&self, id: &str) -> bool {
        let v = self
            .eval(
                "const el = document.getElementById(arguments[0]); return !!el && el.getClientRects().length > 0;",
                vec![json!(id)],
            )
            .await;
        v.as_bool().unwrap_or(false)
    }

    /// Waits until the element with this id exists and is enabled.
    pub async fn wait_enabled(&self, id: &str) {
        let script =
            "const el = document.getElementById(arguments[0]); return !!el && !el.disabled;";
        self.wait_until(&format!("#{id} to be enabled"), || async {
            self.eval(script, vec![json!(id)]).await.as_bool() == Some(true)
        })
        .await;
    }

    /// Waits until `#id`'s `data-state` is `want`.
    pub async fn wait_state(&self, id: &str, want: &str) {
        self.wait_until(&format!("#{id} data-state={want}"), || async {
            self.data_state(id).await == want
        })
        .await;
    }

    /// The inbound video frames the page's `which` view ("live" or "call") has decoded so far
    /// (`getStats()` inbound-rtp `framesDecoded`).
    pub async fn frames_decoded(&self, which: &str) -> u64 {
        let script = "const [which, done] = arguments; \
                      window.demo.framesDecoded(which).then(done, (e) => done(-1));";
        let v = self
            .client
            .execute_async(script, vec![json!(which)])
            .await
            .unwrap_or_else(|e| panic!("{}: getStats failed: {e}", self.name));
        let frames = v.as_i64().unwrap_or(-1);
        assert!(
            frames >= 0,
            "{}: getStats failed for {which}: {v}",
            self.name
        );
        frames as u64
    }

    /// How the page's `which` media session stands: `none`, `joining`, `no-answer` (the node answered
    /// the join without SDP: it moves no media), `media:<RTCPeerConnection.connectionState>`, `left`.
    pub async fn media_status(&self, which: &str) -> String {
        self.eval(
            "return window.demo.mediaStatus(arguments[0]);",
            vec![json!(which)],
        )
        .await
        .as_str()
        .unwrap_or("none")
        .to_owned()
    }

    /// Waits until the `which` view has decoded more than `floor` video frames; returns the count. Fails
    /// at once, saying why, when the node answered without media or the connection failed.
    pub async fn wait_frames_above(&self, which: &str, floor: u64) -> u64 {
        let start = Instant::now();
        loop {
            let status = self.media_status(which).await;
            if status == "no-answer" {
                self.fail(&format!(
                    "the node answered {}'s {which} join without an SDP answer: it has no media router",
                    self.name
                ))
                .await;
            }
            if status == "media:failed" {
                self.fail(&format!(
                    "{}'s {which} WebRTC connection failed (ICE or DTLS)",
                    self.name
                ))
                .await;
            }
            let frames = self.frames_decoded(which).await;
            if frames > floor {
                return frames;
            }
            if start.elapsed() > BROWSER_DEADLINE {
                self.fail(&format!(
                    "{which} view decoded no more than {floor} video frames (now {frames}, media {status})"
                ))
                .await;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The candidate pair the `which` view's transport selected (`window.demo[which].pc`), once it has
    /// one: `{state, nominated, bytesReceived, local, remote}`, each candidate as `{protocol,
    /// candidateType, tcpType, relayProtocol, address, port}` from `getStats()`.
    pub async fn selected_pair(&self, which: &str) -> Value {
        let start = Instant::now();
        loop {
            let pair = self
                .client
                .execute_async(SELECTED_PAIR, vec![json!(which)])
                .await
                .unwrap_or_else(|e| panic!("{}: getStats failed: {e}", self.name));
            if pair.get("error").is_some() {
                self.fail(&format!("getStats failed: {pair}")).await;
            }
            if pair.get("local").is_some() {
                return pair;
            }
            if start.elapsed() > BROWSER_DEADLINE {
                self.fail(&format!("{which} view: no candidate pair selected"))
                    .await;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Polls `ready` until it holds; past the deadline fails with the page's status and log.
    pub async fn wait_until<F, Fut>(&self, what: &str, mut ready: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let start = Instant::now();
        while !ready().await {
            if start.elapsed() > BROWSER_DEADLINE {
                self.fail(&format!("waited in vain for {what}")).await;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Makes the page take `relay` for the node's media address `node` in every SDP it is given (the
    /// host candidate of the node's answers and offers), so its media goes through a test's relay.
    /// Call before the page joins.
    pub async fn point_media_at(&self, node: SocketAddr, relay: SocketAddr) {
        let script = "const [from, to] = arguments; \
                      const original = RTCPeerConnection.prototype.setRemoteDescription; \
                      RTCPeerConnection.prototype.setRemoteDescription = function (d) { \
                        const sdp = d && d.sdp ? d.sdp.split(from).join(to) : undefined; \
                        return original.call(this, sdp ? { type: d.type, sdp } : d); \
                      }; \
                      return 'ok';";
        let from = format!("{} {} typ host", node.ip(), node.port());
        let to = format!("{} {} typ host", relay.ip(), relay.port());
        assert_eq!(
            self.eval(script, vec![json!(from), json!(to)]).await,
            json!("ok"),
            "{}: media pointed at the relay",
            self.name
        );
    }

    /// Caps the live view's simulcast layer (`VIDEO_LAYER_LOW`, `VIDEO_LAYER_HIGH`, ...), as the page's
    /// small-window control does (`window.demo.setVideoLayer`).
    pub async fn set_video_layer(&self, layer: &str) {
        let script = "const [layer, done] = arguments; \
                      window.demo.setVideoLayer('live', layer).then(() => done('ok'), (e) => done(String(e)));";
        let answer = self
            .client
            .execute_async(script, vec![json!(layer)])
            .await
            .unwrap_or_else(|e| panic!("{}: setVideoLayer failed: {e}", self.name));
        assert_eq!(answer, json!("ok"), "{}: setVideoLayer({layer})", self.name);
    }

    /// The live view's last decoded frame's (width, height) and the frames it decoded so far
    /// (getStats, `window.demo.videoSize`).
    pub async fn live_video_size(&self) -> (u64, u64, u64) {
        let script = "const done = arguments[arguments.length - 1]; \
                      window.demo.videoSize('live').then(done, (e) => done({ error: String(e) }));";
        let v = self
            .client
            .execute_async(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("{}: getStats failed: {e}", self.name));
        let n = |k: &str| v[k].as_u64().unwrap_or(0);
        (n("width"), n("height"), n("framesDecoded"))
    }

    /// Waits until the live view decodes frames of a width `accept` takes (`what`), and then `frames`
    /// more (the decoder goes on at that size); returns the width.
    pub async fn decodes_width(
        &self,
        frames: u64,
        what: &str,
        accept: impl Fn(u64) -> bool,
    ) -> u64 {
        let reached: std::cell::Cell<Option<(u64, u64)>> = std::cell::Cell::new(None);
        self.wait_until(what, || {
            let (reached, accept) = (&reached, &accept);
            async move {
                let (width, _, decoded) = self.live_video_size().await;
                if reached.get().is_none() && accept(width) {
                    reached.set(Some((width, decoded)));
                }
                reached.get().is_some_and(|(_, at)| decoded >= at + frames)
            }
        })
        .await;
        reached.get().map_or(0, |(width, _)| width)
    }

    /// Saves a PNG of the page as `artifacts/.../<name>.png`.
    pub async fn screenshot(&self, name: &str) {
        let png = self
            .client
            .screenshot()
            .await
            .unwrap_or_else(|e| panic!("{}: screenshot failed: {e}", self.name));
        let path = self.artifacts.join(format!("{name}.png"));
        std::fs::write(&path, png)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }

    /// Fails the test with what the page shows (status line and log), after saving a screenshot.
    pub async fn fail(&self, why: &str) -> ! {
        let shot = format!("failure-{}", self.name);
        let _ = async {
            let png = self.client.screenshot().await.ok()?;
            std::fs::write(self.artifacts.join(format!("{shot}.png")), png).ok()
        }
        .await;
        let seen = self
            .client
            .execute(
                // What the page shows, and whether its scripts came at all (a page whose module
                // never ran shows its bare form: which resource was missing says why).
                "const t = (id) => (document.getElementById(id) || {}).textContent || ''; \
                 const loaded = performance.getEntriesByType('resource') \
                   .map((e) => `${e.name} ${e.responseStatus || '?'} ${Math.round(e.duration)} ms`) \
                   .join('\\n  '); \
                 return `status: ${t('status')}\\nlive-state: ${t('live-state')}\\n\
                 call-state: ${t('call-state')}\\ndocument: ${document.readyState}, \
                 window.demo: ${typeof window.demo}\\nresources:\\n  ${loaded}\\nlog:\\n${t('log')}`;",
                vec![],
            )
            .await
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_else(|| "(page unreadable)".to_owned());
        panic!(
            "{}: {why}\n(screenshot: {})\n{seen}",
            self.name,
            self.artifacts.join(format!("{shot}.png")).display()
        );
    }

    /// Ends the session (Chromium quits).
    pub async fn close(self) {
        let _ = self.client.close().await;
    }
}

/// `Page::selected_pair`'s script: `arguments[0]` names the view.
const SELECTED_PAIR: &str = r#"
const [which, done] = arguments;
(async () => {
  const pc = window.demo[which] && window.demo[which].pc;
  if (!pc) return null;
  const stats = await pc.getStats();
  let pair = null;
  stats.forEach((s) => {
    if (s.type === 'transport' && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId);
  });
  if (!pair) return null;
  const candidate = (id) => {
    const c = stats.get(id) || {};
    return { protocol: c.protocol, candidateType: c.candidateType, tcpType: c.tcpType || null,
             relayProtocol: c.relayProtocol || null, address: c.address || c.ip || null, port: c.port };
  };
  return { state: pair.state, nominated: !!pair.nominated, bytesReceived: pair.bytesReceived || 0,
           local: candidate(pair.localCandidateId), remote: candidate(pair.remoteCandidateId) };
})().then(done, (e) => done({ error: String(e) }));
"#;
