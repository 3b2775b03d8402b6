//! Host-name layouts of `pala testnet --hosts` / `--host-template`: each node on a host of
//! its own (a compose service, a Kubernetes pod, a machine), reached by name on fixed ports,
//! instead of the loopback layout's one port per node on 127.0.0.1.

use anyhow::{bail, Result};

/// The directory the container image and the systemd unit give the node for its data.
pub const DATA_DIR: &str = "/var/lib/pala";

/// How node `i` of a role is named on the network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostLayout {
    template: String,
}

impl HostLayout {
    /// `compose`: the compose services `proposer0`, `voter0`, ... of deploy/compose.yaml.
    /// `k8s`: the pods of deploy/k8s, `pala-proposer-0` of StatefulSet `pala-proposer`
    /// under the headless Service `pala` (reachable as `pala-proposer-0.pala` from the
    /// same namespace).
    pub fn preset(name: &str) -> Result<HostLayout> {
        match name {
            "compose" => HostLayout::from_template("{role}{i}"),
            "k8s" => HostLayout::from_template("pala-{role}-{i}.pala"),
            other => bail!("--hosts {other}: expected `compose` or `k8s` (or use --host-template)"),
        }
    }

    /// A template with `{role}` (`proposer`, `voter`, `spare`) and `{i}` (the index within
    /// the role), e.g. `pala-{role}-{i}.pala.validators.svc.cluster.local`.
    pub fn from_template(template: &str) -> Result<HostLayout> {
        let layout = HostLayout {
            template: template.to_string(),
        };
        if !template.contains("{i}") || !template.contains("{role}") {
            bail!("--host-template `{template}`: needs both {{role}} and {{i}}, so every node gets its own name");
        }
        let sample = format!("{}:1", layout.host("proposer", 0));
        if sample.parse::<pala_net::PeerAddr>().is_err() || sample.contains('{') {
            bail!("--host-template `{template}`: `{sample}` is not a valid host name");
        }
        Ok(layout)
    }

    /// The host name of node `i` of `role`.
    pub fn host(&self, role: &str, i: usize) -> String {
        self.template
            .replace("{role}", role)
            .replace("{i}", &i.to_string())
    }

    /// The node's file name (config, key): the host name's first label, which is the
    /// compose service or the pod name the deploy files look the files up by.
    pub fn node_name(&self, role: &str, i: usize) -> String {
        let host = self.host(role, i);
        host.split('.').next().unwrap_or(&host).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_and_templates() {
        let c = HostLayout::preset("compose").unwrap();
        assert_eq!(c.host("voter", 3), "voter3");
        assert_eq!(c.node_name("voter", 3), "voter3");
        let k = HostLayout::preset("k8s").unwrap();
        assert_eq!(k.host("proposer", 1), "pala-proposer-1.pala");
        assert_eq!(k.node_name("proposer", 1), "pala-proposer-1");
        let t = HostLayout::from_template("{role}-{i}.example.org").unwrap();
        assert_eq!(t.host("voter", 0), "voter-0.example.org");
        for bad in [
            "{role}.pala",
            "node-{i}",
            "{role} {i}",
            "{role}-{i}:80",
            "{role}{i}.{x}",
        ] {
            assert!(HostLayout::from_template(bad).is_err(), "{bad}");
        }
        assert!(HostLayout::preset("swarm").is_err());
    }

    /// `pala testnet --hosts k8s`: the genesis names the proposers by host on one port,
    /// every config loads, listens on all interfaces and keeps its data in DATA_DIR.
    #[test]
    fn testnet_with_host_names_loads() {
        use crate::config::Config;
        use crate::genesis::{testnet_on, GenesisFile, TestnetParams};
        let dir = tempfile::tempdir().unwrap();
        let p = TestnetParams {
            voters: 4,
            proposers: 2,
            out: dir.path().to_path_buf(),
            network_id: 3,
            p2p_base_port: 7100,
            http_base_port: 8100,
            template: None,
        };
        let t = testnet_on(&p, Some(&HostLayout::preset("k8s").unwrap())).unwrap();
        assert_eq!(t.configs.len(), 6);
        assert_eq!(t.http[2], "pala-voter-0.pala:8100");
        let g = GenesisFile::read(&dir.path().join("genesis.toml")).unwrap();
        let addrs: Vec<&str> = g.proposers.iter().map(|m| m.address.as_str()).collect();
        assert_eq!(
            addrs,
            ["pala-proposer-0.pala:7100", "pala-proposer-1.pala:7100"]
        );
        assert_eq!(g.load().unwrap().committee.proposers.len(), 2);
        let mut broken = g.clone();
        broken.proposers[1].address = "pala proposer:7100".into();
        let e = broken.load().unwrap_err().to_string();
        assert!(
            e.contains("proposers[1].address") && e.contains("host:port"),
            "{e}"
        );
        let c = Config::load(&dir.path().join("pala-proposer-1.toml")).unwrap();
        assert_eq!(c.network.listen, "0.0.0.0:7100");
        assert_eq!(c.http.listen, "0.0.0.0:8100");
        assert!(c.http.forward_to.is_empty());
        assert_eq!(c.node.data_dir, std::path::Path::new(DATA_DIR));
        assert_eq!(c.node.key_file, dir.path().join("keys/pala-proposer-1.key"));
        let v = Config::load(&dir.path().join("pala-voter-3.toml")).unwrap();
        assert!(v.network.listen.is_empty());
    }
}
