//! User tokens and private collections, kept in their own sled database, `accounts/`.
//!
//! Not in `index/`: the index is derived state that `shubnet repair` rebuilds from `blobs/` and
//! `log/`, and may be deleted or set aside when damaged. Tokens and collection settings cannot
//! be derived from anything, so they live apart (directory mode 0700) and survive the loss of
//! the index.
//!
//! A token is 40 lowercase hex digits (160 bits from `/dev/urandom`), the form sregistry clients
//! expect. It is shown once, when created, and never logged. The `tokens-1` tree is keyed by
//! `sha256(token)`; the first 8 hex digits of that hash are the token's id, unique on the node,
//! which `shubnet token list` shows and `shubnet token revoke` takes. The value is a JSON
//! [`Record`]: user, collection patterns, rights, creation and revocation times, and the sealed
//! secret described next. Revoked tokens stay listed (and are refused as revoked).
//!
//! # Hashing, and why there is also a sealed copy
//!
//! Bearer tokens (the library API) only need the hash: the presented token is hashed and looked
//! up. The sregistry client, though, never sends its token: it signs each request with
//! `HMAC-SHA256(key = token, msg = "kind|collection|timestamp|name|tag|")` and sends the user
//! name (client-protocols.md §1.4). Checking that signature needs the token itself (or its HMAC
//! key schedule, which is just as good for forging signatures), and the client cannot be
//! changed. A store holding nothing but hashes could never accept an sregistry push, delete or
//! private pull.
//!
//! So each record also holds the secret **sealed** with a node-local key, `keys/tokens.key`
//! (32 random bytes, 0600, created on first start; see [`crypto`]). The index alone — a copy of
//! `index/`, a backup, a debugging dump — reveals neither the token nor anything that verifies
//! or forges a signature: lookup goes by hash, the secret is encrypted, and the plain token
//! bytes or hex appear nowhere in the database (the tests scan every tree and every file).
//! Someone holding both `index/` and `keys/` holds every token, exactly as they would hold the
//! node's publisher key; that is the boundary every node secret already has.
//! [`TokenStore::authorize_hmac`] opens the sealed copies of the named user's tokens, in memory
//! and only for the check; the raw secret never leaves this module.
//!
//! Losing `keys/tokens.key` (or restoring `index/` on a node with another key) leaves bearer
//! tokens working and makes HMAC checks fail for the affected tokens, with a warning naming
//! them; re-issue those tokens.
//!
//! # Timing
//!
//! The presented secret is hashed before it is compared with anything, and the lookup compares
//! hashes, so timing reveals nothing useful about the secret (it would take a sha256 preimage).
//! HMAC signatures, and a sealed copy against its hash, are compared in constant time
//! ([`crypto::ct_eq`]).
//!
//! # Private collections
//!
//! `collections-1` maps a collection name to a JSON [`CollectionRecord`]; a collection never set
//! is public. Pulling a private collection needs a token with the `pull` right on it; enforcing
//! that is the job of the client APIs.
//!
//! `shubnet repair` leaves `accounts/` alone, and deleting `index/` loses no token.
//!
//! Owns the records of `accounts/` ([`crate::db::AccountTrees`]) and the sealing key file. Must
//! not open the index or any other tree, and never logs or stores a plain token.

pub mod backup;
pub mod crypto;
#[cfg(test)]
mod tests;

use crate::clock::unix_now;
use crate::db::Accounts;
use crate::paths::DataDir;
use crate::secrets::SecretError;
use crypto::{SECRET_LEN, SealKey, Sealed};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use shubnet_protocol::reference;
use shubnet_protocol::tokens::{
    AuthError, CollectionInfo, CollectionPattern, CreatedToken, HmacClaim, ID_LEN, NewToken, Right,
    TokenInfo, validate_user,
};
use std::sync::Arc;

/// How many fresh secrets `create` tries before giving up on a unique id (a clash needs two
/// tokens sharing 32 bits of hash; eight in a row means something is broken).
const CREATE_ATTEMPTS: usize = 8;

/// Why a token store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TokenStoreError {
    /// The credential does not allow the request.
    #[error(transparent)]
    Denied(#[from] AuthError),
    /// The request is malformed (a bad collection name or id).
    #[error("{0}")]
    Invalid(String),
    /// No token has this id.
    #[error("no token with id {0}; `shubnet token list` shows the ids")]
    NotFound(String),
    /// The sealing key could not be loaded or created.
    #[error("token sealing key: {0}")]
    Key(#[from] SecretError),
    /// A stored record cannot be read.
    #[error("damaged token record {0}")]
    Corrupt(String),
    /// The index database failed.
    #[error("index: {0}")]
    Index(#[from] sled::Error),
    /// The random source failed, or no unique id could be found.
    #[error("{0}")]
    Internal(String),
}

/// Result alias for the token store.
pub type Result<T, E = TokenStoreError> = std::result::Result<T, E>;

/// One token as stored under its hash.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    /// Who the token belongs to.
    pub user: String,
    /// What it covers.
    pub collections: Vec<CollectionPattern>,
    /// What it allows.
    pub rights: Vec<Right>,
    /// Creation time, unix seconds.
    pub created: u64,
    /// Revocation time, unix seconds.
    pub revoked: Option<u64>,
    /// The secret sealed with `keys/tokens.key`: hex of nonce ‖ ciphertext.
    pub sealed: String,
}

/// One collection's settings as stored.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct CollectionRecord {
    /// Pulls need a token with the `pull` right.
    pub private: bool,
    /// When this was last set, unix seconds.
    pub changed: u64,
}

/// A cheap-to-clone handle to the token and collection trees.
#[derive(Clone, Debug)]
pub struct TokenStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Keeps the `accounts/` database open for as long as the store lives.
    db: Accounts,
    tokens: sled::Tree,
    collections: sled::Tree,
    key: SealKey,
}

fn id_of(hash: &[u8]) -> String {
    hex::encode(&hash[..ID_LEN / 2])
}

fn info_of(hash: &[u8], r: &Record) -> TokenInfo {
    TokenInfo {
        id: id_of(hash),
        user: r.user.clone(),
        collections: r.collections.clone(),
        rights: r.rights.clone(),
        created: r.created,
        revoked: r.revoked,
    }
}

fn decode(hash: &[u8], v: &[u8]) -> Result<Record> {
    serde_json::from_slice(v).map_err(|e| TokenStoreError::Corrupt(format!("{}: {e}", id_of(hash))))
}

fn encode(r: &Record) -> Result<Vec<u8>> {
    serde_json::to_vec(r).map_err(|e| TokenStoreError::Internal(format!("encoding a token: {e}")))
}

fn random<const N: usize>() -> Result<[u8; N]> {
    crate::secrets::random_bytes::<N>().map_err(|e| TokenStoreError::Internal(e.to_string()))
}

fn hash_of(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn check_collection(name: &str) -> Result<()> {
    reference::validate_collection(name)
        .map_err(|e| TokenStoreError::Invalid(format!("invalid collection {name:?}: {e}")))
}

impl TokenStore {
    /// Opens `accounts/` (made private, 0700) with the sealing key from `keys/tokens.key`
    /// (created on first use).
    pub fn open(dir: &DataDir) -> Result<Self> {
        use std::os::unix::fs::PermissionsExt;
        let key = SealKey::load_or_create(&dir.seal_key())?;
        let path = dir.accounts();
        let accounts = Accounts::open(&path)?;
        if let Err(e) = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700)) {
            tracing::warn!(path = %path.display(), error = %e, "could not make accounts/ private");
        }
        Self::with_key(&accounts, key)
    }

    /// The token store over `accounts` with the sealing key `key`.
    pub fn with_key(accounts: &Accounts, key: SealKey) -> Result<Self> {
        let trees = accounts.trees()?;
        Ok(Self {
            inner: Arc::new(Inner {
                db: accounts.clone(),
                tokens: trees.tokens,
                collections: trees.collections,
                key,
            }),
        })
    }

    /// Creates a token with a fresh random secret.
    pub fn create(&self, req: &NewToken) -> Result<CreatedToken> {
        for _ in 0..CREATE_ATTEMPTS {
            if let Some(created) = self.insert(random::<SECRET_LEN>()?, req)? {
                return Ok(created);
            }
        }
        Err(TokenStoreError::Internal(format!(
            "no unique token id after {CREATE_ATTEMPTS} attempts"
        )))
    }

    /// Stores a token with the given secret; `None` if its id is taken.
    pub(crate) fn insert(
        &self,
        secret: [u8; SECRET_LEN],
        req: &NewToken,
    ) -> Result<Option<CreatedToken>> {
        validate_user(&req.user).map_err(|e| TokenStoreError::Invalid(e.to_string()))?;
        let token = hex::encode(secret);
        let hash = hash_of(&token);
        if self
            .inner
            .tokens
            .scan_prefix(&hash[..ID_LEN / 2])
            .next()
            .is_some()
        {
            return Ok(None);
        }
        let sealed = self.inner.key.seal(&hash, random()?, &secret);
        let record = Record {
            user: req.user.clone(),
            collections: req.collections.clone(),
            rights: req.rights.clone(),
            created: unix_now(),
            revoked: None,
            sealed: sealed.to_hex(),
        };
        let stored =
            self.inner
                .tokens
                .compare_and_swap(hash, None::<&[u8]>, Some(encode(&record)?))?;
        if stored.is_err() {
            return Ok(None);
        }
        self.inner.tokens.flush()?;
        let info = info_of(&hash, &record);
        tracing::info!(id = %info.id, user = %info.user, "token created");
        Ok(Some(CreatedToken { token, info }))
    }

    /// Every token, oldest first (then by id).
    pub fn list(&self) -> Result<Vec<TokenInfo>> {
        let mut out = Vec::new();
        for item in self.inner.tokens.iter() {
            let (k, v) = item?;
            out.push(info_of(&k, &decode(&k, &v)?));
        }
        out.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
        Ok(out)
    }

    /// Revokes the token with `id` (8 hex digits). Revoking twice keeps the first time.
    pub fn revoke(&self, id: &str) -> Result<TokenInfo> {
        let prefix = hex::decode(id)
            .ok()
            .filter(|p| p.len() == ID_LEN / 2)
            .ok_or_else(|| TokenStoreError::Invalid(format!("invalid token id {id:?}")))?;
        let mut found = self.inner.tokens.scan_prefix(&prefix);
        let Some(item) = found.next() else {
            return Err(TokenStoreError::NotFound(id.to_owned()));
        };
        if found.next().is_some() {
            return Err(TokenStoreError::Internal(format!(
                "two tokens share the id {id}; the index is damaged"
            )));
        }
        let (hash, mut old) = item?;
        loop {
            let mut rec = decode(&hash, &old)?;
            if rec.revoked.is_some() {
                return Ok(info_of(&hash, &rec));
            }
            rec.revoked = Some(unix_now());
            match self
                .inner
                .tokens
                .compare_and_swap(&hash, Some(&old), Some(encode(&rec)?))?
            {
                Ok(()) => {
                    self.inner.tokens.flush()?;
                    tracing::info!(id = %id_of(&hash), user = %rec.user, "token revoked");
                    return Ok(info_of(&hash, &rec));
                }
                Err(e) => match e.current {
                    Some(cur) => old = cur,
                    None => return Err(TokenStoreError::NotFound(id.to_owned())),
                },
            }
        }
    }

    /// The token behind a presented secret, if it exists and is not revoked.
    pub fn identify(&self, token: &str) -> Result<TokenInfo> {
        let hash = hash_of(token.trim());
        let Some(v) = self.inner.tokens.get(hash)? else {
            return Err(AuthError::Unknown.into());
        };
        let info = info_of(&hash, &decode(&hash, &v)?);
        if info.revoked.is_some() {
            return Err(AuthError::Revoked { id: info.id }.into());
        }
        Ok(info)
    }

    /// Whether the presented secret `token` allows `right` on `collection`.
    pub fn authorize(&self, token: &str, collection: &str, right: Right) -> Result<TokenInfo> {
        let info = self.identify(token)?;
        info.allows(collection, right)?;
        Ok(info)
    }

    /// Whether the claim's signature was made with one of its user's tokens, and that token
    /// allows `right` on `collection`. A signature no token of the user made is
    /// [`AuthError::Unknown`]; one made by a revoked token is [`AuthError::Revoked`].
    pub fn authorize_hmac(
        &self,
        claim: &HmacClaim,
        collection: &str,
        right: Right,
    ) -> Result<TokenInfo> {
        let (user, message) = (claim.user.as_str(), claim.message.as_slice());
        let Some(sig) = hex::decode(claim.signature.trim())
            .ok()
            .filter(|s| s.len() == 32)
        else {
            return Err(AuthError::Unknown.into());
        };
        for item in self.inner.tokens.iter() {
            let (hash, v) = item?;
            let rec = decode(&hash, &v)?;
            if rec.user != user {
                continue;
            }
            let Ok(hash) = <[u8; 32]>::try_from(hash.as_ref()) else {
                return Err(TokenStoreError::Corrupt(hex::encode(&hash)));
            };
            let secret = Sealed::from_hex(&rec.sealed).and_then(|s| self.inner.key.open(&hash, &s));
            let Some(secret) = secret else {
                tracing::warn!(
                    id = %id_of(&hash),
                    user,
                    "cannot open the sealed copy of this token with keys/tokens.key; \
                     HMAC (sregistry) requests signed with it fail; re-issue it"
                );
                continue;
            };
            let mac = crypto::hmac_sha256(secret.as_bytes(), &[message]);
            if crypto::ct_eq(&mac, &sig) {
                let info = info_of(&hash, &rec);
                info.allows(collection, right)?;
                return Ok(info);
            }
        }
        Err(AuthError::Unknown.into())
    }

    /// Makes `name` private or public.
    pub fn set_private(&self, name: &str, private: bool) -> Result<CollectionInfo> {
        check_collection(name)?;
        let rec = CollectionRecord {
            private,
            changed: unix_now(),
        };
        let v = serde_json::to_vec(&rec)
            .map_err(|e| TokenStoreError::Internal(format!("encoding a collection: {e}")))?;
        self.inner.collections.insert(name.as_bytes(), v)?;
        self.inner.collections.flush()?;
        tracing::info!(collection = name, private, "collection visibility set");
        Ok(CollectionInfo {
            name: name.to_owned(),
            private,
        })
    }

    /// When `name`'s flag was last set, unix seconds (0 when never).
    pub fn collection_changed(&self, name: &str) -> Result<u64> {
        match self.inner.collections.get(name.as_bytes())? {
            None => Ok(0),
            Some(v) => Ok(decode_collection(name.as_bytes(), &v)?.changed),
        }
    }

    /// The `accounts/` database, for the other parts that keep their trees in it.
    pub fn accounts(&self) -> Accounts {
        self.inner.db.clone()
    }

    /// Whether `name` is private; collections never set are public.
    pub fn is_private(&self, name: &str) -> Result<bool> {
        match self.inner.collections.get(name.as_bytes())? {
            None => Ok(false),
            Some(v) => Ok(decode_collection(name.as_bytes(), &v)?.private),
        }
    }

    /// Every collection with settings, by name.
    pub fn collections(&self) -> Result<Vec<CollectionInfo>> {
        let mut out = Vec::new();
        for item in self.inner.collections.iter() {
            let (k, v) = item?;
            out.push(CollectionInfo {
                name: String::from_utf8_lossy(&k).into_owned(),
                private: decode_collection(&k, &v)?.private,
            });
        }
        Ok(out)
    }
}

fn decode_collection(name: &[u8], v: &[u8]) -> Result<CollectionRecord> {
    serde_json::from_slice(v).map_err(|e| {
        TokenStoreError::Corrupt(format!("collection {}: {e}", String::from_utf8_lossy(name)))
    })
}
