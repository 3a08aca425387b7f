//! Datagrams the kernel dropped because a UDP socket's receive buffer was full, per local port, from
//! `/proc/net/udp` (Linux; its last column, `drops`). The fan-out bench reads them for the router's
//! socket and its clients' to tell where loss happens: a frame lost by every member alike was lost on
//! the way into the router.

use std::collections::HashMap;

/// Drops so far, by local port, for every IPv4 UDP socket of the machine (this network namespace).
pub(super) fn by_port() -> anyhow::Result<HashMap<u16, u64>> {
    let table = std::fs::read_to_string("/proc/net/udp")?;
    let mut drops = HashMap::new();
    for line in table.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // `local_address` is `HEXIP:HEXPORT`; `drops` is the last field.
        let port = fields
            .get(1)
            .and_then(|a| a.rsplit_once(':'))
            .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
        let count = fields.last().and_then(|d| d.parse::<u64>().ok());
        if let (Some(port), Some(count)) = (port, count) {
            *drops.entry(port).or_insert(0) += count;
        }
    }
    Ok(drops)
}

/// The sum over `ports` of `after − before`.
pub(super) fn delta(
    before: &HashMap<u16, u64>,
    after: &HashMap<u16, u64>,
    ports: impl IntoIterator<Item = u16>,
) -> u64 {
    ports
        .into_iter()
        .map(|p| {
            let b = before.get(&p).copied().unwrap_or(0);
            after.get(&p).copied().unwrap_or(0).saturating_sub(b)
        })
        .sum()
}
