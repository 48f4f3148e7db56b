//! sregistry's `SREGISTRY-HMAC-SHA256` request signatures (client-protocols.md §1.4), and the
//! signed download secrets in the `image` URLs of private images.
//!
//! A client signs `kind|collection|timestamp|name|tag|` with its token, where the timestamp is
//! the UTC hour (`%Y%m%dT%HZ`). sregistry accepts only the current hour, so a request signed at
//! 10:59:59 fails at 11:00:00; shubnet accepts the current and the previous hour. The node's
//! token store checks the signature ([`TokenBackend::authorize_hmac`]); this module parses the
//! header, checks the kind and the hour, builds the message, and, for requests that change
//! state (push, upload, delete), spends the signature ([`replay`](super::replay)) so it
//! authorizes one request.
//!
//! It must not look tokens up: the token store checks the signature.

use super::replay::{Refusal, Seen, Spent};
use crate::BackendError;
use crate::tokens::{AuthError, Right, TokenBackend, TokenInfo};
use axum::http::{HeaderMap, header};
use base64::Engine;
use sha2::{Digest, Sha256};

/// The scheme word that starts an sregistry `Authorization` header.
pub const HMAC_SCHEME: &str = "SREGISTRY-HMAC-SHA256";
/// How long a signed download URL of a private image stays valid, in seconds.
pub const URL_LIFETIME_SECS: u64 = 6 * 3600;

/// The parts of an `SREGISTRY-HMAC-SHA256` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HmacHeader {
    /// `push`, `upload`, `pull` or `delete`.
    pub kind: String,
    /// The user, base64-decoded.
    pub user: String,
    /// The signed hour, `%Y%m%dT%HZ`.
    pub timestamp: String,
    /// Lowercase hex HMAC-SHA256.
    pub signature: String,
}

/// Why a request's HMAC credentials do not authorize it.
#[derive(Debug, thiserror::Error)]
pub enum HmacError {
    /// No `Authorization` header, or another scheme.
    #[error("Authentication Required")]
    Missing,
    /// The header does not parse.
    #[error("malformed SREGISTRY-HMAC-SHA256 header: {0}")]
    Malformed(&'static str),
    /// Signed for another kind of request.
    #[error("the credential is for a {found} request, not {expected}")]
    WrongKind {
        /// What the route needs.
        expected: &'static str,
        /// What was signed.
        found: String,
    },
    /// Signed outside the accepted hours.
    #[error(
        "the signature's timestamp {0} is not the current or the previous hour (UTC); check the client's clock"
    )]
    Expired(String),
    /// This exact signature already authorized a request; the client must sign again.
    #[error(
        "this signature was already used; sregistry signatures are single-use, sign a new request"
    )]
    Replayed,
    /// Too many signatures are live to remember one more (503).
    #[error("too many signed requests in the last two hours; try again later")]
    Busy,
    /// The token store said no.
    #[error("{0}")]
    Denied(#[from] AuthError),
    /// The token store failed.
    #[error("{0}")]
    Backend(#[from] BackendError),
}

/// Parses `SREGISTRY-HMAC-SHA256 Credential=<kind>/<b64 user>/<ts>,Signature=<hex>`.
pub fn parse_header(value: &str) -> Result<HmacHeader, HmacError> {
    let (scheme, rest) = value.trim().split_once(' ').ok_or(HmacError::Missing)?;
    if scheme != HMAC_SCHEME {
        return Err(HmacError::Missing);
    }
    let (mut credential, mut signature) = (None, None);
    for part in rest.split(',') {
        let (k, v) = part
            .trim()
            .split_once('=')
            .ok_or(HmacError::Malformed("expected key=value pairs"))?;
        match k {
            "Credential" => credential = Some(v),
            "Signature" => signature = Some(v),
            _ => {}
        }
    }
    let credential = credential.ok_or(HmacError::Malformed("no Credential"))?;
    let signature = signature.ok_or(HmacError::Malformed("no Signature"))?;
    // Standard base64 may itself contain '/', so the user is everything between the first and
    // the last '/'.
    let (kind, rest) = credential.split_once('/').ok_or(HmacError::Malformed(
        "Credential is not kind/user/timestamp",
    ))?;
    let (user_b64, timestamp) = rest.rsplit_once('/').ok_or(HmacError::Malformed(
        "Credential is not kind/user/timestamp",
    ))?;
    let user = base64::engine::general_purpose::STANDARD
        .decode(user_b64)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or(HmacError::Malformed("the user is not base64 UTF-8"))?;
    if signature.len() != 64 || !signature.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(HmacError::Malformed("Signature is not 64 hex digits"));
    }
    Ok(HmacHeader {
        kind: kind.to_owned(),
        user,
        timestamp: timestamp.to_owned(),
        signature: signature.to_ascii_lowercase(),
    })
}

/// Checks a request's HMAC for `kind` on `collection/name:tag` and returns the token's info.
/// The signature is not spent: requests that change state use [`authorize_once`].
pub async fn authorize<B: TokenBackend>(
    backend: &B,
    headers: &HeaderMap,
    kind: &'static str,
    right: Right,
    reference: (&str, &str, &str),
) -> Result<TokenInfo, HmacError> {
    Ok(verify(backend, headers, kind, right, reference).await?.info)
}

/// [`authorize`], and spends the signature: it returns the spent signature too, which the
/// caller [`Spent::keep`]s once the request succeeded, or drops to let the client retry with
/// the same signature. A signature already kept is refused ([`HmacError::Replayed`]).
pub async fn authorize_once<B: TokenBackend>(
    backend: &B,
    seen: &Seen,
    headers: &HeaderMap,
    kind: &'static str,
    right: Right,
    reference: (&str, &str, &str),
) -> Result<(TokenInfo, Spent), HmacError> {
    let v = verify(backend, headers, kind, right, reference).await?;
    // Spent only once it verified, so forged headers cannot fill the memory of used ones.
    let spent = seen
        .spend(v.signature, v.until, v.now)
        .map_err(|r| match r {
            Refusal::Replayed => HmacError::Replayed,
            Refusal::Full => HmacError::Busy,
        })?;
    Ok((v.info, spent))
}

/// A verified signature.
struct Verified {
    info: TokenInfo,
    signature: [u8; 32],
    /// The Unix second its hour leaves the acceptance window.
    until: u64,
    now: u64,
}

async fn verify<B: TokenBackend>(
    backend: &B,
    headers: &HeaderMap,
    kind: &'static str,
    right: Right,
    (collection, name, tag): (&str, &str, &str),
) -> Result<Verified, HmacError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or(HmacError::Missing)?;
    let h = parse_header(value)?;
    if h.kind != kind {
        return Err(HmacError::WrongKind {
            expected: kind,
            found: h.kind,
        });
    }
    let now = crate::shub::time::unix_now();
    let accepted = [
        crate::shub::time::hour_stamp(now),
        crate::shub::time::hour_stamp(now.saturating_sub(3600)),
    ];
    // A signature stays acceptable until the hour after the one it names has ended.
    let hour_start = now - now % 3600;
    let until = if h.timestamp == accepted[0] {
        hour_start + 2 * 3600
    } else if h.timestamp == accepted[1] {
        hour_start + 3600
    } else {
        return Err(HmacError::Expired(h.timestamp));
    };
    let mut signature = [0u8; 32];
    hex::decode_to_slice(&h.signature, &mut signature)
        .map_err(|_| HmacError::Malformed("Signature is not 64 hex digits"))?;
    let message = format!("{kind}|{collection}|{}|{name}|{tag}|", h.timestamp);
    let claim = crate::tokens::HmacClaim {
        user: h.user,
        message: message.into_bytes(),
        signature: h.signature,
    };
    let info = backend.authorize_hmac(claim, collection, right).await??;
    Ok(Verified {
        info,
        signature,
        until,
        now,
    })
}

/// HMAC-SHA256 (RFC 2104), for the download secrets.
pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut k0 = [0u8; BLOCK];
    if key.len() > BLOCK {
        k0[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k0[..key.len()].copy_from_slice(key);
    }
    let ipad: Vec<u8> = k0.iter().map(|k| k ^ 0x36).collect();
    let opad: Vec<u8> = k0.iter().map(|k| k ^ 0x5c).collect();
    let inner = Sha256::new()
        .chain_update(&ipad)
        .chain_update(msg)
        .finalize();
    Sha256::new()
        .chain_update(&opad)
        .chain_update(inner)
        .finalize()
        .into()
}

/// The secret path segment of a private image's download URL: `<expiry>.<hex mac>`.
pub fn download_secret(key: &[u8; 32], cid: &str, expires: u64) -> String {
    let mac = hmac_sha256(key, format!("{cid}|{expires}").as_bytes());
    format!("{expires}.{}", hex::encode(mac))
}

/// Whether `secret` is a valid, unexpired [`download_secret`] for `cid`.
pub fn check_download_secret(key: &[u8; 32], cid: &str, secret: &str, now: u64) -> bool {
    let Some((exp, mac)) = secret.split_once('.') else {
        return false;
    };
    let Ok(expires) = exp.parse::<u64>() else {
        return false;
    };
    let Ok(mac) = hex::decode(mac) else {
        return false;
    };
    let want = hmac_sha256(key, format!("{cid}|{expires}").as_bytes());
    expires >= now && mac.len() == want.len() && {
        let mut diff = 0u8;
        for (a, b) in mac.iter().zip(want.iter()) {
            diff |= a ^ b;
        }
        diff == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_verified_example() {
        let h = parse_header(
            "SREGISTRY-HMAC-SHA256 Credential=pull/dnNvY2g=/20261125T18Z,Signature=f563004a2d2e73eeb40ba52c53c492c2227e7fd2c1d896c595fce698ac90710d",
        )
        .expect("parses");
        assert_eq!(h.kind, "pull");
        assert_eq!(h.user, "vsoch");
        assert_eq!(h.timestamp, "20261125T18Z");
        // The signature from client-protocols.md §1.4, recomputed.
        let mac = hmac_sha256(
            b"5027225717bf0030465db1e7099e496022c42181",
            b"pull|dinosaur|20261125T18Z|tacos|latest|",
        );
        assert_eq!(hex::encode(mac), h.signature);
    }

    #[test]
    fn rejects_malformed_headers() {
        for bad in [
            "",
            "Bearer abc",
            "SREGISTRY-HMAC-SHA256 Credential=pull,Signature=00",
            "SREGISTRY-HMAC-SHA256 Credential=pull/!!!/20261125T18Z,Signature=f563004a2d2e73eeb40ba52c53c492c2227e7fd2c1d896c595fce698ac90710d",
            "SREGISTRY-HMAC-SHA256 Credential=pull/dnNvY2g=/20261125T18Z,Signature=xyz",
        ] {
            assert!(parse_header(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn download_secrets_expire_and_bind_the_cid() {
        let key = [7u8; 32];
        let s = download_secret(&key, "bafyA", 100);
        assert!(check_download_secret(&key, "bafyA", &s, 99));
        assert!(!check_download_secret(&key, "bafyA", &s, 101));
        assert!(!check_download_secret(&key, "bafyB", &s, 99));
        assert!(!check_download_secret(&[8u8; 32], "bafyA", &s, 99));
        assert!(!check_download_secret(&key, "bafyA", "public", 99));
    }
}
