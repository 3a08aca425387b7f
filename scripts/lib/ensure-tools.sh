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

# etcd (Debian's etcd-server) for the cluster tests and deploy/local: the tests start their own etcd on
# ephemeral ports with a temporary data dir; a system etcd the package may enable is left alone.
ensure_etcd() {
  command -v etcd >/dev/null 2>&1 || apt_install etcd-server
}

# Chromium and chromedriver (Debian's, same version) for the browser end-to-end tests, which fail, saying
# so, when either is missing.
ensure_browser() {
  if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    apt_install chromium chromium-driver
  fi
}
