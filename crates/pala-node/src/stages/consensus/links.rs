//! The network side of membership: whom the node admits, dials and keeps, and when it
//! starts listening (W-1, W-2, S-3, C-3 step 3, C-5). The policy is [`Membership`]; this
//! is the state of what has been asked of the network layer, so that a change of the
//! core's committees turns into the few commands that differ.

use crate::membership::Membership;
use pala_net::{CommitteeAdmission, DialPolicy, NetCommand, PeerAddr};
use pala_types::{Committee, NodeId};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use tracing::{error, info};

/// The connections the node maintains and why.
pub struct Links {
    me: NodeId,
    /// The members a listening node admits (unless it serves followers, which admits all).
    admission: Arc<CommitteeAdmission>,
    /// `network.serve_followers`.
    serve_followers: bool,
    /// Whether the network layer listens (or has been asked to).
    listening: bool,
    /// `network.listen`, where to listen once this node becomes a proposer.
    listen_addr: Option<SocketAddr>,
    /// `network.bootnodes` (without this node itself), dialed for the whole run.
    bootnodes: BTreeMap<PeerAddr, Option<NodeId>>,
    /// Peers reached by dialing a bootnode address: kept when a reconfiguration ends.
    bootnode_peers: HashSet<NodeId>,
    /// Proposer addresses the network layer keeps connected.
    dialed: BTreeMap<PeerAddr, NodeId>,
    /// Bootnode addresses that are also proposers in force, dialed under the proposer
    /// policy until they are not.
    proposer_bootnodes: BTreeSet<PeerAddr>,
    /// Peers connected now.
    peers: BTreeSet<NodeId>,
    /// Connected peers that have sent a status on their current connection: their
    /// id was proven in the handshake (S-3) and they answered, which is what readiness
    /// counts (a connection that is up but silent does not).
    answered: BTreeSet<NodeId>,
}

/// What [`Links::new`] starts from.
pub struct LinksAtStart {
    /// This node.
    pub me: NodeId,
    /// The admission the network layer consults.
    pub admission: Arc<CommitteeAdmission>,
    /// `network.serve_followers`.
    pub serve_followers: bool,
    /// Whether the network layer was started listening.
    pub listening: bool,
    /// `network.listen`.
    pub listen_addr: Option<SocketAddr>,
    /// `network.bootnodes`, without this node.
    pub bootnodes: BTreeMap<PeerAddr, Option<NodeId>>,
}

impl Links {
    /// The links of a node whose network layer has just started: nothing dialed yet.
    pub fn new(s: LinksAtStart) -> Links {
        Links {
            me: s.me,
            admission: s.admission,
            serve_followers: s.serve_followers,
            listening: s.listening,
            listen_addr: s.listen_addr,
            bootnodes: s.bootnodes,
            bootnode_peers: HashSet::new(),
            dialed: BTreeMap::new(),
            proposer_bootnodes: BTreeSet::new(),
            peers: BTreeSet::new(),
            answered: BTreeSet::new(),
        }
    }

    /// The bootnodes to dial for the whole run.
    pub fn bootnode_dials(&self) -> Vec<NetCommand> {
        self.bootnodes
            .iter()
            .map(|(addr, expected)| NetCommand::Dial {
                addr: addr.clone(),
                expected: *expected,
                policy: DialPolicy::Periodic,
            })
            .collect()
    }

    /// Brings admission and the dialed proposers in line with `m`; returns the dials and
    /// undials that differ from what was asked before.
    pub fn align(&mut self, m: &Membership) -> Vec<NetCommand> {
        self.admission.set_committees(&m.admitted());
        let mut targets = m.dial_targets();
        let mut out = Vec::new();
        // One dial per address: a bootnode that is also a proposer stays dialed as one,
        // under the proposer policy while it is one (a Dial of an address already dialed
        // changes only its policy).
        for (addr, expected) in &self.bootnodes {
            let proposer = targets.contains_key(addr);
            let changed = if proposer {
                self.proposer_bootnodes.insert(addr.clone())
            } else {
                self.proposer_bootnodes.remove(addr)
            };
            if changed {
                out.push(NetCommand::Dial {
                    addr: addr.clone(),
                    expected: *expected,
                    policy: if proposer {
                        DialPolicy::Proposer
                    } else {
                        DialPolicy::Periodic
                    },
                });
            }
        }
        targets.retain(|addr, _| !self.bootnodes.contains_key(addr));
        let gone: Vec<PeerAddr> = self
            .dialed
            .keys()
            .filter(|a| !targets.contains_key(a))
            .cloned()
            .collect();
        for addr in gone {
            self.dialed.remove(&addr);
            out.push(NetCommand::Undial { addr });
        }
        for (addr, id) in targets {
            if self.dialed.insert(addr.clone(), id) != Some(id) {
                out.push(NetCommand::Dial {
                    addr,
                    expected: Some(id),
                    policy: DialPolicy::Proposer,
                });
            }
        }
        out
    }

    /// C-3 step 3: the installed committee `c` makes this node a proposer, so it must
    /// become a hub before the new voters dial it. Returns the address to listen on,
    /// or `None` when it listens already or cannot (the operator is told why).
    pub fn listen_for(&mut self, c: &Committee) -> Option<SocketAddr> {
        if self.listening || !c.is_proposer(&self.me) {
            return None;
        }
        let Some(addr) = self.listen_addr else {
            error!(
                session = c.session,
                "network.listen is empty, but this node's key is a proposer of session {}: \
                 voters cannot connect to it, so it cannot propose. Set network.listen to \
                 \"host:port\" (the committee gives `{}`) and restart",
                c.session,
                self.address_in(c),
            );
            return None;
        };
        // Asked once: a failure is for the operator to fix (and a restart to retry).
        self.listening = true;
        Some(addr)
    }

    /// The network layer's answer to a request from [`Links::listen_for`].
    pub fn listened(&mut self, session: u32, addr: SocketAddr, result: Result<SocketAddr, String>) {
        match result {
            Ok(bound) => info!(session, %bound, "proposer of the new session: listening"),
            Err(e) => {
                self.listening = false;
                error!(
                    session,
                    "this node's key is a proposer of session {session}, but listening on \
                     network.listen = \"{addr}\" failed: {e}. Voters cannot connect to it; \
                     fix network.listen and restart"
                );
            }
        }
    }

    fn address_in<'a>(&self, c: &'a Committee) -> &'a str {
        c.proposers
            .iter()
            .find(|p| p.id == self.me)
            .map_or("", |p| p.address.as_str())
    }

    /// A peer connected or disconnected.
    pub fn peer(&mut self, peer: NodeId, up: bool) {
        // A new connection has said nothing yet, whatever the old one said.
        self.answered.remove(&peer);
        if up {
            self.peers.insert(peer);
        } else {
            self.peers.remove(&peer);
        }
    }

    /// A verified status arrived from a connected peer.
    pub fn answered(&mut self, peer: NodeId) {
        if self.peers.contains(&peer) {
            self.answered.insert(peer);
        }
    }

    /// The connected peers that have sent a status on their current connection.
    pub fn answering(&self) -> &BTreeSet<NodeId> {
        &self.answered
    }

    /// A peer reached through a bootnode address.
    pub fn bootnode_peer(&mut self, peer: NodeId) {
        self.bootnode_peers.insert(peer);
    }

    /// The peers connected now.
    pub fn peers(&self) -> &BTreeSet<NodeId> {
        &self.peers
    }

    /// C-5: the connected peers that no longer belong (neither dialed, nor a bootnode,
    /// nor admitted by a listening node).
    pub fn retired(&self) -> Vec<NodeId> {
        self.peers
            .iter()
            .filter(|p| !self.keeps(p))
            .copied()
            .collect()
    }

    fn keeps(&self, peer: &NodeId) -> bool {
        self.dialed.values().any(|p| p == peer)
            || self.bootnode_peers.contains(peer)
            || (self.listening && (self.serve_followers || self.admission.contains(peer)))
    }
}
