//! The roster chain's side of the registry: founding and joining a federation, admins'
//! changes and co-signatures, and the one-line text form admins pass roster versions in.
//!
//! Owns the roster trees' writes and the federation id in `config.toml`. Must not accept
//! manifests (the parent module does) or talk to the network.

use super::{LocalEvent, Registry, RegistryError, Result, db, io, log, now};
use crate::config::NodeConfig;
use base64::Engine;
use shubnet_protocol::roster::{
    JoinRequest, Member, Roster, RosterError, SignedRoster, verify_chain, verify_genesis,
    verify_next,
};

/// Prefix of a signed roster passed between admins as one line of text.
pub const ROSTER_LINE_PREFIX: &str = "shubnet-roster-v1.";

/// What `admin` and `sign` produce: the roster is either accepted or waits for signatures.
#[derive(Debug, Clone)]
pub enum RosterOutcome {
    /// Enough signatures: this version is now current.
    Accepted(SignedRoster),
    /// More admin signatures are needed; pass the line to the other admins.
    Pending {
        /// The partially signed roster.
        roster: SignedRoster,
        /// Signatures present.
        have: usize,
        /// Signatures needed.
        need: u32,
    },
}

impl Registry {
    /// Founds a federation: roster version 1 with this node's admin key as the only admin and
    /// this node as the first member, owning `namespaces`.
    pub fn create_federation(
        &self,
        name: &str,
        institution: &str,
        namespaces: Vec<String>,
        storage_bytes: u64,
        replication: shubnet_protocol::roster::Replication,
        gateway: Option<String>,
    ) -> Result<String> {
        let _w = self.lock();
        if let Some(id) = self.federation_id() {
            return Err(RegistryError::AlreadyFederated(id));
        }
        let keys = &self.inner.keys;
        let mut body = Roster::genesis(name, vec![keys.admin.verifying_key().to_bytes()], 1, now());
        body.replication = replication;
        body.members.push(Member {
            id: institution.to_owned(),
            name: institution.to_owned(),
            peer_ids: vec![keys.peer_id().to_string()],
            publisher_keys: vec![keys.publisher.verifying_key().to_bytes()],
            namespaces,
            storage_bytes,
            gateway,
        });
        body.validate().map_err(RosterError::from)?;
        let mut signed = SignedRoster::new(body);
        signed.add_signature(&keys.admin);
        verify_genesis(&signed)?;
        let id = signed
            .body
            .federation_id()
            .ok_or_else(|| RegistryError::Invalid("genesis roster must be version 1".into()))?;
        self.store_roster(&signed)?;
        self.set_config(|c| {
            c.federation.id = Some(id.clone());
            c.federation.institution = Some(institution.to_owned());
        })?;
        self.emit(LocalEvent::Federation);
        Ok(id)
    }

    /// Trusts federation `id` and accepts its roster chain (a newcomer's first sync).
    pub fn join(&self, id: &str, chain: &[SignedRoster]) -> Result<Roster> {
        let _w = self.lock();
        if let Some(have) = self.federation_id()
            && have != id
        {
            return Err(RegistryError::AlreadyFederated(have));
        }
        let latest = verify_chain(id, chain)?;
        if self
            .pending()?
            .is_some_and(|p| p.body.version <= latest.version)
        {
            self.inner.pending.clear().map_err(db)?;
        }
        for r in chain {
            if self
                .inner
                .rosters
                .get(r.body.version.to_be_bytes())
                .map_err(db)?
                .is_none()
            {
                self.store_roster(r)?;
            }
        }
        let me = self.inner.keys.peer_id().to_string();
        let institution = latest
            .members
            .iter()
            .find(|m| m.peer_ids.contains(&me))
            .map(|m| m.id.clone());
        self.set_config(|c| {
            c.federation.id = Some(id.to_owned());
            c.federation.institution = institution.clone();
        })?;
        self.emit(LocalEvent::Federation);
        Ok(latest)
    }

    /// Accepts the next roster version if it follows the current one with enough signatures.
    pub fn accept_roster(&self, next: &SignedRoster) -> Result<()> {
        let _w = self.lock();
        self.accept_roster_locked(next)
    }

    fn accept_roster_locked(&self, next: &SignedRoster) -> Result<()> {
        let (_, current) = self.current()?;
        if next.body.version <= current.version {
            let have = self
                .inner
                .rosters
                .get(next.body.version.to_be_bytes())
                .map_err(db)?;
            if have.is_some_and(|h| {
                SignedRoster::decode(&h).map(|h| h.body_cid()).ok() == Some(next.body_cid())
            }) {
                return Ok(()); // already known
            }
        }
        verify_next(&current, next)?;
        self.store_roster(next)?;
        self.inner.pending.clear().map_err(db)?;
        Ok(())
    }

    /// An admin's step: adds the member from a join request to a new roster version and signs
    /// it with this node's admin key.
    pub fn admit(
        &self,
        request_line: &str,
        storage_bytes: u64,
        gateway: Option<String>,
    ) -> Result<RosterOutcome> {
        let _w = self.lock();
        let req = JoinRequest::from_line(request_line.trim())?;
        let current = self.current_as_admin()?;
        if current.member(&req.body.institution).is_some() {
            return Err(RegistryError::Invalid(format!(
                "institution {:?} is already a member",
                req.body.institution
            )));
        }
        let mut body = current.successor(now());
        let mut member = req.to_member(storage_bytes);
        member.gateway = gateway;
        body.members.push(member);
        self.propose(current, body)
    }

    /// An admin's step: a new roster version with admins added or removed and/or a new
    /// threshold, signed with this node's admin key.
    pub fn change_admins(
        &self,
        add: &[[u8; 32]],
        remove: &[[u8; 32]],
        threshold: Option<u32>,
    ) -> Result<RosterOutcome> {
        let _w = self.lock();
        let current = self.current_as_admin()?;
        let mut body = current.successor(now());
        body.admins.retain(|k| !remove.contains(k));
        for k in add {
            if !body.admins.contains(k) {
                body.admins.push(*k);
            }
        }
        if let Some(t) = threshold {
            body.threshold = t;
        }
        self.propose(current, body)
    }

    /// An admin's step after `shubnet leave`: a new roster version without the node `peer_id`.
    /// Its institution stays a member (its publisher keys keep the images it published valid);
    /// when that was its last node, the member offers no storage any more.
    pub fn remove_node(&self, peer_id: &str) -> Result<RosterOutcome> {
        let _w = self.lock();
        let current = self.current_as_admin()?;
        let mut body = current.successor(now());
        let member = body
            .members
            .iter_mut()
            .find(|m| m.peer_ids.iter().any(|p| p == peer_id))
            .ok_or_else(|| RegistryError::Invalid(format!("no member has the node {peer_id:?}")))?;
        member.peer_ids.retain(|p| p != peer_id);
        if member.peer_ids.is_empty() {
            member.storage_bytes = 0;
        }
        self.propose(current, body)
    }

    /// Co-signs a pending roster version (threshold > 1) and accepts it once enough admins have.
    pub fn sign(&self, roster_line: &str) -> Result<RosterOutcome> {
        let _w = self.lock();
        let mut signed = roster_from_line(roster_line)?;
        let current = self.current_as_admin()?;
        signed.add_signature(&self.inner.keys.admin);
        self.settle(current, signed)
    }

    /// The current roster, if this node's admin key is one of its admins.
    fn current_as_admin(&self) -> Result<Roster> {
        let (_, current) = self.current()?;
        if !current.is_admin(&self.inner.keys.admin.verifying_key().to_bytes()) {
            return Err(RegistryError::Invalid(
                "this node's admin key is not an admin of the current roster".into(),
            ));
        }
        Ok(current)
    }

    /// Signs the successor `body` of `current` with this node's admin key and settles it.
    fn propose(&self, current: Roster, body: Roster) -> Result<RosterOutcome> {
        body.validate().map_err(RosterError::from)?;
        let mut signed = SignedRoster::new(body);
        signed.add_signature(&self.inner.keys.admin);
        self.settle(current, signed)
    }

    fn settle(&self, current: Roster, signed: SignedRoster) -> Result<RosterOutcome> {
        match verify_next(&current, &signed) {
            Ok(()) => {
                self.store_roster(&signed)?;
                self.inner.pending.clear().map_err(db)?;
                self.emit(LocalEvent::Roster(signed.encode()));
                Ok(RosterOutcome::Accepted(signed))
            }
            Err(RosterError::TooFewSignatures { have, need }) => {
                self.inner
                    .pending
                    .insert(b"pending", signed.encode())
                    .map_err(db)?;
                Ok(RosterOutcome::Pending {
                    roster: signed,
                    have,
                    need,
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The roster version waiting for signatures, if any.
    pub fn pending(&self) -> Result<Option<SignedRoster>> {
        match self.inner.pending.get(b"pending").map_err(db)? {
            Some(v) => Ok(Some(SignedRoster::decode(&v)?)),
            None => Ok(None),
        }
    }

    fn store_roster(&self, r: &SignedRoster) -> Result<()> {
        let bytes = r.encode();
        log::write(
            &self.inner.dir.log(),
            &format!("{}.roster", r.cid()),
            &bytes,
        )
        .map_err(io("writing the roster to log/"))?;
        self.inner
            .rosters
            .insert(r.body.version.to_be_bytes(), bytes)
            .map_err(db)?;
        self.inner.rosters.flush().map_err(db)?;
        Ok(())
    }

    fn set_config(&self, f: impl FnOnce(&mut NodeConfig)) -> Result<()> {
        let mut cfg = self
            .inner
            .config
            .lock()
            .map_err(|_| RegistryError::Io("config lock poisoned".into()))?;
        f(&mut cfg);
        cfg.save(&self.inner.dir)
            .map_err(|e| RegistryError::Io(e.to_string()))
    }
}

/// One line of text carrying a signed roster between admins.
pub fn roster_to_line(r: &SignedRoster) -> String {
    format!(
        "{ROSTER_LINE_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r.encode())
    )
}

/// Parses [`roster_to_line`] output.
pub fn roster_from_line(line: &str) -> Result<SignedRoster> {
    let body = line
        .trim()
        .strip_prefix(ROSTER_LINE_PREFIX)
        .ok_or_else(|| {
            RegistryError::Invalid(format!(
                "not a roster line (expected {ROSTER_LINE_PREFIX}…)"
            ))
        })?;
    if body.len() > 2 * shubnet_protocol::roster::MAX_ROSTER_SIZE {
        return Err(RegistryError::Invalid("roster line too long".into()));
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(body)
        .map_err(|e| RegistryError::Invalid(format!("roster line is not base64url: {e}")))?;
    Ok(SignedRoster::decode(&bytes)?)
}
