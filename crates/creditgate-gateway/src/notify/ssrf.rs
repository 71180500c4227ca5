//! The SSRF guard of webhook URLs (`docs/alerts.md`): a URL is refused when any address its
//! host resolves to is loopback, private, link-local, unspecified, shared (CGNAT), multicast or
//! reserved, unless the operator allows private URLs (`[webhooks] allow_private_urls`), and
//! always when it is the gateway itself. Checked when an endpoint is registered and again
//! before every delivery (DNS can change); the delivery then connects to the address checked.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use std::time::Duration;

use reqwest::Url;

use crate::App;

/// Longest a webhook host may take to resolve.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest webhook URL accepted.
pub const MAX_URL_LEN: usize = 2048;

/// A URL that passed the guard, with the address to connect to.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: Url,
    /// The host name to pin to `addr` (`None` when the URL names an address).
    pub host: Option<String>,
    pub addr: SocketAddr,
}

/// Checks `raw` against the guard; the error says why in words an operator can act on.
pub async fn check(app: &App, raw: &str) -> Result<Target, String> {
    if raw.len() > MAX_URL_LEN {
        return Err(format!("url is longer than {MAX_URL_LEN} characters"));
    }
    let url = Url::parse(raw).map_err(|e| format!("url is not a valid URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("url must start with http:// or https://".to_owned());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("url must not carry a user name or password".to_owned());
    }
    let port = url
        .port_or_known_default()
        .ok_or_else(|| "url has no port".to_owned())?;
    let name = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| "url has no host".to_owned())?;
    // An IPv6 host is written in brackets.
    let literal = name.trim_start_matches('[').trim_end_matches(']');
    let (host, addrs) = match literal.parse::<IpAddr>() {
        Ok(ip) => (None, vec![SocketAddr::new(ip, port)]),
        Err(_) => (Some(name.to_owned()), resolve(name, port).await?),
    };
    let allow_private = app.cfg.webhooks.allow_private_urls;
    for addr in &addrs {
        if is_gateway(app, &url, *addr) {
            return Err("url points at this gateway itself".to_owned());
        }
        if !allow_private && !is_public(addr.ip()) {
            return Err(format!(
                "url resolves to {}, a loopback, private or otherwise internal address; \
                 webhooks go to public addresses only (the operator may allow private ones \
                 with [webhooks] allow_private_urls)",
                addr.ip()
            ));
        }
    }
    let addr = addrs[0];
    Ok(Target { url, host, addr })
}

async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    let found = tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, port)))
        .await
        .map_err(|_| format!("url host {host} did not resolve within 5 s"))?
        .map_err(|e| format!("url host {host} does not resolve: {e}"))?
        .collect::<Vec<_>>();
    if found.is_empty() {
        return Err(format!("url host {host} does not resolve"));
    }
    Ok(found)
}

/// The gateway's own listener (any loopback or unspecified address on its port counts), or
/// its public URL's host and port.
fn is_gateway(app: &App, url: &Url, addr: SocketAddr) -> bool {
    let own = [app.notify.listening(), Some(app.cfg.listen)];
    let local = |ip: IpAddr| ip.is_loopback() || ip.is_unspecified();
    let same_listener = own.iter().flatten().any(|o| {
        o.port() != 0 && o.port() == addr.port() && (o.ip() == addr.ip() || local(addr.ip()))
    });
    let public = Url::parse(&app.cfg.accounts.public_url).ok();
    let same_public = public.is_some_and(|p| {
        p.host_str() == url.host_str() && p.port_or_known_default() == url.port_or_known_default()
    });
    same_listener || same_public
}

/// Whether `ip` is an ordinary public address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        // Shared address space (carrier-grade NAT), 100.64.0.0/10.
        || (a == 100 && (b & 0xc0) == 64)
        // Reserved, 240.0.0.0/4.
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        // Unique local, fc00::/7.
        || (first & 0xfe00) == 0xfc00
        // Link-local, fe80::/10.
        || (first & 0xffc0) == 0xfe80)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }
}
