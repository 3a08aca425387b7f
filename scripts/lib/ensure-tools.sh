# Helpers that install what the build and the tests need, only when missing. Sourced by scripts/*.

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then
    as_root apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

# protoc: the .proto contracts are compiled at build time.
ensure_build_tools() {
  command -v protoc >/dev/null 2>&1 || apt_install protobuf-compiler
}

ensure_nextest() {
  command -v cargo-nextest >/dev/null 2>&1 || cargo install --locked cargo-nextest
}

# cargo-fuzz for the fuzz targets in fuzz/ (scripts/fuzz). They build on stable with `-s none`: no
# sanitizer, so no nightly-only `-Z` flag (FUZZING.md says why that is enough for safe Rust).
ensure_cargo_fuzz() {
  command -v cargo-fuzz >/dev/null 2>&1 || cargo install --locked cargo-fuzz --version 0.13.2
}

# etcd (Debian's etcd-server) for the cluster tests and deploy/local: the tests start their own etcd on
# ephemeral ports with a temporary data dir; a system etcd the package may enable is left alone.
ensure_etcd() {
  command -v etcd >/dev/null 2>&1 || apt_install etcd-server
}

# coturn (Debian's `turnserver`) for the TURN-over-TLS tests: they start their own on an ephemeral port with
# a temporary configuration; a system coturn the package may enable is left alone.
ensure_coturn() {
  command -v turnserver >/dev/null 2>&1 || apt_install coturn
}

# Chromium and chromedriver (Debian's, same version) for the browser end-to-end tests, which fail, saying
# so, when either is missing.
ensure_browser() {
  if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    apt_install chromium chromium-driver
  fi
}

# A Python virtual environment with examples/python/requirements.txt installed, for the Python
# business-server example and the test that runs it. It lives in target/ (ignored, like every build
# output) and is rebuilt only when requirements.txt changes (a stamp holds the file's hash). A lock makes
# concurrent callers (tests run in parallel) wait for one installer. Prints nothing on stdout.
python_venv_dir() {
  echo "$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/target/python-venv"
}

ensure_python_grpc() {
  local root venv requirements stamp want
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
  venv="$(python_venv_dir)"
  requirements="$root/examples/python/requirements.txt"
  stamp="$venv/.requirements.sha256"
  want="$(sha256sum "$requirements" | cut -d' ' -f1)"
  mkdir -p "$(dirname "$venv")"
  (
    flock 9
    if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
      exit 0
    fi
    # Debian's python3 has no venv (ensurepip) without python3-venv.
    python3 -c 'import ensurepip, venv' 2>/dev/null || apt_install python3-venv
    rm -rf "$venv"
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements" >&2
    echo "$want" >"$stamp"
  ) 9>"$(dirname "$venv")/python-venv.lock"
}
