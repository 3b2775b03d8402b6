//! Who this node talks to, derived from the committees the core knows (R-1, R-3, S-3,
//! W-1, W-2, C-3, C-5).
//!
//! The core's [`Committees`] is the one copy of committee state (`Node::committees()`).
//! [`Membership`] is a view over it and the genesis schedule, built when needed and never
//! kept: the consensus stage builds one after every reconfiguration output and applies
//! what follows (admission, dials, listening), and start-up builds one before the core
//! exists.
//!
//! - Sessions in force: the committees the core holds from the session of the finalized
//!   head on. During a reconfiguration that is the old session and the installed
//!   next one; once the new session is final (C-5) the old one is retired here at once,
//!   although the core keeps its keys one session longer to verify late messages.
//! - Admission (S-3): a listening node admits the members of the sessions in force and,
//!   ahead of time, those of later sessions that the genesis schedule names (section 0.1
//!   item 11): those committees are public and fixed, and a member-to-be must be caught
//!   up when its session begins (the new primary's readiness gate, N-2, waits for a quorum
//!   of them). Clients in no such committee are followers; only a node with
//!   `network.serve_followers` (a bootnode in the sense of S-3) admits them.
//! - Dials (W-2): the proposers of the sessions in force (a follower syncs from them) and
//!   those of every scheduled session this node is a member of. A proposer dials only
//!   proposers with a greater id, so each proposer pair has one connection.
//! - Listening (W-1): proposers and bootnodes are hubs.

use crate::config::Config;
use anyhow::{bail, Result};
use pala_core::{Committees, Role};
use pala_net::PeerAddr;
use pala_types::{Committee, NodeId};
use std::collections::BTreeMap;

/// A view of the committees known here, and what follows from them for this node.
pub struct Membership<'a> {
    me: NodeId,
    /// The sessions in force, oldest first.
    sessions: Vec<&'a Committee>,
    /// The genesis schedule of later sessions.
    schedule: &'a BTreeMap<u32, Committee>,
}

impl<'a> Membership<'a> {
    /// The view for `me`, from the core's committees, where the sessions before `floor`
    /// (the session of the finalized head) are retired.
    pub fn new(
        me: NodeId,
        committees: &'a Committees,
        floor: u32,
        schedule: &'a BTreeMap<u32, Committee>,
    ) -> Membership<'a> {
        Membership {
            me,
            sessions: committees
                .iter()
                .map(|c| c.as_ref())
                .filter(|c| c.session >= floor)
                .collect(),
            schedule,
        }
    }

    /// The newest session in force.
    fn newest(&self) -> u32 {
        self.sessions.last().map_or(1, |c| c.session)
    }

    /// Scheduled committees of sessions after those in force.
    fn upcoming(&self) -> impl Iterator<Item = &'a Committee> {
        let newest = self.newest();
        self.schedule.range(newest + 1..).map(|(_, c)| c)
    }

    /// The role in `session` (a follower when its committee is not in force here).
    pub fn role(&self, session: u32) -> Role {
        self.sessions
            .iter()
            .find(|c| c.session == session)
            .map_or(Role::Follower, |c| Role::in_committee(c, &self.me))
    }

    /// The committees whose members a listening node admits.
    pub fn admitted(&self) -> Vec<&'a Committee> {
        self.sessions
            .iter()
            .copied()
            .chain(self.upcoming())
            .collect()
    }

    /// The proposers to keep connections to (W-2), by address.
    pub fn dial_targets(&self) -> BTreeMap<PeerAddr, NodeId> {
        let me = self.me;
        let mine = self
            .upcoming()
            .filter(|c| Role::in_committee(c, &me) != Role::Follower);
        let mut out = BTreeMap::new();
        for c in self.sessions.iter().copied().chain(mine) {
            let i_propose = c.is_proposer(&me);
            for p in &c.proposers {
                if p.id == me || (i_propose && p.id < me) {
                    continue;
                }
                if let Ok(addr) = p.address.parse() {
                    out.insert(addr, p.id);
                }
            }
        }
        out
    }

    /// The first known committee (in force or scheduled) that makes this node a proposer,
    /// with the address it gives for it.
    fn proposer_of(&self) -> Option<(&'a Committee, &'a str)> {
        let me = self.me;
        self.sessions
            .iter()
            .copied()
            .chain(self.upcoming())
            .find_map(move |c| {
                c.proposers
                    .iter()
                    .find(|p| p.id == me)
                    .map(|p| (c, p.address.as_str()))
            })
    }

    /// W-1: whether the node listens from the start. A node that is neither a proposer
    /// (in force or scheduled) nor a bootnode keeps its `network.listen` for the
    /// reconfiguration that makes it a proposer (C-3 step 3).
    pub fn listens_at_start(&self, cfg: &Config) -> bool {
        !cfg.network.listen.is_empty()
            && (cfg.network.serve_followers || self.proposer_of().is_some())
    }

    /// Start-time check: any key is accepted (a key in no committee follows the chain),
    /// but a proposer of a session in force or of a scheduled one must listen, since
    /// voters and followers dial the proposers (W-1).
    pub fn check_listen(&self, cfg: &Config) -> Result<()> {
        if !cfg.network.listen.is_empty() {
            return Ok(());
        }
        if let Some((c, address)) = self.proposer_of() {
            let origin = if c.session == 1 {
                "the genesis committee"
            } else if self.schedule.get(&c.session) == Some(c) {
                "the genesis schedule"
            } else {
                "a committee installed by a reconfiguration"
            };
            bail!(
                "network.listen is empty, but the key in {} (id {}) is a proposer of session {} \
                 ({origin}) and a proposer must listen: set network.listen to \"host:port\" \
                 (the committee gives its address as `{}`)",
                cfg.node.key_file.display(),
                self.me.to_hex(),
                c.session,
                address
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::genesis::{GenesisFile, GenesisMember, GenesisSession};
    use pala_crypto::{BlsScheme, BlsSigner};
    use pala_net::CommitteeAdmission;
    use pala_types::Signer;

    fn committees(list: &[&Committee]) -> Committees {
        let scheme = BlsScheme::new();
        let mut out = Committees::default();
        for c in list {
            out.install(&scheme, (*c).clone());
        }
        out
    }

    fn cfg(listen: &str, serve: bool) -> Config {
        let text = format!(
            "[node]\nkey_file = \"keys/n.key\"\ndata_dir = \"d\"\ngenesis_file = \"g\"\n\
             [network]\nlisten = \"{listen}\"\nserve_followers = {serve}\n"
        );
        Config::from_toml(&text, std::path::Path::new("n.toml"), &[]).unwrap()
    }

    /// Start-up accepts any key; what it is follows from the committees it knows.
    #[test]
    fn start_accepts_non_members_and_requires_listen_of_scheduled_proposers() {
        let nid = 5;
        let keys: Vec<BlsSigner> = (0..6).map(|_| BlsSigner::generate()).collect();
        let ids: Vec<NodeId> = keys.iter().map(|k| k.node_id()).collect();
        let member = |i: usize, address: &str| GenesisMember {
            identity: keys[i].identity(nid).to_line(),
            address: address.into(),
        };
        // Session 1: proposer 0, voters 1-3. Session 2 on: proposers 0 and 4, voters 1, 2
        // and 5 (3 is dropped, 4 and 5 join).
        let genesis = GenesisFile {
            network_id: nid,
            payload: "t".into(),
            stop_offset: 6,
            proposers: vec![member(0, "127.0.0.1:7000")],
            voters: vec![member(1, ""), member(2, ""), member(3, "")],
            sessions: vec![GenesisSession {
                proposers: vec![member(0, "127.0.0.1:7000"), member(4, "127.0.0.1:7004")],
                voters: vec![member(1, ""), member(2, ""), member(5, "")],
            }],
        }
        .load()
        .unwrap();
        let s1 = committees(&[&genesis.committee]);
        let s12 = committees(&[&genesis.committee, &genesis.schedule[&2]]);
        let view = |id: NodeId, c, floor| Membership::new(id, c, floor, &genesis.schedule);
        let targets = |m: &Membership| m.dial_targets().into_values().collect::<Vec<_>>();

        // In no committee at all: accepted as a follower that dials the proposer in force,
        // and no proposer admits it (it is nobody's member-to-be).
        let stranger = BlsSigner::generate().node_id();
        let m = view(stranger, &s1, 1);
        m.check_listen(&cfg("", false)).unwrap();
        assert_eq!(m.role(1), Role::Follower);
        assert_eq!(targets(&m), vec![ids[0]]);
        let admitted = CommitteeAdmission::default();
        admitted.set_committees(&m.admitted());
        assert!(!admitted.contains(&stranger));
        assert!(
            admitted.contains(&ids[5]),
            "members-to-be are admitted early"
        );

        // A voter-to-be: a follower of session 1 that also dials the proposers of session 2,
        // and a voter once session 2 is installed.
        let m = view(ids[5], &s1, 1);
        assert_eq!(m.role(1), Role::Follower);
        let mut t = targets(&m);
        t.sort();
        let mut want = vec![ids[0], ids[4]];
        want.sort();
        assert_eq!(t, want);
        let m = view(ids[5], &s12, 1);
        assert_eq!((m.role(1), m.role(2)), (Role::Follower, Role::Voter));

        // A dropped voter: a voter of session 1, a follower from session 2 on; once session
        // 2 is final (C-5) it still dials the proposers in force, which is how it syncs.
        assert_eq!(view(ids[3], &s1, 1).role(1), Role::Voter);
        let m = view(ids[3], &s12, 2);
        assert_eq!(m.role(2), Role::Follower);
        assert_eq!(targets(&m).len(), 2);
        let admitted = CommitteeAdmission::default();
        admitted.set_committees(&m.admitted());
        assert!(!admitted.contains(&ids[3]), "retired at C-5");

        // A proposer-to-be must listen, and the error says which key to set and why.
        let e = view(ids[4], &s1, 1)
            .check_listen(&cfg("", false))
            .expect_err("a scheduled proposer without network.listen is refused")
            .to_string();
        for want in [
            "network.listen",
            "keys/n.key",
            "session 2",
            "genesis schedule",
            "127.0.0.1:7004",
        ] {
            assert!(e.contains(want), "`{want}` missing from: {e}");
        }
        let m = view(ids[4], &s1, 1);
        m.check_listen(&cfg("127.0.0.1:7004", false)).unwrap();
        assert_eq!((m.role(1), m.role(2)), (Role::Follower, Role::Follower));
        // W-2: proposer 4 dials proposer 0 only if 0 has the greater id; as a follower of
        // session 1 it dials it anyway.
        assert_eq!(targets(&m), vec![ids[0]]);
        // The genesis proposer still must listen, as before.
        let e = view(ids[0], &s1, 1)
            .check_listen(&cfg("", false))
            .expect_err("a genesis proposer without network.listen is refused")
            .to_string();
        assert!(
            e.contains("network.listen") && e.contains("genesis committee"),
            "{e}"
        );
    }

    #[test]
    fn only_proposers_and_bootnodes_listen_at_start() {
        let nid = 5;
        let keys: Vec<BlsSigner> = (0..3).map(|_| BlsSigner::generate()).collect();
        let ids: Vec<NodeId> = keys.iter().map(|k| k.node_id()).collect();
        let member = |i: usize, address: &str| GenesisMember {
            identity: keys[i].identity(nid).to_line(),
            address: address.into(),
        };
        let genesis = GenesisFile {
            network_id: nid,
            payload: "t".into(),
            stop_offset: 0,
            proposers: vec![member(0, "127.0.0.1:7000")],
            voters: vec![member(1, "")],
            sessions: vec![],
        }
        .load()
        .unwrap();
        let listens = |c: &Config, id: NodeId, known: &[&Committee]| {
            let committees = committees(known);
            Membership::new(id, &committees, 1, &genesis.schedule).listens_at_start(c)
        };
        let g = &genesis.committee;
        let at = "127.0.0.1:7009";
        assert!(listens(&cfg(at, false), ids[0], &[g]), "a proposer");
        assert!(
            listens(&cfg(at, true), ids[1], &[g]),
            "a voter serving followers"
        );
        // A voter or follower keeps network.listen for when it becomes a proposer (C-3).
        assert!(!listens(&cfg(at, false), ids[1], &[g]));
        assert!(!listens(&cfg(at, false), ids[2], &[g]));
        assert!(!listens(&cfg("", true), ids[2], &[g]));
        // After a restart, a committee installed by a reconfiguration counts too.
        let mut promoted = genesis.committee.clone();
        promoted.session = 2;
        promoted.proposers[0].id = ids[2];
        assert!(listens(&cfg(at, false), ids[2], &[g, &promoted]));
    }
}
