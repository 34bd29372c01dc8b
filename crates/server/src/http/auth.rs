//! Authentication at the edge (§1.2): application id, client keys, master key (from allowed
//! addresses only) and session token → [`Auth`].

use std::net::IpAddr;

use parlor_core::Error;
use serde_json::{Map, Value};

use super::envelope::Credentials;
use super::error::{ApiError, ApiResult};
use super::state::AppState;
use crate::operation::Auth;
use crate::operation::hooks::RequestMeta;

/// Whether `ip` may use the master key: listed, or inside a listed `addr/prefix` range.
pub fn ip_allowed(allowed: &[String], ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    };
    allowed.iter().any(|entry| {
        let (address, prefix) = match entry.split_once('/') {
            Some((address, prefix)) => (address, prefix.parse::<u32>().ok()),
            None => (entry.as_str(), None),
        };
        let Ok(address) = address.parse::<IpAddr>() else {
            return false;
        };
        match (address, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let bits = prefix.unwrap_or(32).min(32);
                let mask = if bits == 0 {
                    0
                } else {
                    u32::MAX << (32 - bits)
                };
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let bits = prefix.unwrap_or(128).min(128);
                let mask = if bits == 0 {
                    0
                } else {
                    u128::MAX << (128 - bits)
                };
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    })
}

/// Resolves the caller of a request.
pub async fn authenticate(
    state: &AppState,
    credentials: &Credentials,
    peer: IpAddr,
) -> ApiResult<Auth> {
    let config = &state.config;
    if credentials.app_id.as_deref() != Some(config.app_id.as_str()) {
        return Err(ApiError::Unauthorized);
    }
    let master = credentials.master_key.as_deref() == Some(config.master_key.as_str());
    if master {
        if !ip_allowed(&config.master_key_ips, peer) {
            return Err(ApiError::Unauthorized);
        }
    } else if !config.client_keys.is_empty()
        && !credentials
            .client_keys
            .iter()
            .any(|sent| config.client_keys.contains(sent))
    {
        return Err(ApiError::Unauthorized);
    }
    let mut auth = Auth {
        master,
        installation_id: credentials.installation_id.clone(),
        ..Auth::default()
    };
    if let Some(token) = &credentials.session_token {
        let user_id = state.operations.resolve_session(token).await?;
        // The ACL group holds `role:<name>` for each role the user holds (§6).
        auth.roles = state.operations.roles_of(&user_id).await?;
        auth.user_id = Some(user_id);
        auth.session_token = Some(token.clone());
    }
    Ok(auth)
}

/// What a request carries for the app's Cloud Code: its `context` — the
/// `X-Parse-Cloud-Context` header, else the body's `_context` — which must be a JSON object
/// (`107 Invalid object for context.` otherwise, checked with or without Cloud Code), and,
/// when `with_headers`, its headers (names lower-case) and the client's address.
pub fn request_meta(
    headers: &axum::http::HeaderMap,
    body_context: Option<Value>,
    ip: IpAddr,
    with_headers: bool,
) -> ApiResult<RequestMeta> {
    let malformed = || ApiError::Parse(Error::invalid_json("Invalid object for context."));
    let context = match headers.get("x-parse-cloud-context") {
        Some(raw) => raw
            .to_str()
            .ok()
            .and_then(|text| serde_json::from_str::<Value>(text).ok())
            .ok_or_else(malformed)?,
        None => match body_context {
            // The JS SDK sends an object; other clients may send it as JSON text.
            Some(Value::String(text)) => serde_json::from_str(&text).map_err(|_| malformed())?,
            Some(other) => other,
            None => Value::Object(Map::new()),
        },
    };
    let Value::Object(context) = context else {
        return Err(malformed());
    };
    if !with_headers {
        return Ok(RequestMeta {
            context,
            ..RequestMeta::default()
        });
    }
    let mut sent = Map::new();
    for (name, value) in headers {
        let Ok(value) = value.to_str() else { continue };
        match sent.get_mut(name.as_str()) {
            // Repeated headers read as one, comma-separated, as Node gives them.
            Some(Value::String(known)) => {
                known.push_str(", ");
                known.push_str(value);
            }
            _ => {
                sent.insert(name.as_str().to_owned(), value.into());
            }
        }
    }
    Ok(RequestMeta {
        headers: sent,
        ip: Some(ip.to_string()),
        context,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_ranges() {
        let allowed = vec![
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
            "10.1.0.0/16".to_owned(),
        ];
        assert!(ip_allowed(
            &allowed,
            "127.0.0.1".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
        ));
        assert!(ip_allowed(
            &allowed,
            "::ffff:127.0.0.1"
                .parse()
                .unwrap_or(IpAddr::from([0, 0, 0, 0]))
        ));
        assert!(ip_allowed(
            &allowed,
            "10.1.200.3".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
        ));
        assert!(!ip_allowed(
            &allowed,
            "10.2.0.1".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
        ));
        assert!(!ip_allowed(
            &allowed,
            "192.168.1.1".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
        ));
    }
}
