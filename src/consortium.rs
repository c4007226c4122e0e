//! A consortium folder as `medchain init` writes it, and the key files in it.
//!
//! ```text
//! DIR/consortium.toml      chain id and every node: name, role, folder, addresses
//! DIR/genesis.bin          the CA-signed genesis, canonical encoding
//! DIR/genesis.json         the same, readable
//! DIR/ca/ca.key            the CA's Ed25519 seed (hex, mode 0600) — keep offline in production
//! DIR/ca/ca.pem            the consortium CA certificate
//! DIR/nodeI/node.toml      the node's configuration
//! DIR/nodeI/node.key       the node's Ed25519 seed (hex, mode 0600); also its TLS key
//! DIR/nodeI/node.pem       the node's certificate, issued by the CA
//! DIR/nodeI/data/          the node's chain (redb) and later its index
//! ```

use anyhow::{bail, Context, Result};
use engine::codec;
use engine::crypto::SigningKey;
use engine::genesis::Genesis;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The summary file at the root of a consortium folder.
pub const CONSORTIUM_FILE: &str = "consortium.toml";

/// What a node does in the consortium.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeRole {
    /// Votes in PBFT.
    Validator,
    /// Follows and re-verifies, never votes.
    Auditor,
}

/// One node as listed in consortium.toml.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeEntry {
    /// Node name (also its folder name).
    pub name: String,
    /// Validator or auditor.
    pub role: NodeRole,
    /// QUIC address for peers.
    pub p2p: SocketAddr,
    /// HTTP API address for clients.
    pub http: SocketAddr,
}

/// consortium.toml.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Consortium {
    /// The chain id.
    pub chain_id: String,
    /// Every node, validators first.
    pub nodes: Vec<NodeEntry>,
    /// Where this file was read from (not stored).
    #[serde(skip)]
    pub dir: PathBuf,
}

impl Consortium {
    /// Reads DIR/consortium.toml.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(CONSORTIUM_FILE);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!("cannot read {}: is {} a folder made by `medchain init`?", path.display(), dir.display())
        })?;
        let mut c: Consortium =
            toml::from_str(&text).with_context(|| format!("{} is not a valid consortium file", path.display()))?;
        c.dir = dir.to_path_buf();
        Ok(c)
    }

    /// Writes DIR/consortium.toml.
    pub fn save(&self) -> Result<()> {
        let path = self.dir.join(CONSORTIUM_FILE);
        std::fs::write(&path, toml::to_string_pretty(self)?).with_context(|| format!("cannot write {}", path.display()))
    }

    /// The folder of node `name`.
    pub fn node_dir(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The validators.
    pub fn validators(&self) -> impl Iterator<Item = &NodeEntry> {
        self.nodes.iter().filter(|n| n.role == NodeRole::Validator)
    }

    /// The genesis stored in the folder.
    pub fn genesis(&self) -> Result<Genesis> {
        read_genesis(&self.dir.join("genesis.bin"))
    }

    /// The signing key of node `name` (a validator's key is also its hospital key).
    pub fn node_key(&self, name: &str) -> Result<SigningKey> {
        read_key(&self.node_dir(name).join("node.key"))
    }
}

/// Reads and checks a genesis file.
pub fn read_genesis(path: &Path) -> Result<Genesis> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read the genesis {}", path.display()))?;
    let g: Genesis =
        codec::decode(&bytes, 1 << 20).with_context(|| format!("{} is not a valid genesis", path.display()))?;
    g.verify().with_context(|| format!("{} fails verification", path.display()))?;
    Ok(g)
}

/// Reads a hex seed file.
pub fn read_key(path: &Path) -> Result<SigningKey> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read the key file {}", path.display()))?;
    let mut seed = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut seed)
        .with_context(|| format!("{} must hold 64 hex characters (an Ed25519 seed)", path.display()))?;
    Ok(SigningKey::from_seed(seed))
}

/// Writes a hex seed file readable only by its owner.
pub fn write_key(path: &Path, key: &SigningKey) -> Result<()> {
    write_private(path, hex::encode(key.seed()).as_bytes())
}

/// Writes a file with mode 0600 (on Unix), refusing to replace an existing one.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

/// A fresh key from the operating system's randomness (the binary's edge may draw randomness;
/// the engine never does).
pub fn random_key() -> SigningKey {
    let mut seed = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut seed);
    SigningKey::from_seed(seed)
}

/// Refuses to reuse a folder that already holds a consortium.
pub fn ensure_fresh(dir: &Path) -> Result<()> {
    if dir.join(CONSORTIUM_FILE).exists() || dir.join("genesis.bin").exists() {
        bail!(
            "{} already holds a consortium; refusing to overwrite it (choose another --out, or remove it yourself)",
            dir.display()
        );
    }
    Ok(())
}
