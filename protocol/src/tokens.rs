//! User tokens and private collections as plain types: what a token is ([`TokenInfo`]), what it
//! may do ([`Right`] on the collections its [`CollectionPattern`]s match), how a request for one
//! is checked ([`TokenRequest`]), and why a presented token is refused ([`AuthError`]). Shared by
//! the gateway's token routes, the node's token store and the CLI; no I/O and no HTTP here.

use crate::reference;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Most collection patterns one token may carry.
pub const MAX_PATTERNS: usize = 64;
/// Length of a token id: the first 8 hex digits of the token's sha256.
pub const ID_LEN: usize = 8;

/// Something a token may allow on a collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Right {
    /// Pull images of a private collection (public collections need no token).
    Pull,
    /// Push images (new tags) into the collection.
    Push,
    /// Delete tags (publish tombstones).
    Delete,
}

impl Right {
    /// Every right, in the order they are shown.
    pub const ALL: [Right; 3] = [Right::Pull, Right::Push, Right::Delete];

    /// The name used on the command line and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Right::Pull => "pull",
            Right::Push => "push",
            Right::Delete => "delete",
        }
    }

    /// Parses a comma-separated list (`pull,push`), sorted and without duplicates. At least one
    /// right is required.
    pub fn parse_list(text: &str) -> Result<Vec<Right>, TokenRequestError> {
        normalize_rights(text.split(',').map(str::trim).filter(|s| !s.is_empty()))
    }
}

impl fmt::Display for Right {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Right {
    type Err = TokenRequestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Right::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| TokenRequestError::UnknownRight(s.to_owned()))
    }
}

fn normalize_rights<'a>(
    names: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<Right>, TokenRequestError> {
    let mut rights = names
        .into_iter()
        .map(Right::from_str)
        .collect::<Result<Vec<_>, _>>()?;
    rights.sort();
    rights.dedup();
    if rights.is_empty() {
        return Err(TokenRequestError::NoRights);
    }
    Ok(rights)
}

fn valid_rights_list() -> String {
    Right::ALL.map(Right::as_str).join(", ")
}

/// Which collections a token covers. Parsed from text, and shown as the text it was given as:
///
/// - `lab-a`: exactly the collection `lab-a`;
/// - `lab-a/*`: every image in `lab-a` (the same collections as `lab-a`);
/// - `lab-*`: every collection whose name starts with `lab-` (as roster namespaces);
/// - `*`: every collection.
///
/// Collection names follow [`shubnet_protocol::reference`] (`a-z 0-9` joined by single `-`, at
/// most 39 characters); a prefix must be the start of some valid name.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CollectionPattern {
    text: String,
    kind: PatternKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum PatternKind {
    All,
    Exact(String),
    Prefix(String),
}

impl CollectionPattern {
    /// Checks and parses a pattern.
    pub fn parse(text: &str) -> Result<Self, TokenRequestError> {
        let bad = |why: &str| TokenRequestError::BadPattern {
            pattern: text.to_owned(),
            why: why.to_owned(),
        };
        let kind = if text == "*" {
            PatternKind::All
        } else if let Some(coll) = text.strip_suffix("/*") {
            reference::validate_collection(coll).map_err(|e| bad(&e.to_string()))?;
            PatternKind::Exact(coll.to_owned())
        } else if let Some(prefix) = text.strip_suffix('*') {
            // Some collection starts with the prefix exactly when appending a letter makes one.
            reference::validate_collection(&format!("{prefix}a"))
                .map_err(|_| bad("no collection name can start with the part before '*'"))?;
            PatternKind::Prefix(prefix.to_owned())
        } else {
            reference::validate_collection(text).map_err(|e| bad(&e.to_string()))?;
            PatternKind::Exact(text.to_owned())
        };
        Ok(Self {
            text: text.to_owned(),
            kind,
        })
    }

    /// True when the pattern covers `collection`.
    pub fn matches(&self, collection: &str) -> bool {
        match &self.kind {
            PatternKind::All => true,
            PatternKind::Exact(c) => c == collection,
            PatternKind::Prefix(p) => collection.starts_with(p.as_str()),
        }
    }

    /// The pattern as it was given.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for CollectionPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for CollectionPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.text)
    }
}

impl FromStr for CollectionPattern {
    type Err = TokenRequestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for CollectionPattern {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for CollectionPattern {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Why a token request (from the CLI or the admin API) is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenRequestError {
    /// The user name breaks the naming rules.
    #[error(
        "invalid user name {0:?}: use 1-64 lowercase letters and digits, joined by single '.', '_' or '-' (the library entity rules)"
    )]
    BadUser(String),
    /// A collection pattern is not one of the accepted forms.
    #[error(
        "invalid collection pattern {pattern:?} ({why}); use a collection name (lab-a), all of one collection (lab-a/*), a name prefix followed by '*' (lab-*), or '*' for every collection"
    )]
    BadPattern {
        /// The pattern.
        pattern: String,
        /// What is wrong with it.
        why: String,
    },
    /// No collection pattern was given.
    #[error("give at least one collection pattern (--collection)")]
    NoCollections,
    /// More than [`MAX_PATTERNS`] patterns.
    #[error("a token may cover at most {MAX_PATTERNS} collection patterns")]
    TooManyPatterns,
    /// A right that does not exist.
    #[error("unknown right {0:?}; valid rights are {list}", list = valid_rights_list())]
    UnknownRight(String),
    /// No right was given.
    #[error("give at least one right; valid rights are {list}", list = valid_rights_list())]
    NoRights,
    /// A federation capability asked for more than pull.
    #[error(
        "a federation token grants pull only; push and delete need a token of the owner's node"
    )]
    FederationPullOnly,
    /// A federation capability's lifetime is zero or over a year.
    #[error("a federation token lives between one second and a year")]
    BadLifetime,
}

/// Checks a user name: the library entity rules (`a-z 0-9` runs joined by single `.`, `_`
/// or `-`, 1-64 characters), so the user can also be the entity of library references.
pub fn validate_user(user: &str) -> Result<(), TokenRequestError> {
    reference::validate_name(user).map_err(|_| TokenRequestError::BadUser(user.to_owned()))
}

/// An sregistry HMAC signature to check (client-protocols.md §1.4): `signature` (hex) must be
/// HMAC-SHA256 of `message` keyed by one of `user`'s tokens. Owned, so a check can move it onto
/// a blocking thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HmacClaim {
    /// The user the `Authorization` header names.
    pub user: String,
    /// `kind|collection|timestamp|name|tag|`, built by the caller.
    pub message: Vec<u8>,
    /// Hex HMAC-SHA256 of `message`.
    pub signature: String,
}

/// A token request as JSON carries it: `POST /admin/v1/tokens`. Plain strings, so a bad right
/// or pattern gets this module's error message rather than a deserializer's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRequest {
    /// Who the token is for.
    pub user: String,
    /// Collection patterns ([`CollectionPattern`]).
    pub collections: Vec<String>,
    /// Rights by name (`pull`, `push`, `delete`).
    pub rights: Vec<String>,
    /// When set, the token is a federation capability that every member checks offline, valid
    /// for this many seconds (pull only); when absent, a token valid on this node only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub federation_ttl: Option<u64>,
}

impl TokenRequest {
    /// Validates every field.
    pub fn validate(&self) -> Result<NewToken, TokenRequestError> {
        validate_user(&self.user)?;
        if self.collections.is_empty() {
            return Err(TokenRequestError::NoCollections);
        }
        if self.collections.len() > MAX_PATTERNS {
            return Err(TokenRequestError::TooManyPatterns);
        }
        let mut collections = Vec::with_capacity(self.collections.len());
        for text in &self.collections {
            let p = CollectionPattern::parse(text)?;
            if !collections.contains(&p) {
                collections.push(p);
            }
        }
        let rights = normalize_rights(self.rights.iter().map(String::as_str))?;
        if let Some(ttl) = self.federation_ttl {
            if rights != [Right::Pull] {
                return Err(TokenRequestError::FederationPullOnly);
            }
            if ttl == 0 || ttl > MAX_FEDERATION_TTL {
                return Err(TokenRequestError::BadLifetime);
            }
        }
        Ok(NewToken {
            user: self.user.clone(),
            collections,
            rights,
            federation_ttl: self.federation_ttl,
        })
    }
}

/// A validated token request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewToken {
    /// Who the token is for.
    pub user: String,
    /// What it covers (not empty, no duplicates).
    pub collections: Vec<CollectionPattern>,
    /// What it allows (not empty, sorted, no duplicates).
    pub rights: Vec<Right>,
    /// Seconds a federation capability stays valid; `None` for a node-local token.
    pub federation_ttl: Option<u64>,
}

/// Longest life of a federation capability: a year. Revocation works before that, but a
/// bounded life also bounds how long every member must remember a revocation.
pub const MAX_FEDERATION_TTL: u64 = 366 * 24 * 3600;

/// What is known about a token, without its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    /// The first [`ID_LEN`] hex digits of the token's sha256; names it for listing and revoking.
    pub id: String,
    /// Who it belongs to.
    pub user: String,
    /// What it covers.
    pub collections: Vec<CollectionPattern>,
    /// What it allows.
    pub rights: Vec<Right>,
    /// Creation time, unix seconds.
    pub created: u64,
    /// Revocation time, unix seconds; a revoked token allows nothing.
    pub revoked: Option<u64>,
}

impl TokenInfo {
    /// Whether this token allows `right` on `collection`. Checks, in order: revoked, collection,
    /// right.
    pub fn allows(&self, collection: &str, right: Right) -> Result<(), AuthError> {
        if self.revoked.is_some() {
            return Err(AuthError::Revoked {
                id: self.id.clone(),
            });
        }
        if !self.collections.iter().any(|p| p.matches(collection)) {
            return Err(AuthError::WrongCollection {
                id: self.id.clone(),
                collection: collection.to_owned(),
            });
        }
        if !self.rights.contains(&right) {
            return Err(AuthError::MissingRight {
                id: self.id.clone(),
                right,
            });
        }
        Ok(())
    }
}

/// A token just created: the secret (shown this once) and its info.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedToken {
    /// The secret: 40 lowercase hex digits, the form sregistry clients expect.
    pub token: String,
    /// Everything else.
    #[serde(flatten)]
    pub info: TokenInfo,
}

impl fmt::Debug for CreatedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreatedToken")
            .field("token", &"<secret>")
            .field("info", &self.info)
            .finish()
    }
}

/// Why a presented token does not allow a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No token matches: never issued here, mistyped, or an HMAC signature no token of the named
    /// user produced.
    #[error("the token is not valid on this node")]
    Unknown,
    /// The token was revoked.
    #[error("token {id} has been revoked")]
    Revoked {
        /// The token's id.
        id: String,
    },
    /// The token does not cover the collection.
    #[error("token {id} does not cover collection {collection:?}")]
    WrongCollection {
        /// The token's id.
        id: String,
        /// The collection asked for.
        collection: String,
    },
    /// A federation capability past its expiry.
    #[error("token {id} has expired")]
    Expired {
        /// The token's id.
        id: String,
    },
    /// The token covers the collection but not this right.
    #[error("token {id} does not grant the {right} right")]
    MissingRight {
        /// The token's id.
        id: String,
        /// The right asked for.
        right: Right,
    },
}

impl AuthError {
    /// A stable machine-readable name: `unknown`, `revoked`, `expired`, `wrong_collection`,
    /// `missing_right`.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::Unknown => "unknown",
            AuthError::Revoked { .. } => "revoked",
            AuthError::Expired { .. } => "expired",
            AuthError::WrongCollection { .. } => "wrong_collection",
            AuthError::MissingRight { .. } => "missing_right",
        }
    }
}

/// The answer to "does this credential allow this?".
pub type AuthResult = Result<TokenInfo, AuthError>;

/// One collection's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectionInfo {
    /// The collection name.
    pub name: String,
    /// Private collections are pulled only with a token that has the `pull` right.
    pub private: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rights_parse_with_clear_errors() {
        assert_eq!(
            Right::parse_list("push, pull,push"),
            Ok(vec![Right::Pull, Right::Push])
        );
        let e = Right::parse_list("pull,fly").expect_err("fly").to_string();
        assert!(
            e.contains("\"fly\"") && e.contains("pull, push, delete"),
            "{e}"
        );
        let e = Right::parse_list(" , ").expect_err("empty").to_string();
        assert!(e.contains("at least one right"), "{e}");
        assert!(Right::from_str("PULL").is_err(), "rights are lowercase");
    }

    #[test]
    fn patterns_parse_and_match() {
        let cases: [(&str, &[&str], &[&str]); 5] = [
            ("*", &["lab-a", "x"], &[]),
            ("lab-a", &["lab-a"], &["lab-ab", "lab", "lab-b"]),
            ("lab-a/*", &["lab-a"], &["lab-ab", "lab-b"]),
            ("lab-*", &["lab-a", "lab-bio"], &["lab", "labs", "other"]),
            ("lab*", &["lab", "labs", "lab-a"], &["la", "xlab"]),
        ];
        for (text, yes, no) in cases {
            let p = CollectionPattern::parse(text).expect(text);
            assert_eq!(p.as_str(), text);
            for c in yes {
                assert!(p.matches(c), "{text} should match {c}");
            }
            for c in no {
                assert!(!p.matches(c), "{text} should not match {c}");
            }
        }
        for bad in [
            "", "Lab-A", "lab_a", "lab.a", "lab-a/", "lab-a/b", "lab--*", "-*", "a*b", "**",
            "lab-a/**", "../x", "lab a",
        ] {
            let e = CollectionPattern::parse(bad).expect_err(bad).to_string();
            assert!(e.contains("invalid collection pattern"), "{bad}: {e}");
        }
        let long = "a".repeat(40);
        assert!(CollectionPattern::parse(&long).is_err());
        // Serde goes through the same checks.
        assert!(serde_json::from_str::<CollectionPattern>("\"lab_a\"").is_err());
        let p: CollectionPattern = serde_json::from_str("\"lab-*\"").expect("pattern");
        assert_eq!(serde_json::to_string(&p).expect("json"), "\"lab-*\"");
    }

    #[test]
    fn requests_validate_every_field() {
        let ok = TokenRequest {
            user: "alice".into(),
            collections: vec!["lab-a".into(), "lab-a".into(), "lab-*".into()],
            rights: vec!["push".into(), "pull".into()],
            federation_ttl: None,
        };
        let v = ok.validate().expect("valid");
        assert_eq!(v.collections.len(), 2, "duplicates dropped");
        assert_eq!(v.rights, vec![Right::Pull, Right::Push]);
        for (req, want) in [
            (
                TokenRequest {
                    user: "Alice".into(),
                    ..ok.clone()
                },
                "invalid user name",
            ),
            (
                TokenRequest {
                    user: String::new(),
                    ..ok.clone()
                },
                "invalid user name",
            ),
            (
                TokenRequest {
                    collections: vec![],
                    ..ok.clone()
                },
                "at least one collection",
            ),
            (
                TokenRequest {
                    rights: vec![],
                    ..ok.clone()
                },
                "at least one right",
            ),
            (
                TokenRequest {
                    rights: vec!["admin".into()],
                    ..ok.clone()
                },
                "valid rights are pull, push, delete",
            ),
            (
                TokenRequest {
                    federation_ttl: Some(3600),
                    ..ok.clone()
                },
                "grants pull only",
            ),
            (
                TokenRequest {
                    rights: vec!["pull".into()],
                    federation_ttl: Some(0),
                    ..ok.clone()
                },
                "between one second and a year",
            ),
            (
                TokenRequest {
                    collections: vec!["x".into(); MAX_PATTERNS + 1],
                    ..ok.clone()
                },
                "at most",
            ),
        ] {
            let e = req.validate().expect_err(want).to_string();
            assert!(e.contains(want), "{req:?}: {e}");
        }
    }

    #[test]
    fn allows_checks_revoked_then_collection_then_right() {
        let mut info = TokenInfo {
            id: "0badcafe".into(),
            user: "alice".into(),
            collections: vec![CollectionPattern::parse("lab-a/*").expect("p")],
            rights: vec![Right::Pull],
            created: 1,
            revoked: None,
        };
        assert_eq!(info.allows("lab-a", Right::Pull), Ok(()));
        let e = info
            .allows("lab-b", Right::Push)
            .expect_err("wrong collection");
        assert_eq!(e.reason(), "wrong_collection");
        assert_eq!(
            info.allows("lab-a", Right::Push)
                .expect_err("right")
                .reason(),
            "missing_right"
        );
        info.revoked = Some(2);
        assert_eq!(
            info.allows("lab-a", Right::Pull)
                .expect_err("revoked")
                .reason(),
            "revoked"
        );
    }

    #[test]
    fn created_token_debug_hides_the_secret() {
        let c = CreatedToken {
            token: "5027225717bf0030465db1e7099e496022c42181".into(),
            info: TokenInfo {
                id: "12345678".into(),
                user: "u".into(),
                collections: vec![],
                rights: vec![],
                created: 0,
                revoked: None,
            },
        };
        assert!(!format!("{c:?}").contains("5027225717"));
    }
}
