//! Which representation of `/ipfs/{cid}` a request asks for.
//!
//! `?format=raw|car` wins over `Accept`. Without either, or when `Accept` names nothing
//! trustless (`*/*`, `text/html`, ...), the client gets the plain file bytes: that is what
//! `apptainer pull ipfs://CID` and `curl` expect. CAR parameters (`version`, `order`, `dups`)
//! come from the chosen `Accept` entry and are overridden one by one by `?car-version`,
//! `?car-order` and `?car-dups`. We emit `version=1; order=dfs` always, and `dups=n` unless the
//! client asked for `dups=y` (the spec's advice for gateways that control duplicates).
//! `order=unk` is accepted and answered with `dfs`; any other version or order is a 400.
//!
//! It only reads the request: it must not fetch content or build responses.

use super::IpfsError;
use shubnet_protocol::car::MEDIA_TYPE as CAR_MEDIA_TYPE;

/// Media type of a single raw block.
pub(crate) const RAW_MEDIA_TYPE: &str = "application/vnd.ipld.raw";

/// The representation a request resolved to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// The deserialized UnixFS file bytes.
    File,
    /// Exactly one block.
    Raw,
    /// A CAR stream with these parameters.
    Car(CarParams),
}

/// CAR variant parameters we honour. Version 1 and DFS order are the only ones emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CarParams {
    /// Send a block again each time the DAG walk meets it (`dups=y`).
    pub dups: bool,
}

impl CarParams {
    /// The `Content-Type` of the response, stating exactly what is emitted.
    pub(crate) fn content_type(self) -> String {
        let dups = if self.dups { "y" } else { "n" };
        format!("{CAR_MEDIA_TYPE}; version=1; order=dfs; dups={dups}")
    }
}

/// The query parameters that take part in negotiation.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FormatQuery<'a> {
    /// `?format=`.
    pub format: Option<&'a str>,
    /// `?car-version=`.
    pub car_version: Option<&'a str>,
    /// `?car-order=`.
    pub car_order: Option<&'a str>,
    /// `?car-dups=`.
    pub car_dups: Option<&'a str>,
}

/// One entry of an `Accept` header naming a trustless type.
#[derive(Debug)]
struct Candidate {
    car: bool,
    params: Vec<(String, String)>,
    q: f32,
}

/// Resolves the format from the query and the `Accept` header.
pub(crate) fn negotiate(query: FormatQuery<'_>, accept: Option<&str>) -> Result<Format, IpfsError> {
    let candidates = accept.map(parse_accept).unwrap_or_default();
    match query.format.filter(|f| !f.is_empty()) {
        Some("raw") => Ok(Format::Raw),
        // The query chose CAR; a CAR entry in Accept may still refine its parameters.
        Some("car") => first_fit(candidates.iter().filter(|c| c.car), query, || {
            car_params(&[], query).map(Format::Car)
        }),
        Some(other) => Err(IpfsError::BadRequest(format!(
            "format {other:?} is not supported; use format=raw or format=car, \
             or no format for the file bytes"
        ))),
        None => first_fit(&candidates, query, || Ok(Format::File)),
    }
}

/// The format of the first `Accept` entry we can honour (a non-CAR entry means raw); when none
/// can be honoured, the first refusal; with no entries, `otherwise`.
fn first_fit<'c>(
    candidates: impl IntoIterator<Item = &'c Candidate>,
    query: FormatQuery<'_>,
    otherwise: impl FnOnce() -> Result<Format, IpfsError>,
) -> Result<Format, IpfsError> {
    let mut first_err = None;
    for c in candidates {
        if !c.car {
            return Ok(Format::Raw);
        }
        match car_params(&c.params, query) {
            Ok(p) => return Ok(Format::Car(p)),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => otherwise(),
    }
}

/// Combines `Accept` parameters with the query overrides and checks we can honour them.
fn car_params(accept: &[(String, String)], query: FormatQuery<'_>) -> Result<CarParams, IpfsError> {
    let from_accept = |name: &str| {
        accept
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let version = query
        .car_version
        .filter(|v| !v.is_empty())
        .or_else(|| from_accept("version"));
    let order = query
        .car_order
        .filter(|v| !v.is_empty())
        .or_else(|| from_accept("order"));
    let dups = query
        .car_dups
        .filter(|v| !v.is_empty())
        .or_else(|| from_accept("dups"));
    match version {
        None | Some("1") => {}
        Some(v) => {
            return Err(IpfsError::BadRequest(format!(
                "CAR version {v:?} is not supported; only version=1"
            )));
        }
    }
    match order {
        None | Some("dfs") | Some("unk") => {}
        Some(o) => {
            return Err(IpfsError::BadRequest(format!(
                "CAR order {o:?} is not supported; use order=dfs (or unk)"
            )));
        }
    }
    let dups = match dups {
        None | Some("n") => false,
        Some("y") => true,
        Some(d) => {
            return Err(IpfsError::BadRequest(format!(
                "CAR dups {d:?} is not supported; use dups=y or dups=n"
            )));
        }
    };
    Ok(CarParams { dups })
}

/// The trustless entries of an `Accept` header, best first (by `q`, then by position).
fn parse_accept(header: &str) -> Vec<Candidate> {
    let mut out: Vec<Candidate> = header
        .split(',')
        .filter_map(|entry| {
            let mut parts = entry.split(';');
            let essence = parts.next()?.trim().to_ascii_lowercase();
            let car = match essence.as_str() {
                RAW_MEDIA_TYPE => false,
                CAR_MEDIA_TYPE => true,
                _ => return None,
            };
            let mut q = 1.0f32;
            let mut params = Vec::new();
            for p in parts {
                let Some((k, v)) = p.split_once('=') else {
                    continue;
                };
                let k = k.trim().to_ascii_lowercase();
                let v = v.trim().trim_matches('"').to_string();
                if k == "q" {
                    q = v.parse().unwrap_or(1.0);
                } else {
                    params.push((k, v));
                }
            }
            (q > 0.0).then_some(Candidate { car, params, q })
        })
        .collect();
    // A stable sort keeps the header's order among equal weights.
    out.sort_by(|a, b| b.q.total_cmp(&a.q));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(q: FormatQuery<'_>, accept: Option<&str>) -> Result<Format, IpfsError> {
        negotiate(q, accept)
    }

    fn query(format: &str) -> FormatQuery<'_> {
        FormatQuery {
            format: Some(format),
            ..Default::default()
        }
    }

    #[test]
    fn nothing_or_browser_accept_means_file() {
        assert_eq!(fmt(FormatQuery::default(), None).ok(), Some(Format::File));
        assert_eq!(
            fmt(FormatQuery::default(), Some("text/html,*/*;q=0.8")).ok(),
            Some(Format::File)
        );
    }

    #[test]
    fn query_wins_over_accept() {
        assert_eq!(
            fmt(query("raw"), Some("application/vnd.ipld.car")).ok(),
            Some(Format::Raw)
        );
        assert_eq!(
            fmt(query("car"), Some("application/vnd.ipld.raw")).ok(),
            Some(Format::Car(CarParams { dups: false }))
        );
    }

    #[test]
    fn accept_params_refine_format_car() {
        assert_eq!(
            fmt(
                query("car"),
                Some("application/vnd.ipld.car; version=1; order=dfs; dups=y")
            )
            .ok(),
            Some(Format::Car(CarParams { dups: true }))
        );
    }

    #[test]
    fn car_query_params_win_over_accept_params() {
        let q = FormatQuery {
            car_dups: Some("n"),
            ..Default::default()
        };
        assert_eq!(
            fmt(q, Some("application/vnd.ipld.car;dups=y")).ok(),
            Some(Format::Car(CarParams { dups: false }))
        );
    }

    #[test]
    fn q_values_order_candidates() {
        assert_eq!(
            fmt(
                FormatQuery::default(),
                Some("application/vnd.ipld.car;q=0.5, application/vnd.ipld.raw")
            )
            .ok(),
            Some(Format::Raw)
        );
        assert_eq!(
            fmt(
                FormatQuery::default(),
                Some("application/vnd.ipld.raw;q=0, text/plain")
            )
            .ok(),
            Some(Format::File)
        );
    }

    #[test]
    fn unsupported_variants_are_rejected_unless_an_alternative_fits() {
        assert!(fmt(query("tar"), None).is_err());
        assert!(
            fmt(
                FormatQuery::default(),
                Some("application/vnd.ipld.car; version=2")
            )
            .is_err()
        );
        assert!(
            fmt(
                FormatQuery::default(),
                Some("application/vnd.ipld.car; order=bfs")
            )
            .is_err()
        );
        assert!(
            fmt(
                FormatQuery::default(),
                Some("application/vnd.ipld.car; dups=maybe")
            )
            .is_err()
        );
        assert_eq!(
            fmt(
                FormatQuery::default(),
                Some("application/vnd.ipld.car;order=foo, application/vnd.ipld.car;order=dfs;dups=y;q=0.5")
            )
            .ok(),
            Some(Format::Car(CarParams { dups: true }))
        );
        assert_eq!(
            fmt(
                FormatQuery::default(),
                Some("application/vnd.ipld.car; order=unk")
            )
            .ok(),
            Some(Format::Car(CarParams { dups: false }))
        );
    }

    #[test]
    fn content_type_states_what_is_emitted() {
        assert_eq!(
            CarParams { dups: true }.content_type(),
            "application/vnd.ipld.car; version=1; order=dfs; dups=y"
        );
    }
}
