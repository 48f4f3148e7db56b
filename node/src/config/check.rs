//! Checking a config file and applying `SHUBNET_*` overrides, with errors that name the line
//! (or the environment variable) so an operator can fix them without guessing.
//!
//! Owns the checks of values beyond their TOML types. Must not read or write the file (see the
//! parent module) or apply flags.

use super::schema::{Kind, OPTIONS, Opt};
use super::{ConfigError, NodeConfig};
use std::fmt;

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// What is wrong and what would be right.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "line {l}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// The line of byte offset `at` in `text`.
fn line_of(text: &str, at: usize) -> usize {
    text.get(..at)
        .map_or(1, |t| t.bytes().filter(|&b| b == b'\n').count() + 1)
}

/// Why a value is not acceptable for its option.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// Not a socket address.
    #[error("`{value}` is not an IP:PORT address ({reason}), e.g. 127.0.0.1:8080")]
    NotAddress {
        /// The value given.
        value: String,
        /// The parser's complaint.
        reason: String,
    },
    /// Not a multiaddr.
    #[error("`{value}` is not a multiaddr ({reason}), e.g. /ip4/0.0.0.0/tcp/4001")]
    NotMultiaddr {
        /// The value given.
        value: String,
        /// The parser's complaint.
        reason: String,
    },
    /// A bootstrap address without the peer id to expect there.
    #[error(
        "`{value}` names no peer: end it with /p2p/PEER_ID (from the peer's `shubnet keys show`)"
    )]
    NoPeer {
        /// The value given.
        value: String,
    },
    /// Neither `all` nor a collection pattern.
    #[error("`{value}` is not `all` or a collection pattern (`lab-a`, `lab-a-*`)")]
    NotPattern {
        /// The value given.
        value: String,
    },
    /// An interval of zero, which would spin.
    #[error("must be at least 1")]
    Zero,
    /// Not a tracing filter.
    #[error("`{value}` is not a log filter ({reason})")]
    NotFilter {
        /// The value given.
        value: String,
        /// The parser's complaint.
        reason: String,
    },
}

/// Checks one value of `opt` beyond its TOML type (addresses, patterns, ranges).
pub fn check_value(opt: &Opt, value: &str) -> Result<(), ValueError> {
    match (opt.section, opt.key) {
        ("http", "listen" | "https") => {
            value
                .parse::<std::net::SocketAddr>()
                .map(|_| ())
                .map_err(|e| ValueError::NotAddress {
                    value: value.to_string(),
                    reason: e.to_string(),
                })
        }
        ("p2p", "listen" | "bootstrap" | "announce") => {
            let addr =
                value
                    .parse::<libp2p::Multiaddr>()
                    .map_err(|e| ValueError::NotMultiaddr {
                        value: value.to_string(),
                        reason: e.to_string(),
                    })?;
            if opt.key == "bootstrap"
                && !addr
                    .iter()
                    .any(|p| matches!(p, libp2p::multiaddr::Protocol::P2p(_)))
            {
                return Err(ValueError::NoPeer {
                    value: value.to_string(),
                });
            }
            Ok(())
        }
        ("replication", "mirror") => {
            if value == "all" || shubnet_protocol::roster::validate_pattern(value) {
                Ok(())
            } else {
                Err(ValueError::NotPattern {
                    value: value.to_string(),
                })
            }
        }
        ("replication", "check_interval_secs") | ("p2p", "usage_announce_secs") if value == "0" => {
            Err(ValueError::Zero)
        }
        ("log", "filter") => tracing_subscriber::EnvFilter::try_new(value)
            .map(|_| ())
            .map_err(|e| ValueError::NotFilter {
                value: value.to_string(),
                reason: e.to_string(),
            }),
        _ => Ok(()),
    }
}

fn opt(section: &str, key: &str) -> Option<&'static Opt> {
    OPTIONS
        .iter()
        .find(|o| o.section == section && o.key == key)
}

/// Checks every value of a parsed file; `text` is the file, for line numbers.
pub fn validate(cfg: &NodeConfig, text: &str) -> Vec<Problem> {
    let mut out = Vec::new();
    let mut spanned = |section: &str, key: &str, v: &toml::Spanned<String>| {
        if let Some(o) = opt(section, key)
            && let Err(message) = check_value(o, v.get_ref())
        {
            out.push(Problem {
                line: Some(line_of(text, v.span().start)),
                message: format!("[{section}] {key}: {message}"),
            });
        }
    };
    if let Some(l) = &cfg.http.listen {
        spanned("http", "listen", l);
    }
    if let Some(l) = &cfg.http.https {
        spanned("http", "https", l);
    }
    for (key, list) in [
        ("listen", &cfg.p2p.listen),
        ("bootstrap", &cfg.p2p.bootstrap),
        ("announce", &cfg.p2p.announce),
    ] {
        for v in list {
            spanned("p2p", key, v);
        }
    }
    let mut plain = |section: &str, key: &str, v: &str| {
        if let Some(o) = opt(section, key)
            && let Err(message) = check_value(o, v)
        {
            out.push(Problem {
                line: find_key_line(text, section, key),
                message: format!("[{section}] {key}: {message}"),
            });
        }
    };
    for m in &cfg.replication.mirror {
        plain("replication", "mirror", m);
    }
    plain(
        "replication",
        "check_interval_secs",
        &cfg.replication.check_interval_secs.to_string(),
    );
    if let Some(n) = cfg.p2p.usage_announce_secs {
        plain("p2p", "usage_announce_secs", &n.to_string());
    }
    if let Some(f) = &cfg.log.filter {
        plain("log", "filter", f);
    }
    if cfg.http.tls_cert.is_some() != cfg.http.tls_key.is_some() {
        out.push(Problem {
            line: find_key_line(text, "http", "tls_cert")
                .or_else(|| find_key_line(text, "http", "tls_key")),
            message: "[http] tls_cert and tls_key go together: set both or neither".into(),
        });
    }
    out
}

/// The line where `key` is set inside `[section]`, found by reading the text.
fn find_key_line(text: &str, section: &str, key: &str) -> Option<usize> {
    let mut current = String::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if let Some(name) = t.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            current = name.trim().to_string();
        } else if current == section
            && t.split('=')
                .next()
                .is_some_and(|k| k.trim().trim_matches('"') == key)
        {
            return Some(i + 1);
        }
    }
    None
}

/// Parses `text` (a file called `name`) and validates it: every problem, each with its line.
/// An empty list means the file is good.
pub fn check_text(text: &str) -> Vec<Problem> {
    match toml::from_str::<NodeConfig>(text) {
        Ok(cfg) => validate(&cfg, text),
        Err(e) => vec![Problem {
            line: e.span().map(|s| line_of(text, s.start)),
            message: e.message().trim().to_string(),
        }],
    }
}

/// What is wrong with an environment override.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvProblem {
    /// The value fails its option's check.
    #[error(transparent)]
    Value(#[from] ValueError),
    /// An integer option got something else.
    #[error("not a non-negative integer")]
    NotInteger,
    /// A boolean option got something else.
    #[error("not true or false")]
    NotBool,
}

/// An environment override that cannot be applied, naming the variable and its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{var}={raw:?}: {problem}")]
pub struct EnvError {
    /// The variable.
    pub var: &'static str,
    /// Its value.
    pub raw: String,
    /// What is wrong with it.
    pub problem: EnvProblem,
}

/// The TOML value of environment override `raw` for `opt`, or why it is not one.
fn env_value(opt: &Opt, raw: &str) -> Result<toml::Value, EnvError> {
    let bad = |problem: EnvProblem| EnvError {
        var: opt.env,
        raw: raw.to_string(),
        problem,
    };
    let check = |value: &str| check_value(opt, value).map_err(|e| bad(e.into()));
    match opt.kind {
        Kind::Text => {
            check(raw)?;
            Ok(toml::Value::String(raw.to_string()))
        }
        Kind::Integer => {
            let n: i64 = raw
                .trim()
                .parse()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| bad(EnvProblem::NotInteger))?;
            check(&n.to_string())?;
            Ok(toml::Value::Integer(n))
        }
        Kind::Bool => match raw.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(toml::Value::Boolean(true)),
            "0" | "false" | "no" | "off" => Ok(toml::Value::Boolean(false)),
            _ => Err(bad(EnvProblem::NotBool)),
        },
        Kind::List => {
            let items: Vec<&str> = raw
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect();
            for i in &items {
                check(i)?;
            }
            Ok(toml::Value::Array(
                items
                    .into_iter()
                    .map(|s| toml::Value::String(s.to_string()))
                    .collect(),
            ))
        }
    }
}

/// Parses a file (named `name` in errors), checks it, then applies the overrides `env`
/// returns for the options' variables.
pub fn parse_with_env(
    text: &str,
    name: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<NodeConfig, ConfigError> {
    let fail = |message: String| ConfigError::Parse {
        path: name.to_string(),
        message,
    };
    if let Some(p) = check_text(text).into_iter().next() {
        return Err(fail(p.to_string()));
    }
    let mut table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| fail(e.to_string()))?;
    let mut changed = false;
    for o in OPTIONS {
        let Some(raw) = env(o.env) else { continue };
        // SHUBNET_HTTP and friends are also read by clap for their flags; an empty value
        // means unset.
        if raw.is_empty() {
            continue;
        }
        let value = env_value(o, &raw).map_err(|e| fail(e.to_string()))?;
        let section = table
            .entry(o.section)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if let toml::Value::Table(t) = section {
            t.insert(o.key.to_string(), value);
            changed = true;
        }
    }
    if !changed {
        return toml::from_str(text).map_err(|e| fail(e.to_string()));
    }
    let merged = toml::to_string(&table).map_err(|e| fail(e.to_string()))?;
    toml::from_str(&merged).map_err(|e| fail(format!("with environment overrides: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Problem {
        let p = check_text(text);
        assert_eq!(p.len(), 1, "{p:?}");
        p.into_iter().next().expect("one problem")
    }

    #[test]
    fn unknown_key_names_its_line() {
        let p = one("[replication]\ngrace_period_secs = 5\nmirrors = [\"all\"]\n");
        assert_eq!(p.line, Some(3), "{p}");
        assert!(p.message.contains("unknown field `mirrors`"), "{p}");
        assert!(p.message.contains("mirror"), "lists the valid keys: {p}");
        let p = one("[p2pp]\nlisten = []\n");
        assert_eq!(p.line, Some(1), "{p}");
    }

    #[test]
    fn wrong_type_names_its_line() {
        let p = one("[p2p]\n\nupload_limit = \"fast\"\n");
        assert_eq!(p.line, Some(3), "{p}");
        assert!(
            p.message.contains("invalid type") && p.message.contains("u64"),
            "{p}"
        );
        let p = one("[http]\nallow_remote_admin = 1\n");
        assert_eq!(p.line, Some(2), "{p}");
    }

    #[test]
    fn bad_multiaddr_names_its_line() {
        let text =
            "[p2p]\nlisten = [\n  \"/ip4/0.0.0.0/tcp/4001\",\n  \"/ip4/300.1.1.1/tcp/1\",\n]\n";
        let p = one(text);
        assert_eq!(p.line, Some(4), "{p}");
        assert!(p.message.contains("not a multiaddr"), "{p}");
        let p = one("[p2p]\nbootstrap = [\"/ip4/10.0.0.1/tcp/4001\"]\n");
        assert_eq!(p.line, Some(2), "{p}");
        assert!(p.message.contains("/p2p/PEER_ID"), "{p}");
        let p = one("[http]\nlisten = \"localhost\"\n");
        assert_eq!(p.line, Some(2), "{p}");
    }

    #[test]
    fn good_files_pass_and_other_checks() {
        assert!(check_text("").is_empty());
        let good = "[http]\nlisten = \"0.0.0.0:8080\"\n[p2p]\nlisten = [\"/ip4/0.0.0.0/tcp/4001\"]\n\
                    bootstrap = [\"/ip4/10.0.0.1/tcp/4001/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA\"]\n\
                    [replication]\nmirror = [\"all\", \"lab-a-*\"]\n[log]\nfilter = \"info\"\n";
        assert_eq!(check_text(good), vec![]);
        let p = one("[replication]\nmirror = [\"Lab A\"]\n");
        assert_eq!(p.line, Some(2), "{p}");
        let p = one("[http]\n\ntls_cert = \"a.pem\"\n");
        assert_eq!(p.line, Some(3), "{p}");
        let p = one("[p2p]\ngossip = true\nusage_announce_secs = 0\n");
        assert_eq!(p.line, Some(3), "{p}");
        assert!(
            p.message
                .contains("usage_announce_secs: must be at least 1"),
            "{p}"
        );
        assert!(check_text("[p2p]\nusage_announce_secs = 5\n").is_empty());
        let err = parse_with_env("", "c.toml", |k| {
            (k == "SHUBNET_USAGE_ANNOUNCE").then(|| "0".to_string())
        })
        .expect_err("zero from the environment");
        assert!(err.to_string().contains("SHUBNET_USAGE_ANNOUNCE"), "{err}");
    }

    #[test]
    fn environment_overrides_the_file_and_is_checked() {
        let text = "[replication]\ngrace_period_secs = 5\n[p2p]\nupload_limit = 10\n";
        let env = |k: &str| match k {
            "SHUBNET_GRACE_PERIOD" => Some("7".to_string()),
            "SHUBNET_BOOTSTRAP" => Some(
                "/ip4/10.0.0.1/tcp/4001/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"
                    .to_string(),
            ),
            "SHUBNET_GOSSIP" => Some("false".to_string()),
            _ => None,
        };
        let cfg = parse_with_env(text, "c.toml", env).expect("parse");
        assert_eq!(cfg.replication.grace_period_secs, 7);
        assert_eq!(cfg.p2p.upload_limit, Some(10), "the file's value stays");
        assert_eq!(cfg.p2p.bootstrap.len(), 1);
        assert_eq!(cfg.p2p.gossip, Some(false));
        let err = parse_with_env(text, "c.toml", |k| {
            (k == "SHUBNET_UPLOAD_LIMIT").then(|| "lots".to_string())
        })
        .expect_err("bad env");
        assert!(err.to_string().contains("SHUBNET_UPLOAD_LIMIT"), "{err}");
        let err = parse_with_env(text, "c.toml", |k| {
            (k == "SHUBNET_P2P_LISTEN").then(|| "/ip4/0.0.0.0/tcp/1,nope".to_string())
        })
        .expect_err("bad env multiaddr");
        assert!(err.to_string().contains("nope"), "{err}");
    }

    #[test]
    fn every_option_is_in_the_struct_and_every_key_in_the_table() {
        // Each option parses as a key of NodeConfig (deny_unknown_fields would refuse it)...
        for o in OPTIONS {
            let value = match o.kind {
                Kind::Text => match (o.section, o.key) {
                    ("http", "listen" | "https") => "\"127.0.0.1:1\"".to_string(),
                    ("log", "filter") => "\"info\"".to_string(),
                    _ => "\"x\"".to_string(),
                },
                Kind::Integer => "1".to_string(),
                Kind::Bool => "true".to_string(),
                Kind::List => "[]".to_string(),
            };
            let text = format!("[{}]\n{} = {value}\n", o.section, o.key);
            toml::from_str::<NodeConfig>(&text)
                .unwrap_or_else(|e| panic!("{}.{} is not a config key: {e}", o.section, o.key));
        }
        // ...and every key of a fully set NodeConfig is in the table.
        let full = "[http]\nlisten = \"127.0.0.1:1\"\nallow_remote_admin = true\nmax_upload_bytes = 1\n\
                    header_timeout_secs = 1\nbody_idle_timeout_secs = 1\n\
                    library_upload_expiry_secs = 1\ntls_cert = \"c\"\ntls_key = \"k\"\nhttps = \"0.0.0.0:443\"\nshutdown_grace_secs = 5\n[p2p]\nlisten = [\"/ip4/1.1.1.1/tcp/1\"]\n\
                    bootstrap = [\"/ip4/1.1.1.1/tcp/1\"]\nannounce = [\"/ip4/1.1.1.1/tcp/1\"]\n\
                    upload_limit = 1\ndownload_limit = 1\npublic_upload_limit = 1\nsync_interval_secs = 1\nusage_announce_secs = 1\ngossip = true\n\
                    [log]\nfilter = \"info\"\n[federation]\nid = \"x\"\ninstitution = \"y\"\n\
                    [replication]\nmirror = [\"all\"]\n";
        let cfg: NodeConfig = toml::from_str(full).expect("full config");
        let table: toml::Table = toml::to_string(&cfg)
            .expect("serialize")
            .parse()
            .expect("reparse");
        for (section, v) in &table {
            let keys = v.as_table().expect("section table");
            for key in keys.keys() {
                assert!(
                    opt(section, key).is_some(),
                    "[{section}] {key} is missing from schema::OPTIONS"
                );
            }
        }
    }
}
