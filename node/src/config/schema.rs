//! Every `config.toml` option in one table: its key, type, default, environment variable and
//! meaning. The option reference (`shubnet config reference`, `docs/config-reference.md`), the
//! `SHUBNET_*` environment overrides and the tests that keep the table and [`NodeConfig`]
//! in step all read it, so the documentation cannot drift from the code.
//!
//! Owns the option table. Must not read files or the environment.
//!
//! [`NodeConfig`]: super::NodeConfig

/// How an option's value is written (and how its environment variable is parsed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A string.
    Text,
    /// A non-negative integer.
    Integer,
    /// `true` or `false`.
    Bool,
    /// A list of strings; in the environment, comma-separated.
    List,
}

impl Kind {
    /// The name used in the reference.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Text => "string",
            Kind::Integer => "integer",
            Kind::Bool => "boolean",
            Kind::List => "list of strings",
        }
    }
}

/// One option.
#[derive(Debug, Clone, Copy)]
pub struct Opt {
    /// `[section]`.
    pub section: &'static str,
    /// Key within the section.
    pub key: &'static str,
    /// Value type.
    pub kind: Kind,
    /// The default, as written in TOML (or a description when it is computed).
    pub default: &'static str,
    /// The environment variable that overrides the file.
    pub env: &'static str,
    /// The `serve` flag that overrides both, if any.
    pub flag: Option<&'static str>,
    /// What it does, for operators.
    pub doc: &'static str,
}

/// Every option. Precedence: flag > environment > file > default.
pub const OPTIONS: &[Opt] = &[
    Opt {
        section: "http",
        key: "listen",
        kind: Kind::Text,
        default: "\"127.0.0.1:8080\"",
        env: "SHUBNET_HTTP",
        flag: Some("--http"),
        doc: "Address of the HTTP gateway and admin API. Loopback by default; `0.0.0.0:PORT` \
              serves other hosts (the admin API still answers only loopback).",
    },
    Opt {
        section: "http",
        key: "allow_remote_admin",
        kind: Kind::Bool,
        default: "false",
        env: "SHUBNET_ALLOW_REMOTE_ADMIN",
        flag: Some("--allow-remote-admin"),
        doc: "Let the admin API answer non-loopback clients (they still need the admin token).",
    },
    Opt {
        section: "http",
        key: "max_upload_bytes",
        kind: Kind::Integer,
        default: "68719476736",
        env: "SHUBNET_MAX_UPLOAD",
        flag: Some("--max-upload"),
        doc: "Largest image upload accepted, in bytes (64 GiB by default).",
    },
    Opt {
        section: "http",
        key: "header_timeout_secs",
        kind: Kind::Integer,
        default: "30",
        env: "SHUBNET_HEADER_TIMEOUT",
        flag: Some("--header-timeout"),
        doc: "Seconds a client may take to send a request's head (method, path, headers); a \
              slower connection (slowloris) is closed.",
    },
    Opt {
        section: "http",
        key: "body_idle_timeout_secs",
        kind: Kind::Integer,
        default: "60",
        env: "SHUBNET_BODY_IDLE_TIMEOUT",
        flag: Some("--body-idle-timeout"),
        doc: "Seconds an upload's body may send nothing before the upload is cut and its partial \
              content removed.",
    },
    Opt {
        section: "http",
        key: "library_upload_expiry_secs",
        kind: Kind::Integer,
        default: "86400",
        env: "SHUBNET_UPLOAD_EXPIRY",
        flag: Some("--upload-expiry"),
        doc: "Seconds a library upload (`apptainer push`) may wait for its tag call; content no \
              tag references by then is unpinned and removed.",
    },
    Opt {
        section: "http",
        key: "tls_cert",
        kind: Kind::Text,
        default: "unset (plain HTTP)",
        env: "SHUBNET_TLS_CERT",
        flag: Some("--tls-cert"),
        doc: "PEM certificate chain; with `tls_key`, the gateway serves HTTPS.",
    },
    Opt {
        section: "http",
        key: "tls_key",
        kind: Kind::Text,
        default: "unset (plain HTTP)",
        env: "SHUBNET_TLS_KEY",
        flag: Some("--tls-key"),
        doc: "PEM private key for `tls_cert`. Keep it 0600.",
    },
    Opt {
        section: "http",
        key: "https",
        kind: Kind::Text,
        default: "\"0.0.0.0:443\"",
        env: "SHUBNET_HTTPS",
        flag: Some("--https"),
        doc: "HTTPS listen address, used when `tls_cert` and `tls_key` are set. `shub://` URIs \
              allow no port, so public gateways answer on 443 (binding it needs \
              `CAP_NET_BIND_SERVICE`).",
    },
    Opt {
        section: "http",
        key: "shutdown_grace_secs",
        kind: Kind::Integer,
        default: "30",
        env: "SHUBNET_SHUTDOWN_GRACE",
        flag: Some("--shutdown-grace"),
        doc: "On SIGTERM the node stops accepting connections and lets in-flight downloads and \
              uploads finish for at most this many seconds, then cuts the rest (their clients \
              get an error; nothing partial is kept).",
    },
    Opt {
        section: "p2p",
        key: "listen",
        kind: Kind::List,
        default: "[\"/ip4/0.0.0.0/tcp/4001\", \"/ip4/0.0.0.0/udp/4001/quic-v1\"]",
        env: "SHUBNET_P2P_LISTEN",
        flag: Some("--p2p"),
        doc: "libp2p listen multiaddrs (TCP and QUIC).",
    },
    Opt {
        section: "p2p",
        key: "bootstrap",
        kind: Kind::List,
        default: "[]",
        env: "SHUBNET_BOOTSTRAP",
        flag: Some("--bootstrap"),
        doc: "Peers to dial at start, as `/ip4/…/tcp/4001/p2p/PEER_ID` or by name, \
              `/dns4/HOST/tcp/4001/p2p/PEER_ID` (also `/dns6`, `/dns`; resolved by the system \
              resolver at every dial). Known members are remembered, so this is needed only for \
              the first start.",
    },
    Opt {
        section: "p2p",
        key: "announce",
        kind: Kind::List,
        default: "[]",
        env: "SHUBNET_ANNOUNCE",
        flag: Some("--announce"),
        doc: "Addresses to announce to peers (the public address behind NAT or a load \
              balancer), by IP or by name (`/dns4/p2p.example.org/tcp/4001`): a name keeps \
              working when the address behind it changes.",
    },
    Opt {
        section: "p2p",
        key: "upload_limit",
        kind: Kind::Integer,
        default: "0",
        env: "SHUBNET_UPLOAD_LIMIT",
        flag: Some("--upload-limit"),
        doc: "Bytes per second this node sends to the federation; 0 is unlimited.",
    },
    Opt {
        section: "p2p",
        key: "download_limit",
        kind: Kind::Integer,
        default: "0",
        env: "SHUBNET_DOWNLOAD_LIMIT",
        flag: Some("--download-limit"),
        doc: "Bytes per second this node receives from the federation; 0 is unlimited.",
    },
    Opt {
        section: "p2p",
        key: "public_upload_limit",
        kind: Kind::Integer,
        default: "16000000",
        env: "SHUBNET_PUBLIC_UPLOAD_LIMIT",
        flag: Some("--public-upload-limit"),
        doc: "Bytes per second Bitswap sends to peers outside the federation, all together \
              (within `upload_limit`); 0 is unlimited. Members are not held to it.",
    },
    Opt {
        section: "p2p",
        key: "sync_interval_secs",
        kind: Kind::Integer,
        default: "60",
        env: "SHUBNET_SYNC_INTERVAL",
        flag: Some("--sync-interval"),
        doc: "Seconds between anti-entropy rounds with each member (also run on connect).",
    },
    Opt {
        section: "p2p",
        key: "usage_announce_secs",
        kind: Kind::Integer,
        default: "60",
        env: "SHUBNET_USAGE_ANNOUNCE",
        flag: Some("--usage-announce"),
        doc: "Seconds between gossip announcements of this node's download counts that changed \
              (members add them up for the federation-wide count). A member that connects pulls \
              all counts at once through sync, so this only paces updates. At least 1.",
    },
    Opt {
        section: "p2p",
        key: "gossip",
        kind: Kind::Bool,
        default: "true",
        env: "SHUBNET_GOSSIP",
        flag: Some("--no-gossip"),
        doc: "Publish and receive new manifests and rosters over gossipsub. Sync works \
              without it, only slower.",
    },
    Opt {
        section: "log",
        key: "filter",
        kind: Kind::Text,
        default: "\"info\"",
        env: "SHUBNET_LOG",
        flag: Some("--log"),
        doc: "Log filter, e.g. `info` or `shubnet_node=debug` (`RUST_LOG` also works).",
    },
    Opt {
        section: "federation",
        key: "id",
        kind: Kind::Text,
        default: "unset",
        env: "SHUBNET_FEDERATION_ID",
        flag: None,
        doc: "The federation id (CID of roster version 1) everything is verified against. \
              Written by `federation create` and `federation join`.",
    },
    Opt {
        section: "federation",
        key: "institution",
        kind: Kind::Text,
        default: "unset",
        env: "SHUBNET_INSTITUTION",
        flag: None,
        doc: "This node's institution id in the roster. Written by the federation commands.",
    },
    Opt {
        section: "replication",
        key: "mirror",
        kind: Kind::List,
        default: "[]",
        env: "SHUBNET_MIRROR",
        flag: None,
        doc: "Extra images to keep beyond the roster's placement: `all`, or collection \
              patterns (`lab-a`, `lab-a-*`).",
    },
    Opt {
        section: "replication",
        key: "grace_period_secs",
        kind: Kind::Integer,
        default: "600",
        env: "SHUBNET_GRACE_PERIOD",
        flag: None,
        doc: "Seconds a holder may be unreachable before the next node in placement order \
              fetches its images (repair).",
    },
    Opt {
        section: "replication",
        key: "tombstone_retention_secs",
        kind: Kind::Integer,
        default: "604800",
        env: "SHUBNET_TOMBSTONE_RETENTION",
        flag: None,
        doc: "Seconds a deleted image's bytes are kept (unpinned) so a mistaken delete can be \
              undone by pushing the tag again.",
    },
    Opt {
        section: "replication",
        key: "check_interval_secs",
        kind: Kind::Integer,
        default: "30",
        env: "SHUBNET_REPLICATION_INTERVAL",
        flag: None,
        doc: "Seconds between placement checks (new manifests also start one at once).",
    },
    Opt {
        section: "store",
        key: "blobs",
        kind: Kind::Text,
        default: "(local disk: DATA_DIR/blobs)",
        env: "SHUBNET_BLOBS",
        flag: Some("--blobs"),
        doc: "Keep blobs in an S3-compatible bucket instead of on local disk: \
              `s3://BUCKET/PREFIX`. Credentials and endpoint come from `AWS_ENDPOINT_URL`, \
              `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION` and `AWS_ALLOW_HTTP` \
              (for a plain-HTTP endpoint). Clients never see the bucket; the index stays local \
              and is rebuilt from a listing of the bucket.",
    },
    Opt {
        section: "store",
        key: "cache_bytes",
        kind: Kind::Integer,
        default: "10737418240",
        env: "SHUBNET_BLOBS_CACHE",
        flag: None,
        doc: "With blobs in a bucket: bytes of local disk kept as a read cache of recently used \
              blobs (least recently used evicted first); 0 reads every byte from the bucket.",
    },
    Opt {
        section: "scrub",
        key: "interval_secs",
        kind: Kind::Integer,
        default: "2592000",
        env: "SHUBNET_SCRUB_INTERVAL",
        flag: None,
        doc: "Seconds after a blob's last check before the background scrub re-hashes every \
              leaf against its CID (blobs are hashed at import and on receipt, not when \
              served). A damaged blob is quarantined and fetched again from another member. \
              0 turns the scheduled scrub off; `shubnet scrub` still runs one at once.",
    },
    Opt {
        section: "scrub",
        key: "rate_bytes_per_sec",
        kind: Kind::Integer,
        default: "33554432",
        env: "SHUBNET_SCRUB_RATE",
        flag: None,
        doc: "Bytes per second the background scrub reads at most (32 MiB/s by default, about \
              a tenth of a core); 0 means unlimited.",
    },
];

/// The option reference in Markdown, as `docs/config-reference.md` holds it.
pub fn reference_markdown() -> String {
    let mut out = String::from(
        "# shubnet configuration reference\n\n\
         <!-- Generated by `shubnet config reference`; a test checks this file against it. -->\n\n\
         A node reads `DATA_DIR/config.toml` (default data dir `~/.local/share/shubnet`). Every \
         option is optional. Precedence: command-line flag > environment variable > file > \
         default. `shubnet config check [FILE]` validates a file and names the line of each \
         error.\n",
    );
    let mut section = "";
    for o in OPTIONS {
        if o.section != section {
            section = o.section;
            out.push_str(&format!("\n## `[{section}]`\n\n"));
            out.push_str("| key | type | default | environment | flag | meaning |\n");
            out.push_str("|---|---|---|---|---|---|\n");
        }
        out.push_str(&format!(
            "| `{}` | {} | `{}` | `{}` | {} | {} |\n",
            o.key,
            o.kind.name(),
            o.default,
            o.env,
            o.flag.map_or("—".to_string(), |f| format!("`{f}`")),
            o.doc.split_whitespace().collect::<Vec<_>>().join(" "),
        ));
    }
    out
}
