//! Writes the seed corpora of the fuzz targets into `fuzz/corpus/<target>/` from real
//! encodings: the same constructors, encoders and writers the node uses, so that every
//! seed is an input the node accepts and the fuzzer starts from the valid side of each
//! parser. Run from the repository root:
//! `cargo run --manifest-path fuzz/Cargo.toml --example seeds`.

use pala_crypto::BlsSigner;
use pala_net::frame::{encode_frame, encode_raw_frame, ATTR_COMPRESSED};
use pala_net::handshake::{challenge_message, sign_challenge, Hello, Side};
use pala_node::app::{Application, KvStore, KvTx};
use pala_node::genesis::{testnet, TestnetParams};
use pala_storage::{EpochStatus, Options, Record, Storage, WritePath};
use pala_types::committee::committee_change_tx;
use pala_types::{
    Block, BlockHeader, BlockSn, ClockMessage, ClockNotarization, Committee, ConsensusInfo, Domain,
    Encode, Epoch, EpochResponse, FresherHeadRequest, FresherHeadResponse, Hash, Message,
    Notarization, NotarizedBlock, Proposal, Signer, SignerBitmap, Status, Vote, VoteCounting,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const NET: u64 = 1;
const VOTERS: usize = 4;

fn corpus(target: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    std::fs::create_dir_all(&dir).expect("create the corpus dir");
    dir
}

fn write(target: &str, name: &str, bytes: &[u8]) {
    std::fs::write(corpus(target).join(name), bytes).expect("write a seed");
}

fn signers(n: usize) -> SignerBitmap {
    let mut b = SignerBitmap::new(n);
    for i in 0..n - 1 {
        b.insert(i);
    }
    b
}

fn notarization(sn: BlockSn, hash: Hash, v: &BlsSigner) -> Notarization {
    Notarization {
        sn,
        block_hash: hash,
        proposer_idx: 0,
        signers: signers(VOTERS),
        signature: v.sign(Domain::Vote, NET, &hash.0),
    }
}

fn clock_notarization(epoch: Epoch, v: &BlsSigner) -> ClockNotarization {
    ClockNotarization {
        epoch,
        proposer_idx: 1,
        signers: signers(VOTERS),
        signature: v.sign(Domain::Clock, NET, &epoch.signing_bytes()),
    }
}

/// A chain of `n` blocks of session 1 epoch 2 after genesis, each embedding the
/// notarization of its parent, the first one carrying the clock notarization of its epoch.
fn chain(n: u32, v: &BlsSigner) -> Vec<NotarizedBlock> {
    let mut parent = Arc::new(Block::genesis(b"fuzz seeds".to_vec()));
    let mut out = Vec::new();
    for s in 1..=n {
        let txs = vec![
            KvTx {
                k: format!("key{s}"),
                v: "value".into(),
                n: u64::from(s),
            }
            .encode(),
            vec![0xff, 0, 1, 2],
        ];
        let mut consensus = ConsensusInfo::default();
        if s == 1 {
            consensus.clock = Some(clock_notarization(Epoch::new(1, 2), v));
        } else {
            consensus
                .notarizations
                .push(notarization(parent.sn(), parent.hash(), v));
        }
        let b = Arc::new(Block::new(
            BlockHeader {
                sn: BlockSn::new(1, 2, s),
                parent_sn: parent.sn(),
                parent_hash: parent.hash(),
                height: u64::from(s),
                session_offset: s,
                timestamp_ms: 1_700_000_000_000 + u64::from(s) * 100,
                state: pala_types::StateCommitment::NONE,
            },
            txs,
            consensus,
        ));
        out.push(NotarizedBlock {
            block: b.clone(),
            notarization: Some(notarization(b.sn(), b.hash(), v)),
        });
        parent = b;
    }
    out
}

fn committee(session: u32) -> Committee {
    let member = |role: &str, i: usize| {
        BlsSigner::from_seed(format!("fuzz-{role}-{i}").as_bytes()).member(
            NET,
            1,
            &format!("127.0.0.1:{}", 9000 + i),
        )
    };
    Committee {
        session,
        proposers: (0..2).map(|i| member("proposer", i)).collect(),
        voters: (0..VOTERS).map(|i| member("voter", i)).collect(),
        counting: VoteCounting::Seat,
    }
}

fn messages(v: &BlsSigner) -> Vec<(&'static str, Message)> {
    let blocks = chain(3, v);
    let proposal = |nb: &NotarizedBlock| Proposal {
        proposer: v.node_id(),
        signature: v.sign(Domain::Proposal, NET, &nb.block.hash().0),
        block: nb.block.clone(),
    };
    let head = &blocks[2];
    vec![
        ("proposal", Message::Proposal(proposal(head))),
        (
            "vote",
            Message::Vote(Vote {
                voter: v.node_id(),
                sn: head.block.sn(),
                block_hash: head.block.hash(),
                signature: v.sign(Domain::Vote, NET, &head.block.hash().0),
            }),
        ),
        (
            "notarization",
            Message::Notarization(head.notarization.clone().expect("notarized")),
        ),
        (
            "clock",
            Message::Clock(ClockMessage {
                voter: v.node_id(),
                epoch: Epoch::new(1, 3),
                signature: v.sign(Domain::Clock, NET, &Epoch::new(1, 3).signing_bytes()),
            }),
        ),
        (
            "clock_notarization",
            Message::ClockNotarization(clock_notarization(Epoch::new(1, 3), v)),
        ),
        (
            "unnotarized_proposals",
            Message::UnnotarizedProposals(blocks.iter().map(proposal).collect()),
        ),
        (
            "status",
            Message::Status(Status {
                head: head.block.sn(),
                head_height: 3,
                epoch: Epoch::new(1, 2),
                finalized: blocks[0].block.sn(),
            }),
        ),
        ("get_epoch", Message::GetEpoch(Epoch::new(1, 2))),
        (
            "epoch_answer_stop_proof",
            Message::Epoch(EpochResponse {
                session: 1,
                clock: Some(clock_notarization(Epoch::new(1, 2), v)),
                is_last: true,
                stop_proof: blocks.clone(),
            }),
        ),
        (
            "epoch_answer",
            Message::Epoch(EpochResponse {
                session: 1,
                clock: None,
                is_last: false,
                stop_proof: Vec::new(),
            }),
        ),
        (
            "get_fresher_head",
            Message::GetFresherHead(FresherHeadRequest {
                head: blocks[1].block.sn(),
                known: blocks
                    .iter()
                    .rev()
                    .map(|b| (b.block.height(), b.block.hash()))
                    .collect(),
            }),
        ),
        (
            "sync_answer",
            Message::FresherHead(FresherHeadResponse {
                blocks: blocks.clone(),
                finalized: None,
            }),
        ),
        (
            "sync_answer_finalized",
            Message::FresherHead(FresherHeadResponse {
                blocks: Vec::new(),
                finalized: Some((1, blocks[0].block.hash(), blocks[0].block.sn())),
            }),
        ),
    ]
}

fn records(v: &BlsSigner) -> Vec<(&'static str, Record)> {
    let blocks = chain(2, v);
    vec![
        ("block", Record::Block(blocks[1].block.clone())),
        (
            "notarization",
            Record::Notarization(blocks[1].notarization.clone().expect("notarized")),
        ),
        (
            "epoch_status",
            Record::EpochStatus(EpochStatus {
                epoch: Epoch::new(1, 2),
                clock: Some(clock_notarization(Epoch::new(1, 2), v)),
            }),
        ),
        (
            "clock_notarization",
            Record::ClockNotarization(clock_notarization(Epoch::new(1, 2), v)),
        ),
        (
            "vote_guard",
            Record::VoteGuard {
                epoch: Epoch::new(1, 2),
                s: 2,
            },
        ),
        ("clock_guard", Record::ClockGuard(Epoch::new(1, 3))),
        (
            "finalized_head",
            Record::FinalizedHead(blocks[0].block.sn()),
        ),
        (
            "stop_block",
            Record::StopBlock {
                session: 1,
                height: 100,
            },
        ),
        ("committee", Record::Committee(committee(2))),
    ]
}

fn main() {
    let v = BlsSigner::from_seed(b"fuzz-seeds");
    let msgs = messages(&v);

    let mut stream = Vec::new();
    for (name, m) in &msgs {
        write("wire_message", name, &m.to_bytes());
        let frame = encode_frame(m, 1 << 20).expect("a seed fits a frame");
        write("frame", name, &frame);
        stream.extend_from_slice(&frame);
    }
    write("frame", "stream_of_all", &stream);
    write(
        "frame",
        "unknown_type",
        &encode_raw_frame(0x7f, 0, b"future"),
    );
    write(
        "frame",
        "compressed",
        &encode_raw_frame(0x21, ATTR_COMPRESSED, b""),
    );

    let hello = Hello {
        version: 1,
        network_id: NET,
        capabilities: 0,
    };
    for (name, side) in [("client", Side::Client), ("server", Side::Server)] {
        let message = challenge_message(b"spki", &[7u8; 32], side, NET);
        let blob = sign_challenge(&v, NET, &message);
        let mut seed = hello.to_bytes().to_vec();
        seed.extend_from_slice(&(blob.len() as u16).to_le_bytes());
        seed.extend_from_slice(&blob);
        write("handshake", name, &seed);
    }

    let recs = records(&v);
    for (name, r) in &recs {
        let mut seed = vec![r.kind().code()];
        r.encode_payload(&mut seed);
        write("storage_record", name, &seed);
    }
    let dir = tempfile::tempdir().expect("a temp dir");
    let opts = Options {
        write_path: WritePath::PageCache,
        ..Options::default()
    };
    let mut store = Storage::open(dir.path(), opts).expect("open a store");
    for chunk in recs.chunks(3) {
        store
            .commit(chunk.iter().map(|(_, r)| r))
            .expect("commit a batch");
    }
    store.close().expect("close the store");
    for e in std::fs::read_dir(dir.path()).expect("list the store") {
        let p = e.expect("an entry").path();
        let name = p
            .file_name()
            .expect("a name")
            .to_string_lossy()
            .into_owned();
        if name.starts_with("seg-") {
            let bytes = std::fs::read(&p).expect("read the segment");
            write("storage_segment", "three_batches", &bytes);
            // A torn tail: the last batch cut in the middle.
            write("storage_segment", "torn_tail", &bytes[..bytes.len() - 20]);
        }
    }

    let snap = dir.path().join("app-kv.bin");
    let mut kv = KvStore::open(Some(&snap)).expect("open the kv store");
    for nb in chain(3, &v) {
        kv.apply(&nb.block);
    }
    kv.checkpoint().expect("checkpoint");
    let file = std::fs::read(&snap).expect("read the snapshot");
    write("app_snapshot", "file", &[&[1u8][..], &file].concat());
    write(
        "app_snapshot",
        "body",
        &[&[0u8][..], &file[..file.len() - 32]].concat(),
    );

    // State sync: the manifest of a snapshot of that store, and its chunk in the chunk
    // form (form byte 254: chunks of 2033 bytes; the store is small enough for one).
    let state = kv.snapshot(2033).expect("a snapshot after three blocks");
    let manifest = pala_types::codec::Encode::to_bytes(&state.manifest);
    write("state_snapshot", "manifest", &[&[1u8][..], &manifest].concat());
    write(
        "state_snapshot",
        "chunks",
        &[&[254u8][..], &state.chunks.concat()].concat(),
    );

    let change = committee_change_tx(&committee(2));
    write("committee_change", "two_proposers_four_voters", &change);
    write("kv_tx", "committee_change", &change);
    let kv_tx = KvTx {
        k: "greeting".into(),
        v: "hello, world".into(),
        n: 7,
    }
    .encode();
    write("kv_tx", "set", &kv_tx);
    write("kv_tx", "no_nonce", br#"{"k":"a","v":"\u00e9\n"}"#);

    let body = [
        &kv_tx[..],
        b"\n",
        &change,
        b"\n  \n{\"k\":\"b\",\"v\":\"c\"}\n",
    ]
    .concat();
    write("http_tx", "post_tx", &[&b"POST\n/tx\n"[..], &body].concat());
    write("http_tx", "get_kv", b"GET\n/kv/a%20b+c%e2%82%ac?x=1\n");
    write(
        "http_tx",
        "get_tx",
        format!("GET\n/tx/{}\n", Hash::of(&kv_tx)).as_bytes(),
    );
    write("http_tx", "get_block", b"GET\n/block/12\n");
    write("http_tx", "wrong_method", b"DELETE\n/status\n");

    let net = tempfile::tempdir().expect("a temp dir");
    testnet(&TestnetParams {
        voters: VOTERS,
        proposers: 2,
        out: net.path().to_path_buf(),
        network_id: NET,
        p2p_base_port: 19000,
        http_base_port: 18000,
        template: None,
    })
    .expect("write a testnet");
    let mut configs = 0;
    for e in walk(net.path()) {
        let Some(name) = e.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            continue;
        };
        if !name.ends_with(".toml") {
            continue;
        }
        let text = std::fs::read(&e).expect("read a testnet file");
        if name.contains("genesis") {
            write("genesis", &name, &text);
        } else if configs < 3 {
            configs += 1;
            write("config", &name, &text);
            let with_env = [&text[..], b"\0PALA_NETWORK_READ_TIMEOUT_MS=1\n"].concat();
            write("config", &format!("{name}.env"), &with_env);
        }
    }
    println!("seeds written to {}", corpus("").display());
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("list a dir") {
        let p = e.expect("an entry").path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
