//! Sequence numbers, epochs, hashes and node ids (docs/protocol.md D-1..D-3, D-7).

use crate::codec::{Decode, DecodeError, Encode, Reader};
use std::fmt;

/// A session number (D-1). Session 0 is genesis / pre-PaLa history.
pub type Session = u32;

/// An epoch `(session, E)` (D-1), ordered lexicographically (D-2).
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Epoch {
    /// The session.
    pub session: Session,
    /// The epoch number inside the session, starting at 1.
    pub e: u32,
}

impl Epoch {
    /// The nil epoch `(0, 0)` (D-3).
    pub const NIL: Epoch = Epoch { session: 0, e: 0 };

    /// Creates `(session, e)`.
    pub const fn new(session: Session, e: u32) -> Self {
        Epoch { session, e }
    }

    /// The next epoch of the same session (the target of a clock message, E-3).
    pub fn next(self) -> Epoch {
        Epoch::new(self.session, self.e.saturating_add(1))
    }

    /// The bytes that clock messages sign (D-13): `u32 session ‖ u32 E`.
    pub fn signing_bytes(self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[..4].copy_from_slice(&self.session.to_le_bytes());
        b[4..].copy_from_slice(&self.e.to_le_bytes());
        b
    }
}

impl fmt::Debug for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({},{})", self.session, self.e)
    }
}
impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl Encode for Epoch {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.signing_bytes());
    }
}
impl Decode for Epoch {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Epoch::new(r.u32("epoch.session")?, r.u32("epoch.e")?))
    }
}

/// A block sequence number `(session, E, S)` (D-1), ordered lexicographically (D-2):
/// this order is the *freshness* order.
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct BlockSn {
    /// The epoch the block was proposed in.
    pub epoch: Epoch,
    /// The serial inside the epoch, starting at 1.
    pub s: u32,
}

impl BlockSn {
    /// nil = `(0,0,0)` (D-3).
    pub const NIL: BlockSn = BlockSn {
        epoch: Epoch::NIL,
        s: 0,
    };
    /// genesis = `(0,0,1)` (D-3).
    pub const GENESIS: BlockSn = BlockSn {
        epoch: Epoch::NIL,
        s: 1,
    };

    /// Creates `(session, e, s)`.
    pub const fn new(session: Session, e: u32, s: u32) -> Self {
        BlockSn {
            epoch: Epoch::new(session, e),
            s,
        }
    }

    /// Creates `(epoch, s)`.
    pub const fn at(epoch: Epoch, s: u32) -> Self {
        BlockSn { epoch, s }
    }

    /// A sn "is PaLa" iff its session is at least 1 (D-3); others are treated as
    /// notarized and final without a notarization.
    pub fn is_pala(self) -> bool {
        self.epoch.session >= 1
    }
}

impl fmt::Debug for BlockSn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({},{},{})", self.epoch.session, self.epoch.e, self.s)
    }
}
impl fmt::Display for BlockSn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl Encode for BlockSn {
    fn encode(&self, out: &mut Vec<u8>) {
        self.epoch.encode(out);
        out.extend_from_slice(&self.s.to_le_bytes());
    }
}
impl Decode for BlockSn {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(BlockSn {
            epoch: Epoch::decode(r)?,
            s: r.u32("sn.s")?,
        })
    }
}

/// A 32-byte blake3 hash (section 0.1 item 2).
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    /// The all-zero hash (the parent hash of genesis).
    pub const ZERO: Hash = Hash([0u8; 32]);

    /// Hashes `data` with blake3.
    pub fn of(data: &[u8]) -> Hash {
        Hash(*blake3::hash(data).as_bytes())
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0[..6] {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}
impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}
impl Encode for Hash {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0);
    }
}
impl Decode for Hash {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Hash(r.array("hash")?))
    }
}

/// A node's consensus identity: the last 20 bytes of the blake3 hash of its serialized
/// public key (D-7, with blake3 in place of keccak per section 0.1 item 2).
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct NodeId(pub [u8; 20]);

impl NodeId {
    /// Derives the id of a serialized public key.
    pub fn from_public_key_bytes(pk: &[u8]) -> NodeId {
        let h = blake3::hash(pk);
        let mut id = [0u8; 20];
        id.copy_from_slice(&h.as_bytes()[12..]);
        NodeId(id)
    }

    /// Lowercase hex, 40 characters.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Parses 40 hex characters.
    pub fn from_hex(s: &str) -> Option<NodeId> {
        if s.len() != 40 || !s.is_ascii() {
            return None;
        }
        let mut id = [0u8; 20];
        for (i, b) in id.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(NodeId(id))
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", &self.to_hex()[..8])
    }
}
impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}
impl Encode for NodeId {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0);
    }
}
impl Decode for NodeId {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(NodeId(r.array("node id")?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn d2_order_is_lexicographic() {
        assert!(BlockSn::new(2, 1, 1) > BlockSn::new(1, 9, 700));
        assert!(BlockSn::new(1, 2, 1) > BlockSn::new(1, 1, 9));
        assert!(BlockSn::new(1, 1, 2) > BlockSn::new(1, 1, 1));
        assert!(Epoch::new(2, 1) > Epoch::new(1, 100));
        assert!(!BlockSn::GENESIS.is_pala());
        assert!(BlockSn::new(1, 1, 1).is_pala());
    }

    #[test]
    fn node_id_hex_round_trip() {
        let id = NodeId::from_public_key_bytes(b"key");
        assert_eq!(NodeId::from_hex(&id.to_hex()), Some(id));
        assert_eq!(NodeId::from_hex("zz"), None);
    }
}
