//! Scraping a node's `/metrics` the way Prometheus does (plain HTTP GET on its `http_addr`) and reading
//! the text exposition format: just the sample lines, enough for tests to assert on values.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::DEADLINE;

/// One scrape: every series by `name{label="value",…}` (labels sorted), with its value.
#[derive(Debug)]
pub struct Scrape(pub BTreeMap<String, f64>);

/// `GET /metrics` at `addr`; checks the status and content type, and parses the page.
pub async fn scrape(addr: SocketAddr) -> Scrape {
    let mut tcp = tokio::net::TcpStream::connect(addr)
        .await
        .expect("metrics port reachable");
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes())
        .await
        .expect("request sent");
    let mut response = String::new();
    tokio::time::timeout(DEADLINE, tcp.read_to_string(&mut response))
        .await
        .expect("the page comes within the deadline")
        .expect("a UTF-8 response");
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "the text exposition format: {head}"
    );
    Scrape::parse(body)
}

impl Scrape {
    /// The text format's sample lines (`name{labels} value`); comments and blank lines skipped. A series
    /// that appears twice is a malformed page.
    pub fn parse(body: &str) -> Scrape {
        let mut series = BTreeMap::new();
        for line in body
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            let (key, value) = line
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("a sample line: {line:?}"));
            let value: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("a number in {line:?}"));
            let key = match key.split_once('{') {
                Some((name, labels)) => {
                    let mut labels: Vec<&str> = labels
                        .trim_end_matches('}')
                        .split(',')
                        .filter(|l| !l.is_empty())
                        .collect();
                    labels.sort_unstable();
                    format!("{name}{{{}}}", labels.join(","))
                }
                None => key.to_owned(),
            };
            assert!(
                series.insert(key.clone(), value).is_none(),
                "{key} appears twice"
            );
        }
        Scrape(series)
    }

    /// A series' value; panics (with the page) when the node does not show it.
    pub fn get(&self, key: &str) -> f64 {
        *self
            .0
            .get(key)
            .unwrap_or_else(|| panic!("{key} missing from /metrics: {:#?}", self.0))
    }

    /// A series' value, if the node shows it.
    pub fn find(&self, key: &str) -> Option<f64> {
        self.0.get(key).copied()
    }

    /// `showcall_calls{state="<state>"}`.
    pub fn calls(&self, state: &str) -> f64 {
        self.get(&format!("showcall_calls{{state=\"{state}\"}}"))
    }
}

/// How much a series grew from `before` to `after`.
pub fn delta(before: &Scrape, after: &Scrape, key: &str) -> f64 {
    after.get(key) - before.get(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_sorted_and_comments_skipped() {
        let page = "# HELP a x\n# TYPE a counter\na{z=\"1\",b=\"2\"} 3\nb 0.5\n\nc_bucket{le=\"+Inf\"} 1\n";
        let s = Scrape::parse(page);
        assert_eq!(s.get("a{b=\"2\",z=\"1\"}"), 3.0);
        assert_eq!(s.get("b"), 0.5);
        assert_eq!(s.get("c_bucket{le=\"+Inf\"}"), 1.0);
        assert_eq!(s.0.len(), 3);
    }
}
