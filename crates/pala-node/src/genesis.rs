//! The genesis file (network id, genesis payload, committee of session 1) and the
//! operator set-up commands built on it: `keygen` and `testnet`.

use crate::config::{Config, HttpSection, NetworkSection, NodeSection};
use crate::layout::{HostLayout, DATA_DIR};
use anyhow::{bail, Context, Result};
use pala_core::verify::validate_committee;
use pala_crypto::{BlsScheme, BlsSigner, PublicIdentity};
use pala_types::{Block, Committee, Member, VoteCounting};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One committee member as written in the genesis file.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisMember {
    /// The public identity line printed by `pala keygen`.
    pub identity: String,
    /// "host:port" of a proposer's peer-to-peer listener (empty for voters).
    #[serde(default)]
    pub address: String,
}

/// The genesis file.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisFile {
    /// Network id: part of every signature domain and of the handshake.
    pub network_id: u64,
    /// Payload of the genesis block (distinguishes networks with the same committee).
    pub payload: String,
    /// Proposers of session 1, in rotation order.
    pub proposers: Vec<GenesisMember>,
    /// Voters of session 1.
    pub voters: Vec<GenesisMember>,
    /// The stop block of every session is its block with this session offset (C-1);
    /// 0 = the committee never changes.
    #[serde(default)]
    pub stop_offset: u32,
    /// Committees of sessions 2, 3, ... (section 0.1 item 11); a valid committee-change
    /// transaction in the chain takes precedence. Later sessions keep the last one.
    #[serde(default)]
    pub sessions: Vec<GenesisSession>,
}

/// The committee of a later session in the genesis schedule.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisSession {
    /// Proposers, in rotation order.
    pub proposers: Vec<GenesisMember>,
    /// Voters.
    pub voters: Vec<GenesisMember>,
}

/// A loaded and validated genesis.
#[derive(Clone, Debug)]
pub struct Genesis {
    /// Network id.
    pub network_id: u64,
    /// The genesis block.
    pub block: Arc<Block>,
    /// The committee of session 1 (proofs of possession checked).
    pub committee: Committee,
    /// Stop-block session offset (0 = no reconfiguration).
    pub stop_offset: u32,
    /// Committees of later sessions, by session (proofs of possession checked).
    pub schedule: std::collections::BTreeMap<u32, Committee>,
}

impl GenesisFile {
    /// Reads a genesis file.
    pub fn read(path: &Path) -> Result<GenesisFile> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read genesis file {}", path.display()))?;
        GenesisFile::parse(&text)
            .with_context(|| format!("genesis file {} is invalid", path.display()))
    }

    /// Parses the text of a genesis file (what [`GenesisFile::read`] does after reading it;
    /// the fuzz target of `fuzz/` feeds it arbitrary text).
    pub fn parse(text: &str) -> Result<GenesisFile> {
        Ok(toml::from_str(text)?)
    }

    /// Validates the members and builds the committees.
    pub fn load(&self) -> Result<Genesis> {
        let committee = self.committee(1, "", &self.proposers, &self.voters)?;
        let mut schedule = std::collections::BTreeMap::new();
        for (k, sess) in self.sessions.iter().enumerate() {
            let session = k as u32 + 2;
            let prefix = format!("sessions[{k}].");
            schedule.insert(
                session,
                self.committee(session, &prefix, &sess.proposers, &sess.voters)?,
            );
        }
        if !schedule.is_empty() && self.stop_offset == 0 {
            bail!("genesis stop_offset: expected a positive block count when `sessions` is set");
        }
        Ok(Genesis {
            network_id: self.network_id,
            block: Arc::new(Block::genesis(self.payload.as_bytes().to_vec())),
            committee,
            stop_offset: self.stop_offset,
            schedule,
        })
    }

    fn committee(
        &self,
        session: u32,
        prefix: &str,
        proposers: &[GenesisMember],
        voters: &[GenesisMember],
    ) -> Result<Committee> {
        let member = |kind: &str, i: usize, m: &GenesisMember| -> Result<Member> {
            let id = PublicIdentity::from_line(&m.identity)
                .with_context(|| format!("genesis {prefix}{kind}[{i}].identity"))?;
            if id.network_id != self.network_id {
                bail!(
                    "genesis {prefix}{kind}[{i}].identity is for network {}, the genesis is for network {}",
                    id.network_id,
                    self.network_id
                );
            }
            Ok(Member::new(
                id.public_key,
                id.proof_of_possession,
                1,
                m.address.clone(),
            ))
        };
        let proposers = proposers
            .iter()
            .enumerate()
            .map(|(i, m)| member("proposers", i, m))
            .collect::<Result<Vec<_>>>()?;
        for (i, p) in proposers.iter().enumerate() {
            if let Err(e) = p.address.parse::<pala_net::PeerAddr>() {
                bail!("genesis {prefix}proposers[{i}].address: {e}");
            }
        }
        let voters = voters
            .iter()
            .enumerate()
            .map(|(i, m)| member("voters", i, m))
            .collect::<Result<Vec<_>>>()?;
        let committee = Committee {
            session,
            proposers,
            voters,
            counting: VoteCounting::Seat,
        };
        validate_committee(&BlsScheme::new(), &committee, self.network_id)
            .map_err(|e| anyhow::anyhow!("genesis {prefix}committee is invalid: {e}"))?;
        Ok(committee)
    }
}

/// `pala keygen`: writes a new secret key (mode 0600) and returns the public identity line.
pub fn keygen(out: &Path, network_id: u64) -> Result<String> {
    let pub_path = PathBuf::from(format!("{}.pub", out.display()));
    // Both are checked before anything is written: a lone `.pub` may be the only record
    // of an identity already in a genesis file.
    for p in [out, pub_path.as_path()] {
        if p.symlink_metadata().is_ok() {
            bail!(
                "{} exists; keygen never overwrites a file: choose another name or move it away",
                p.display()
            );
        }
    }
    let signer = BlsSigner::generate();
    signer
        .secret_key()
        .save(out)
        .with_context(|| format!("cannot write key file {}", out.display()))?;
    let line = signer.identity(network_id).to_line();
    write_public(&pub_path, &line)
        .with_context(|| format!("cannot write {}", pub_path.display()))?;
    Ok(line)
}

/// Creates the `.pub` file (never over an existing one) readable by all: 0644 set on the
/// descriptor, since a creation mode is filtered by the umask.
fn write_public(path: &Path, line: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(path)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o644))?;
    f.write_all(format!("{line}\n").as_bytes())?;
    f.sync_all()
}

/// Parameters of `pala testnet`.
#[derive(Clone, Debug)]
pub struct TestnetParams {
    /// Voters.
    pub voters: usize,
    /// Proposers.
    pub proposers: usize,
    /// Output directory.
    pub out: PathBuf,
    /// Network id.
    pub network_id: u64,
    /// First peer-to-peer port (proposers use base, base+1, ...).
    pub p2p_base_port: u16,
    /// First HTTP port (node i uses base+i).
    pub http_base_port: u16,
    /// Applied to every node's config (timers, block limits).
    pub template: Option<Config>,
}

/// What `testnet` wrote.
#[derive(Clone, Debug)]
pub struct Testnet {
    /// One config path per node, proposers first.
    pub configs: Vec<PathBuf>,
    /// HTTP address of each node.
    pub http: Vec<String>,
    /// Number of proposers (the first configs).
    pub proposers: usize,
}

/// `pala testnet`: keys, genesis and one config per node on loopback.
pub fn testnet(p: &TestnetParams) -> Result<Testnet> {
    testnet_on(p, None)
}

/// Where node `i` (proposers first) lives: its name, peer-to-peer and HTTP addresses.
struct Places<'a> {
    p: &'a TestnetParams,
    hosts: Option<&'a HostLayout>,
}

impl Places<'_> {
    fn role(&self, i: usize) -> (&'static str, usize) {
        if i < self.p.proposers {
            ("proposer", i)
        } else if i < self.p.proposers + self.p.voters {
            ("voter", i - self.p.proposers)
        } else {
            ("spare", i - self.p.proposers - self.p.voters)
        }
    }

    fn name(&self, i: usize) -> String {
        let (role, k) = self.role(i);
        match self.hosts {
            Some(h) => h.node_name(role, k),
            None => format!("{role}{k}"),
        }
    }

    /// The proposer's address in the genesis file.
    fn p2p(&self, i: usize) -> String {
        let (role, k) = self.role(i);
        match self.hosts {
            Some(h) => format!("{}:{}", h.host(role, k), self.p.p2p_base_port),
            None => format!("127.0.0.1:{}", self.p.p2p_base_port as usize + i),
        }
    }

    /// `network.listen` of a proposer: every interface of its own host, under a layout.
    fn listen(&self, i: usize) -> String {
        match self.hosts {
            Some(_) => format!("0.0.0.0:{}", self.p.p2p_base_port),
            None => self.p2p(i),
        }
    }

    fn http(&self, i: usize) -> String {
        match self.hosts {
            Some(_) => format!("0.0.0.0:{}", self.p.http_base_port),
            None => format!("127.0.0.1:{}", self.p.http_base_port as usize + i),
        }
    }

    /// Where to reach node `i`'s API from another host (what `testnet` prints).
    fn http_url(&self, i: usize) -> String {
        let (role, k) = self.role(i);
        match self.hosts {
            Some(h) => format!("{}:{}", h.host(role, k), self.p.http_base_port),
            None => self.http(i),
        }
    }

    /// `http.forward_to`: the proposers' APIs. The forwarder takes IP addresses only, so a
    /// host layout forwards nothing and clients send transactions to the proposers.
    fn forward_to(&self) -> Vec<String> {
        match self.hosts {
            Some(_) => Vec::new(),
            None => (0..self.p.proposers).map(|i| self.http(i)).collect(),
        }
    }
}

/// `pala testnet --hosts …`: as [`testnet`], but node `i` is named by `hosts` and every
/// node uses the same ports on its own host (`None`: the loopback layout).
pub fn testnet_on(p: &TestnetParams, hosts: Option<&HostLayout>) -> Result<Testnet> {
    if p.voters == 0 || p.proposers == 0 {
        bail!("a testnet needs at least one proposer and one voter");
    }
    let n = p.proposers + p.voters;
    if p.p2p_base_port as usize + p.proposers > 65535 || p.http_base_port as usize + n > 65535 {
        bail!("ports out of range: lower --p2p-port or --http-port");
    }
    std::fs::create_dir_all(p.out.join("keys"))
        .with_context(|| format!("cannot create {}", p.out.display()))?;
    let at = Places { p, hosts };
    let mut names = Vec::new();
    let mut lines = Vec::new();
    for i in 0..n {
        let name = at.name(i);
        let key = p.out.join("keys").join(format!("{name}.key"));
        lines.push(keygen(&key, p.network_id)?);
        names.push(name);
    }
    let genesis = GenesisFile {
        network_id: p.network_id,
        payload: format!("pala-testnet-{}", p.network_id),
        stop_offset: 0,
        sessions: Vec::new(),
        proposers: (0..p.proposers)
            .map(|i| GenesisMember {
                identity: lines[i].clone(),
                address: at.p2p(i),
            })
            .collect(),
        voters: (p.proposers..n)
            .map(|i| GenesisMember {
                identity: lines[i].clone(),
                address: String::new(),
            })
            .collect(),
    };
    let text = toml::to_string(&genesis).context("encoding genesis")?;
    std::fs::write(p.out.join("genesis.toml"), text).context("writing genesis.toml")?;
    let mut configs = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let listen = if i < p.proposers {
            at.listen(i)
        } else {
            String::new()
        };
        // Proposers serve followers so that keys entering through a committee-change
        // transaction, and members retired by a reconfiguration, can keep syncing.
        configs.push(write_node_config(&at, i, name, listen, i < p.proposers)?);
    }
    Ok(Testnet {
        configs,
        http: (0..n).map(|i| at.http_url(i)).collect(),
        proposers: p.proposers,
    })
}

/// Keys and configs that `testnet_spares` wrote for nodes outside the genesis committee.
#[derive(Clone, Debug)]
pub struct Spares {
    /// One config path per spare (`spare0.toml`, ...).
    pub configs: Vec<PathBuf>,
    /// HTTP address of each spare.
    pub http: Vec<String>,
    /// The public identity line of each spare's key, for a genesis `sessions` entry or a
    /// committee-change transaction.
    pub identities: Vec<String>,
}

/// `pala testnet --spare N`: keys and configs for `spares` more nodes that are in no
/// committee of the genesis `testnet` wrote with the same parameters. They start as
/// followers and take a role once a committee naming them is installed. They do not
/// listen (voters-to-be); HTTP ports follow those of the committee's nodes.
pub fn testnet_spares(p: &TestnetParams, spares: usize) -> Result<Spares> {
    testnet_spares_on(p, None, spares)
}

/// [`testnet_spares`] for the layout [`testnet_on`] wrote.
pub fn testnet_spares_on(
    p: &TestnetParams,
    hosts: Option<&HostLayout>,
    spares: usize,
) -> Result<Spares> {
    let n = p.proposers + p.voters;
    if p.http_base_port as usize + n + spares > 65535 {
        bail!("ports out of range: lower --http-port or --spare");
    }
    let at = Places { p, hosts };
    let mut out = Spares {
        configs: Vec::new(),
        http: Vec::new(),
        identities: Vec::new(),
    };
    for i in n..n + spares {
        let name = at.name(i);
        let key = p.out.join("keys").join(format!("{name}.key"));
        out.identities.push(keygen(&key, p.network_id)?);
        out.configs
            .push(write_node_config(&at, i, &name, String::new(), false)?);
        out.http.push(at.http_url(i));
    }
    Ok(out)
}

/// The testnet's shared forward secret, beside its configs.
const FORWARD_SECRET: &str = "forward.secret";

/// Writes `<out>/<name>.toml` for testnet node `i`.
fn write_node_config(
    at: &Places,
    i: usize,
    name: &str,
    listen: String,
    serve_followers: bool,
) -> Result<PathBuf> {
    let p = at.p;
    let mut cfg = p.template.clone().unwrap_or_else(|| Config {
        node: NodeSection {
            key_file: PathBuf::new(),
            data_dir: PathBuf::new(),
            genesis_file: PathBuf::new(),
        },
        network: Default::default(),
        consensus: Default::default(),
        runtime: Default::default(),
        mempool: Default::default(),
        block: Default::default(),
        http: Default::default(),
        log: Default::default(),
        state_sync: Default::default(),
        storage: Default::default(),
    });
    // On a host of its own a node keeps its data where the image and the unit expect it.
    let data_dir = match at.hosts {
        Some(_) => PathBuf::from(DATA_DIR),
        None => PathBuf::from(format!("data/{name}")),
    };
    cfg.node = NodeSection {
        key_file: PathBuf::from(format!("keys/{name}.key")),
        data_dir,
        genesis_file: PathBuf::from("genesis.toml"),
    };
    cfg.network = NetworkSection {
        listen,
        serve_followers,
        ..cfg.network
    };
    // One forward secret per testnet: the nodes prove to each other that a batch was
    // forwarded (see `http::auth`).
    let forward_secret_file = if cfg.http.forward_secret_file.as_os_str().is_empty() {
        crate::http::auth::ensure_forward_secret(&at.p.out.join(FORWARD_SECRET))?;
        PathBuf::from(FORWARD_SECRET)
    } else {
        cfg.http.forward_secret_file.clone()
    };
    cfg.http = HttpSection {
        listen: at.http(i),
        forward_to: at.forward_to(),
        forward_secret_file,
        ..cfg.http
    };
    let path = p.out.join(format!("{name}.toml"));
    let kind = match at.hosts {
        Some(_) => "host-name",
        None => "loopback",
    };
    let body = format!(
        "# pala node `{name}` of a {kind} testnet (keys: keys/, genesis: genesis.toml).\n\
         # Every key is documented in docs/operators.md; PALA_<SECTION>_<KEY> overrides.\n{}",
        cfg.to_toml()
    );
    std::fs::write(&path, body).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Whether `127.0.0.1:port` can be bound *without* `SO_REUSEADDR`, i.e. also not held by a
/// connection in TIME_WAIT (which would make the network layer's listener fail).
fn port_free(port: u16) -> bool {
    // SAFETY: plain socket calls on a descriptor we own and close.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        if fd < 0 {
            return false;
        }
        let mut addr: libc::sockaddr_in = std::mem::zeroed();
        addr.sin_family = libc::AF_INET as libc::sa_family_t;
        addr.sin_port = port.to_be();
        addr.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
        let rc = libc::bind(
            fd,
            &addr as *const libc::sockaddr_in as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        libc::close(fd);
        rc == 0
    }
}

/// Finds `n` consecutive free loopback ports, starting the search at an offset that
/// differs between processes and calls, so clusters started one after another do not
/// reuse ports still in TIME_WAIT.
pub fn free_port_range(n: usize) -> Result<u16> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let span = 30000u64;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0);
    let seed = (std::process::id() as u64)
        .wrapping_mul(7919)
        .wrapping_add(nanos)
        .wrapping_add(CALLS.fetch_add(1, Ordering::Relaxed) * 211);
    for attempt in 0..500u64 {
        let base = 20000 + (seed + attempt * 151) % (span - n as u64);
        let base = base as u16;
        if (0..n).all(|i| port_free(base + i as u16)) {
            return Ok(base);
        }
    }
    bail!("no range of {n} free loopback ports found")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn keygen_never_overwrites_a_lone_pub_and_writes_it_0644_whatever_the_umask() {
        let d = tempfile::tempdir().unwrap();
        let key = d.path().join("v1.key");
        let pub_path = d.path().join("v1.key.pub");
        std::fs::write(&pub_path, "identity in a genesis\n").unwrap();
        let e = keygen(&key, 9).unwrap_err().to_string();
        assert!(
            e.contains("v1.key.pub") && e.contains("never overwrites"),
            "{e}"
        );
        assert!(!key.exists(), "nothing written when either file exists");
        assert_eq!(
            std::fs::read_to_string(&pub_path).unwrap(),
            "identity in a genesis\n"
        );
        std::fs::remove_file(&pub_path).unwrap();
        // SAFETY: umask only changes this process's creation mask; restored below.
        let old = unsafe { libc::umask(0o077) };
        let r = keygen(&key, 9);
        unsafe { libc::umask(old) };
        r.unwrap();
        let mode = std::fs::metadata(&pub_path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
        let e = keygen(&key, 9).unwrap_err().to_string();
        assert!(e.contains("v1.key exists"), "{e}");
    }
}
