//! A consortium in a temp folder for the network tests: CA, node keys, certificates, genesis.
#![allow(dead_code)]

use engine::crypto::{ChainId, SigningKey};
use engine::genesis::{ChainParams, Genesis, GenesisBody, NodeInfo};
use net::tls::{ca_certificate, node_certificate, AllowedKeys, TlsIdentity};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Keys, certificates and genesis of a test consortium.
pub struct Consortium {
    pub chain_id: ChainId,
    pub ca: SigningKey,
    pub ca_pem: String,
    pub keys: Vec<SigningKey>,
    pub names: Vec<String>,
    pub cert_pems: Vec<String>,
    pub genesis: Arc<Genesis>,
}

impl Consortium {
    /// `validators` validators and `auditors` auditors, keys from fixed seeds.
    pub fn new(validators: usize, auditors: usize) -> Self {
        let chain_id = ChainId::new("net-test").unwrap();
        let ca = SigningKey::from_seed([200; 32]);
        let ca_pem = ca_certificate(&ca, &chain_id).unwrap();
        let n = validators + auditors;
        let keys: Vec<SigningKey> = (0..n).map(|i| SigningKey::from_seed([i as u8 + 1; 32])).collect();
        let names: Vec<String> = (0..n)
            .map(|i| if i < validators { format!("node{i}") } else { format!("auditor{}", i - validators) })
            .collect();
        let cert_pems = keys.iter().zip(&names).map(|(k, n)| node_certificate(&ca, &ca_pem, k, n).unwrap()).collect();
        let info = |i: usize| NodeInfo { name: names[i].clone(), key: keys[i].public() };
        let body = GenesisBody {
            chain_id: chain_id.clone(),
            created_at_ms: 1_700_000_000_000,
            ca_key: ca.public(),
            validators: (0..validators).map(info).collect(),
            auditors: (validators..n).map(info).collect(),
            params: ChainParams::default(),
        };
        let genesis = Arc::new(body.sign(&ca));
        genesis.verify().unwrap();
        Consortium { chain_id, ca, ca_pem, keys, names, cert_pems, genesis }
    }

    pub fn allowed(&self) -> AllowedKeys {
        AllowedKeys::new(self.keys.iter().map(|k| k.public()))
    }

    /// The TLS identity of node `i`.
    pub fn identity(&self, i: usize) -> TlsIdentity {
        TlsIdentity::from_pem(&self.ca_pem, &self.cert_pems[i], self.keys[i].clone(), self.allowed()).unwrap()
    }
}

/// Polls `check` every 10 ms until it returns true or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Writes the consortium's files for node `i` into `dir` and returns its configuration
/// (addresses on loopback, port 0 unless given).
pub fn node_files(c: &Consortium, dir: &std::path::Path, i: usize, p2p_port: u16) -> net::NodeConfig {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("genesis.bin"), engine::codec::encode(&*c.genesis)).unwrap();
    std::fs::write(dir.join("ca.pem"), &c.ca_pem).unwrap();
    let name = &c.names[i];
    std::fs::write(dir.join(format!("{name}.key")), hex::encode(c.keys[i].seed())).unwrap();
    std::fs::write(dir.join(format!("{name}.pem")), &c.cert_pems[i]).unwrap();
    let text = format!(
        r#"
name = "{name}"
data_dir = "{name}-data"
p2p_listen = "127.0.0.1:{p2p_port}"
http_listen = "127.0.0.1:0"
genesis = "genesis.bin"
node_key = "{name}.key"
ca_cert = "ca.pem"
node_cert = "{name}.pem"
batch_delay_ms = 5
view_change_timeout_ms = 1500
"#
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    net::NodeConfig::load(&path).unwrap()
}

/// A hospital (validator `sender`) enrols a new patient: a transaction any validator accepts.
pub fn enroll(c: &Consortium, sender: usize, nonce: u64, patient_seed: u8) -> engine::tx::Transaction {
    use engine::tx::{Enroll, Payload, Role, TxBody};
    let patient = SigningKey::from_seed([patient_seed; 32]).public();
    let body = TxBody {
        sender: c.keys[sender].public(),
        nonce,
        expiry_height: 1_000_000,
        payload: Payload::Enroll(Enroll { key: patient, role: Role::Patient, name: format!("patient-{patient_seed}") }),
    };
    body.sign(&c.chain_id, &[&c.keys[sender]])
}

/// `http://ADDR`.
pub fn base(addr: std::net::SocketAddr) -> String {
    format!("http://{addr}")
}

/// GET a JSON document; returns the status code and the body.
pub async fn get_json(http: &reqwest::Client, url: &str) -> (u16, serde_json::Value) {
    let r = http.get(url).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}

/// POST a JSON document; returns the status code and the body.
pub async fn post_json(http: &reqwest::Client, url: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
    let r = http.post(url).json(body).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}
