//! A cluster configured by host name only: the genesis names the proposers as
//! `localhost:PORT`, the proposers listen on `localhost:PORT`, and a voter also lists the
//! first proposer as a bootnode by name. Every node is a separate `pala-node` process.

mod common;

use common::*;

#[test]
fn cluster_by_host_name_finalizes() {
    let _g = serial();
    let (proposers, voters) = (2, 3);
    let by_name = |addr: &str| addr.replace("127.0.0.1", "localhost");
    let mut first = String::new();
    let mut c = Cluster::configure(proposers, voters, |g| {
        for p in g.proposers.iter_mut() {
            p.address = by_name(&p.address);
        }
        first = g.proposers[0].address.clone();
    });
    for (i, path) in c.configs.iter().enumerate() {
        let mut cfg: toml::Table = std::fs::read_to_string(path).unwrap().parse().unwrap();
        let net = cfg["network"].as_table_mut().unwrap();
        if i < proposers {
            let listen = by_name(net["listen"].as_str().unwrap());
            net.insert("listen".into(), listen.into());
        }
        if i == proposers {
            // Also reached as a bootnode by name: the same entry as its genesis address.
            net.insert(
                "bootnodes".into(),
                toml::Value::Array(vec![first.clone().into()]),
            );
        }
        std::fs::write(path, toml::to_string(&cfg).unwrap()).unwrap();
    }
    for i in 0..proposers + voters {
        c.start(i);
    }
    c.wait("every node finalizes 5 blocks by name", 60, |c| {
        (0..proposers + voters).all(|i| c.finalized(i) >= 5)
    });
}
