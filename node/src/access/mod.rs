//! The federation's access state on this node: the signed collection policies and capability
//! revocations every member enforces, and the capabilities this node issued.
//!
//! Records come from two places. This node signs them when its institution owns the collection
//! (`collection set-private`, `token issue`, `token revoke`); then they are stored and sent to
//! the network through [`AccessStore::subscribe`]. Peers send them over `/shubnet/access/1`;
//! then [`AccessStore::accept`] checks each against the current roster before storing it: a
//! policy only from a publisher key of the institution owning its collection, a revocation only
//! from a key of some member (it binds capabilities of that member only). The newest policy of
//! a collection wins on every member whatever order records arrive in.
//!
//! The trees live in `accounts/`, beside the tokens, not in the derived index: an owner's
//! policies are part of what `shubnet repair` may not lose.
//!
//! A node outside a federation has no roster and so no owner to sign for: its per-node flag
//! (`tokens::TokenStore::set_private`) is all the privacy there is, and a node that joins
//! publishes the private flags of collections it owns ([`AccessStore::publish_local_flags`]).
//!
//! Owns the trees of [`crate::db::AccessTrees`]. Must not decide whether a request may see
//! content (that is `visibility` and the gateway) nor touch the network.

use crate::clock::unix_now;
use crate::registry::{Registry, RegistryError};
use crate::tokens::{TokenStore, TokenStoreError};
use serde::{Deserialize, Serialize};
use shubnet_protocol::access::{
    AccessError, CAPABILITY_ID_LEN, CAPABILITY_PREFIX, Capability, MAX_LIFE_SECS, Revocation,
    SignedPolicy,
};
use shubnet_protocol::roster::Roster;
use shubnet_protocol::sync::{AccessRecord, access_digest};
use shubnet_protocol::tokens::{AuthError, CollectionPattern, Right, TokenInfo};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::broadcast;

#[cfg(test)]
mod tests;

/// Why an access operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AccessStoreError {
    /// The database failed.
    #[error("accounts database: {0}")]
    Db(#[from] sled::Error),
    /// The roster or keys could not be read.
    #[error("registry: {0}")]
    Registry(#[from] RegistryError),
    /// The local flags could not be read.
    #[error(transparent)]
    Tokens(#[from] TokenStoreError),
    /// A record does not decode or verify.
    #[error(transparent)]
    Record(#[from] AccessError),
    /// A record signed by a key the roster does not allow for it.
    #[error("{what} signed by a key that may not sign it")]
    NotAuthorized {
        /// Which kind of record.
        what: &'static str,
    },
    /// Another institution owns the collection.
    #[error(
        "collection {collection} belongs to institution {owner}; only its owner sets its \
         visibility for the federation (ask them, or run this on one of their nodes)"
    )]
    NotOwner {
        /// The collection.
        collection: String,
        /// Its owner's institution id.
        owner: String,
    },
    /// Issuing needs a federation.
    #[error(
        "capability tokens are signed for a federation, and this node is in none (or not in \
         its roster); use `shubnet token create` for a token valid on this node"
    )]
    NoFederation,
    /// No capability of this node has that id.
    #[error("no capability with id {0} was issued by this node")]
    NotFound(String),
    /// A capability or revocation expiring later than members accept.
    #[error("{what} expires in more than {max_days} days, the longest members accept")]
    TooLong {
        /// Which kind of record.
        what: &'static str,
        /// The limit, in days.
        max_days: u64,
    },
    /// A key already has as many revocations in force as one key may.
    #[error("the signer already has {max} revocations in force, the most one key may have")]
    TooManyRevocations {
        /// The limit.
        max: usize,
    },
    /// A stored record does not read back.
    #[error("damaged access record {0}")]
    Corrupt(String),
}

type Result<T, E = AccessStoreError> = std::result::Result<T, E>;

/// Most revocations in force signed by one key. With [`MAX_LIFE_SECS`] this bounds what a
/// member can make every other member store: a member that revokes more simply issued too many
/// capabilities, and the excess is refused rather than stored.
pub const MAX_REVOCATIONS_PER_KEY: usize = 50_000;

/// What this node remembers of a capability it issued (the token itself is not kept).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Issued {
    user: String,
    collections: Vec<CollectionPattern>,
    rights: Vec<Right>,
    created: u64,
    expires: u64,
    revoked: Option<u64>,
}

/// A new capability: the bearer text (shown once) and what it grants.
#[derive(Debug, Clone)]
pub struct IssuedCapability {
    /// The bearer token, `shubcap1_…`.
    pub token: String,
    /// Its listing entry.
    pub info: TokenInfo,
    /// Unix seconds after which it stops working.
    pub expires: u64,
}

/// Cheap to clone; every clone works on the same trees.
#[derive(Clone, Debug)]
pub struct AccessStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    trees: crate::db::AccessTrees,
    registry: Registry,
    tokens: TokenStore,
    events: broadcast::Sender<AccessRecord>,
    /// Revocations in force per signing key, counted from the tree on first use.
    revocations_per_key: Mutex<Option<HashMap<[u8; 32], usize>>>,
}

fn micros_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

impl AccessStore {
    /// The access state in `tokens`' database, judged against `registry`'s roster.
    pub fn open(tokens: &TokenStore, registry: Registry) -> Result<Self> {
        let (events, _) = broadcast::channel(256);
        Ok(Self {
            inner: Arc::new(Inner {
                trees: tokens.accounts().access_trees()?,
                registry,
                tokens: tokens.clone(),
                events,
                revocations_per_key: Mutex::new(None),
            }),
        })
    }

    /// Records this node signs from now on, for the network to push to members.
    pub fn subscribe(&self) -> broadcast::Receiver<AccessRecord> {
        self.inner.events.subscribe()
    }

    fn roster(&self) -> Result<Option<Roster>> {
        Ok(self.inner.registry.roster()?.map(|r| r.body))
    }

    // ---- reading ----

    /// The policy in force for `collection`, if any was signed.
    pub fn policy(&self, collection: &str) -> Result<Option<SignedPolicy>> {
        match self.inner.trees.policies.get(collection.as_bytes())? {
            None => Ok(None),
            Some(v) => Ok(Some(SignedPolicy::decode_stored(&v).map_err(|e| {
                AccessStoreError::Corrupt(format!("policy of {collection}: {e}"))
            })?)),
        }
    }

    /// Collections whose owner made them private for the whole federation.
    pub fn private_collections(&self) -> Result<HashSet<String>> {
        let mut out = HashSet::new();
        for item in self.inner.trees.policies.iter() {
            let (k, v) = item?;
            let p = SignedPolicy::decode_stored(&v).map_err(|e| {
                AccessStoreError::Corrupt(format!("policy {}: {e}", String::from_utf8_lossy(&k)))
            })?;
            if p.private {
                out.insert(p.collection);
            }
        }
        Ok(out)
    }

    /// Every record that replicates, expired revocations left out (and dropped).
    pub fn records(&self) -> Result<Vec<AccessRecord>> {
        let mut out = Vec::new();
        for item in self.inner.trees.policies.iter() {
            out.push(AccessRecord::Policy(item?.1.to_vec()));
        }
        let now = unix_now();
        for item in self.inner.trees.revocations.iter() {
            let (k, v) = item?;
            match Revocation::decode(&v) {
                Ok(r) if r.expires <= now => {
                    if self.inner.trees.revocations.remove(k)?.is_some() {
                        self.count_revocation(&r.key, false)?;
                    }
                }
                Ok(_) => out.push(AccessRecord::Revocation(v.to_vec())),
                Err(e) => return Err(AccessStoreError::Corrupt(format!("revocation: {e}"))),
            }
        }
        Ok(out)
    }

    /// The digest peers compare before sending records.
    pub fn digest(&self) -> Result<[u8; 32]> {
        Ok(access_digest(&self.records()?))
    }

    /// The gateway URL of the institution owning `collection`, when that is not this node's
    /// institution and it published one: where a refused client can go instead.
    pub fn owner_gateway(&self, collection: &str) -> Result<Option<String>> {
        let Some(roster) = self.roster()? else {
            return Ok(None);
        };
        let Some(owner) = roster.owner_of(collection) else {
            return Ok(None);
        };
        if self.my_member(&roster).is_some_and(|m| m.id == owner.id) {
            return Ok(None);
        }
        Ok(owner.gateway.clone())
    }

    /// True when another institution owns `collection`: this node's own tokens then grant
    /// nothing on it, since only the owner decides who may read its images.
    pub fn owned_elsewhere(&self, collection: &str) -> Result<bool> {
        let Some(roster) = self.roster()? else {
            return Ok(false);
        };
        let Some(owner) = roster.owner_of(collection) else {
            return Ok(false);
        };
        Ok(self.my_member(&roster).is_none_or(|m| m.id != owner.id))
    }

    // ---- from peers ----

    /// Checks a record a peer sent against the current roster and stores it if it is new and
    /// wins. `Ok(true)` when it changed what this node enforces.
    pub fn accept(&self, record: &AccessRecord) -> Result<bool> {
        let roster = self.roster()?.ok_or(AccessStoreError::NoFederation)?;
        match record {
            AccessRecord::Policy(b) => {
                let p = SignedPolicy::decode(b)?;
                if roster.may_publish(&p.key, &p.collection).is_none() {
                    return Err(AccessStoreError::NotAuthorized { what: "a policy" });
                }
                self.store_policy(&p)
            }
            AccessRecord::Revocation(b) => {
                let r = Revocation::decode(b)?;
                if roster.member_for_key(&r.key).is_none() {
                    return Err(AccessStoreError::NotAuthorized {
                        what: "a revocation",
                    });
                }
                self.store_revocation(&r)
            }
        }
    }

    fn store_policy(&self, p: &SignedPolicy) -> Result<bool> {
        let tree = &self.inner.trees.policies;
        let key = p.collection.as_bytes();
        let mut current = tree.get(key)?;
        loop {
            if let Some(cur) = &current
                && let Ok(old) = SignedPolicy::decode_stored(cur)
                && !p.supersedes(&old)
            {
                return Ok(false);
            }
            match tree.compare_and_swap(key, current.as_ref(), Some(p.encode()))? {
                Ok(()) => break,
                Err(e) => current = e.current,
            }
        }
        tree.flush()?;
        tracing::info!(collection = %p.collection, private = p.private, seq = p.seq, "collection policy in force");
        Ok(true)
    }

    fn store_revocation(&self, r: &Revocation) -> Result<bool> {
        let now = unix_now();
        if r.expires <= now {
            return Ok(false);
        }
        if r.expires > now.saturating_add(MAX_LIFE_SECS) {
            return Err(AccessStoreError::TooLong {
                what: "a revocation",
                max_days: MAX_LIFE_SECS / 86_400,
            });
        }
        let mut key = r.id.to_vec();
        key.extend_from_slice(&r.key);
        let tree = &self.inner.trees.revocations;
        if tree.contains_key(&key)? {
            return Ok(false);
        }
        // Counted before the insert, under the lock, so concurrent pushes cannot overshoot.
        if !self.count_revocation(&r.key, true)? {
            return Err(AccessStoreError::TooManyRevocations {
                max: MAX_REVOCATIONS_PER_KEY,
            });
        }
        let fresh = tree
            .compare_and_swap(key, None::<&[u8]>, Some(r.encode()))?
            .is_ok();
        if fresh {
            tree.flush()?;
            tracing::info!(id = %hex::encode(r.id), "capability revocation in force");
        } else {
            self.count_revocation(&r.key, false)?;
        }
        Ok(fresh)
    }

    /// Adds one to (`add`) or takes one from `key`'s count of revocations in force. Adding
    /// fails (false) when the key is at [`MAX_REVOCATIONS_PER_KEY`].
    fn count_revocation(&self, key: &[u8; 32], add: bool) -> Result<bool> {
        let mut guard = self
            .inner
            .revocations_per_key
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if guard.is_none() {
            let mut counts = HashMap::new();
            for item in self.inner.trees.revocations.iter() {
                let (k, _) = item?;
                if let Some(signer) = k
                    .get(CAPABILITY_ID_LEN..)
                    .and_then(|s| <[u8; 32]>::try_from(s).ok())
                {
                    *counts.entry(signer).or_insert(0usize) += 1;
                }
            }
            *guard = Some(counts);
        }
        let counts = guard.get_or_insert_with(HashMap::new);
        let n = counts.entry(*key).or_insert(0);
        if add {
            if *n >= MAX_REVOCATIONS_PER_KEY {
                return Ok(false);
            }
            *n += 1;
        } else {
            *n = n.saturating_sub(1);
        }
        Ok(true)
    }

    // ---- signed here ----

    /// This node's institution in `roster`, if its publisher key is listed.
    fn my_member<'r>(&self, roster: &'r Roster) -> Option<&'r shubnet_protocol::roster::Member> {
        let key = self
            .inner
            .registry
            .keys()
            .publisher
            .verifying_key()
            .to_bytes();
        roster.member_for_key(&key)
    }

    /// Signs and spreads `collection`'s visibility if this node's institution owns it. `Ok(None)`
    /// when there is no federation or no member owns the collection: the per-node flag is then
    /// all there is. Another institution's collection is [`AccessStoreError::NotOwner`].
    pub fn set_visibility(&self, collection: &str, private: bool) -> Result<Option<SignedPolicy>> {
        let Some(roster) = self.roster()? else {
            return Ok(None);
        };
        let Some(owner) = roster.owner_of(collection) else {
            return Ok(None);
        };
        let mine = self.my_member(&roster).is_some_and(|m| m.id == owner.id);
        if !mine {
            return Err(AccessStoreError::NotOwner {
                collection: collection.to_owned(),
                owner: owner.id.clone(),
            });
        }
        self.sign_policy(collection, private).map(Some)
    }

    fn sign_policy(&self, collection: &str, private: bool) -> Result<SignedPolicy> {
        let prev = self.policy(collection)?.map_or(0, |p| p.seq);
        let seq = micros_now().max(prev.saturating_add(1));
        let p = SignedPolicy::sign(
            collection,
            private,
            seq,
            &self.inner.registry.keys().publisher,
        )?;
        self.store_policy(&p)?;
        let _ = self.inner.events.send(AccessRecord::Policy(p.encode()));
        Ok(p)
    }

    /// Publishes, as signed policies, the private flags of collections this node's institution
    /// owns that the federation does not yet hold as private: the upgrade from per-node flags,
    /// and a node that set a flag before it joined. A newer signed public policy (the owner
    /// changed its mind on another node) is left alone. Returns how many were published.
    pub fn publish_local_flags(&self) -> Result<usize> {
        let Some(roster) = self.roster()? else {
            return Ok(0);
        };
        let Some(me) = self.my_member(&roster).map(|m| m.id.clone()) else {
            return Ok(0);
        };
        let mut published = 0;
        for c in self.inner.tokens.collections()? {
            if !c.private || roster.owner_of(&c.name).is_none_or(|o| o.id != me) {
                continue;
            }
            let changed = self.inner.tokens.collection_changed(&c.name)?;
            let stale = match self.policy(&c.name)? {
                None => true,
                Some(p) => !p.private && p.seq < changed.saturating_mul(1_000_000),
            };
            if stale {
                self.sign_policy(&c.name, true)?;
                tracing::info!(collection = %c.name, "published this node's private flag to the federation");
                published += 1;
            }
        }
        Ok(published)
    }

    /// Issues a capability for `user` valid until `expires`, signed with this node's publisher
    /// key. The token is returned once and not stored.
    pub fn issue(
        &self,
        user: &str,
        collections: Vec<CollectionPattern>,
        rights: Vec<Right>,
        expires: u64,
    ) -> Result<IssuedCapability> {
        let roster = self.roster()?.ok_or(AccessStoreError::NoFederation)?;
        self.my_member(&roster)
            .ok_or(AccessStoreError::NoFederation)?;
        if expires > unix_now().saturating_add(MAX_LIFE_SECS) {
            return Err(AccessStoreError::TooLong {
                what: "a capability",
                max_days: MAX_LIFE_SECS / 86_400,
            });
        }
        let id: [u8; CAPABILITY_ID_LEN] = crate::secrets::random_bytes()
            .map_err(|e| AccessStoreError::Corrupt(format!("random source: {e}")))?;
        let cap = Capability::issue(
            id,
            user,
            collections.clone(),
            rights.clone(),
            expires,
            &self.inner.registry.keys().publisher,
        )?;
        let rec = Issued {
            user: user.to_owned(),
            collections,
            rights,
            created: unix_now(),
            expires,
            revoked: None,
        };
        self.put_issued(&id, &rec)?;
        tracing::info!(id = %cap.id_hex(), user, "capability issued");
        Ok(IssuedCapability {
            token: cap.to_token(),
            info: issued_info(&cap.id_hex(), &rec),
            expires,
        })
    }

    fn put_issued(&self, id: &[u8], rec: &Issued) -> Result<()> {
        let v = serde_json::to_vec(rec)
            .map_err(|e| AccessStoreError::Corrupt(format!("encoding a capability: {e}")))?;
        self.inner.trees.issued.insert(id, v)?;
        self.inner.trees.issued.flush()?;
        Ok(())
    }

    fn get_issued(&self, id: &[u8]) -> Result<Option<Issued>> {
        match self.inner.trees.issued.get(id)? {
            None => Ok(None),
            Some(v) => serde_json::from_slice(&v).map(Some).map_err(|e| {
                AccessStoreError::Corrupt(format!("capability {}: {e}", hex::encode(id)))
            }),
        }
    }

    /// Every capability this node issued, as token listings.
    pub fn issued(&self) -> Result<Vec<TokenInfo>> {
        let mut out = Vec::new();
        for item in self.inner.trees.issued.iter() {
            let (k, _) = item?;
            if let Some(rec) = self.get_issued(&k)? {
                out.push(issued_info(&hex::encode(&k), &rec));
            }
        }
        Ok(out)
    }

    /// True when `id` names a capability (32 hex digits) rather than a node-local token.
    pub fn is_capability_id(id: &str) -> bool {
        id.len() == CAPABILITY_ID_LEN * 2 && id.bytes().all(|b| b.is_ascii_hexdigit())
    }

    /// Revokes a capability this node issued, and spreads the revocation.
    pub fn revoke(&self, id: &str) -> Result<TokenInfo> {
        let raw = hex::decode(id)
            .ok()
            .and_then(|b| <[u8; CAPABILITY_ID_LEN]>::try_from(b).ok())
            .ok_or_else(|| AccessStoreError::NotFound(id.to_owned()))?;
        let mut rec = self
            .get_issued(&raw)?
            .ok_or_else(|| AccessStoreError::NotFound(id.to_owned()))?;
        if rec.revoked.is_none() {
            let r = Revocation::sign(raw, rec.expires, &self.inner.registry.keys().publisher);
            self.store_revocation(&r)?;
            rec.revoked = Some(unix_now());
            self.put_issued(&raw, &rec)?;
            let _ = self.inner.events.send(AccessRecord::Revocation(r.encode()));
            tracing::info!(id, user = %rec.user, "capability revoked");
        }
        Ok(issued_info(id, &rec))
    }

    // ---- checking a presented capability ----

    /// True when `token` looks like a capability (so the node-local store need not be asked).
    pub fn is_capability(token: &str) -> bool {
        token.trim().starts_with(CAPABILITY_PREFIX)
    }

    /// The capability behind `token` if it verifies, its issuer is a member, it has not expired
    /// and it is not revoked; what it covers is not checked here.
    pub fn identify(
        &self,
        token: &str,
    ) -> Result<std::result::Result<(Capability, Roster), AuthError>> {
        let Ok(cap) = Capability::from_token(token) else {
            return Ok(Err(AuthError::Unknown));
        };
        let Some(roster) = self.roster()? else {
            return Ok(Err(AuthError::Unknown));
        };
        let Some(issuer) = roster.member_for_key(&cap.key).map(|m| m.id.clone()) else {
            return Ok(Err(AuthError::Unknown));
        };
        let id = cap.id_hex();
        for item in self.inner.trees.revocations.scan_prefix(cap.id) {
            let (_, v) = item?;
            let Ok(r) = Revocation::decode(&v) else {
                continue;
            };
            if roster
                .member_for_key(&r.key)
                .is_some_and(|m| m.id == issuer)
            {
                return Ok(Err(AuthError::Revoked { id }));
            }
        }
        let now = unix_now();
        if cap.expires <= now {
            return Ok(Err(AuthError::Expired { id }));
        }
        if cap.expires > now.saturating_add(MAX_LIFE_SECS) {
            // Its revocation could not be kept long enough to withdraw it.
            tracing::warn!(
                id,
                "capability refused: it expires later than members accept"
            );
            return Ok(Err(AuthError::Unknown));
        }
        Ok(Ok((cap, roster)))
    }

    /// Whether `token` allows `right` on `collection`: [`Self::identify`], then the grant must
    /// cover it and its issuer must own the collection.
    pub fn authorize(
        &self,
        token: &str,
        collection: &str,
        right: Right,
    ) -> Result<std::result::Result<TokenInfo, AuthError>> {
        let (cap, roster) = match self.identify(token)? {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        };
        let info = capability_info(&cap);
        let owns = roster
            .member_for_key(&cap.key)
            .is_some_and(|m| m.may_publish(collection));
        if !owns || !cap.collections.iter().any(|p| p.matches(collection)) {
            return Ok(Err(AuthError::WrongCollection {
                id: info.id,
                collection: collection.to_owned(),
            }));
        }
        if !cap.grants(collection, right, unix_now()) {
            return Ok(Err(AuthError::MissingRight { id: info.id, right }));
        }
        Ok(Ok(info))
    }

    /// The listing of a presented capability (for `/v1/token-status`).
    pub fn info_of(&self, token: &str) -> Result<std::result::Result<TokenInfo, AuthError>> {
        Ok(self.identify(token)?.map(|(cap, _)| capability_info(&cap)))
    }
}

fn issued_info(id: &str, rec: &Issued) -> TokenInfo {
    TokenInfo {
        id: id.to_owned(),
        user: rec.user.clone(),
        collections: rec.collections.clone(),
        rights: rec.rights.clone(),
        created: rec.created,
        revoked: rec.revoked,
    }
}

fn capability_info(cap: &Capability) -> TokenInfo {
    TokenInfo {
        id: cap.id_hex(),
        user: cap.user.clone(),
        collections: cap.collections.clone(),
        rights: cap.rights.clone(),
        created: 0,
        revoked: None,
    }
}
