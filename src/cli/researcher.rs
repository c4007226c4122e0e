//! `medchain researcher`: enrol a researcher (by the consortium CA) and authorise a search (by
//! a hospital), the two on-chain steps before a researcher can search a hospital's domain.

use crate::client::Client;
use crate::consortium::{random_key, read_key, write_key, Consortium};
use crate::output::report;
use anyhow::{bail, Context, Result};
use engine::crypto::PublicKey;
use engine::tx::{Enroll, Payload, Role, SearchAuthorization};
use serde::Serialize;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// How long `researcher` commands wait for their transaction to commit.
const COMMIT_TIMEOUT: Duration = Duration::from_secs(60);

/// `medchain researcher …`.
#[derive(clap::Subcommand, Debug)]
pub enum ResearcherCommand {
    /// Create a researcher key and enrol it (signed by the consortium CA; run by the CA's operator).
    Enroll(EnrollArgs),
    /// Authorise a researcher to search a hospital's domain (signed by that hospital's key).
    Authorize(AuthorizeArgs),
}

/// `medchain researcher enroll`.
#[derive(clap::Args, Debug)]
pub struct EnrollArgs {
    /// The consortium folder made by `medchain init` (its `ca/ca.key` signs the enrolment).
    #[arg(long)]
    pub consortium: PathBuf,
    /// The researcher's display name, recorded on chain.
    #[arg(long)]
    pub name: String,
    /// Where to write the researcher's new key (refuses to overwrite).
    #[arg(long)]
    pub out: PathBuf,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `medchain researcher authorize`.
#[derive(clap::Args, Debug)]
pub struct AuthorizeArgs {
    /// The consortium folder.
    #[arg(long)]
    pub consortium: PathBuf,
    /// The hospital (validator name) that authorises, e.g. `node0`; its node key signs.
    #[arg(long)]
    pub hospital: String,
    /// The researcher's public key (64 hex characters)...
    #[arg(long, conflicts_with = "researcher_key", required_unless_present = "researcher_key")]
    pub researcher: Option<String>,
    /// ...or the researcher's key file (only its public half is used).
    #[arg(long)]
    pub researcher_key: Option<PathBuf>,
    /// Days until the authorization expires.
    #[arg(long, default_value_t = 30)]
    pub days: u64,
    /// Why the researcher may search (recorded on chain).
    #[arg(long)]
    pub purpose: String,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct Enrolled {
    researcher: PublicKey,
    name: String,
    key_file: String,
    tx: String,
}

#[derive(Serialize)]
struct Authorized {
    authorization: String,
    hospital: PublicKey,
    researcher: PublicKey,
    expires_at_ms: u64,
}

/// Runs `medchain researcher …`.
pub fn run(command: ResearcherCommand) -> Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match command {
        ResearcherCommand::Enroll(a) => {
            let out = rt.block_on(enroll(&a))?;
            report(a.json, &out, || {
                format!(
                    "enrolled researcher {:?} as {} (tx {}); key written to {}",
                    out.name, out.researcher, out.tx, out.key_file
                )
            });
        }
        ResearcherCommand::Authorize(a) => {
            let out = rt.block_on(authorize(&a))?;
            report(a.json, &out, || {
                format!(
                    "authorization {} committed: {} may search {}'s domain until {} ms",
                    out.authorization, out.researcher, a.hospital, out.expires_at_ms
                )
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The first validator that answers, for submissions that any node accepts.
pub async fn any_validator(c: &Consortium) -> Result<Client> {
    let mut last = None;
    for v in c.validators() {
        let client = Client::new(v.http)?;
        match client.status().await {
            Ok(_) => return Ok(client),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("the consortium lists no validator")))
        .context("no validator of the consortium answers; are the nodes running?")
}

async fn enroll(a: &EnrollArgs) -> Result<Enrolled> {
    if a.out.exists() {
        bail!("{} exists; refusing to overwrite a key (choose another --out)", a.out.display());
    }
    let c = Consortium::load(&a.consortium)?;
    let ca = read_key(&c.dir.join("ca").join("ca.key")).context("enrolling needs the consortium CA's key")?;
    let genesis = c.genesis()?;
    let client = any_validator(&c).await?;
    let key = random_key();
    let payload = Payload::Enroll(Enroll { key: key.public(), role: Role::Researcher, name: a.name.clone() });
    // Write the key first: a committed enrolment whose key was lost could never be used.
    write_key(&a.out, &key)?;
    let tx = client.commit_payload(genesis.chain_id(), &ca, &[], payload, COMMIT_TIMEOUT).await?;
    Ok(Enrolled {
        researcher: key.public(),
        name: a.name.clone(),
        key_file: a.out.display().to_string(),
        tx: tx.to_hex(),
    })
}

async fn authorize(a: &AuthorizeArgs) -> Result<Authorized> {
    let c = Consortium::load(&a.consortium)?;
    let researcher = match (&a.researcher, &a.researcher_key) {
        (Some(hex), _) => PublicKey::from_hex(hex).context("--researcher must be 64 hex characters")?,
        (None, Some(path)) => read_key(path)?.public(),
        (None, None) => bail!("give --researcher or --researcher-key"),
    };
    let entry = c
        .validators()
        .find(|v| v.name == a.hospital)
        .with_context(|| format!("{:?} is not a validator (hospital) of this consortium", a.hospital))?;
    let hospital = c.node_key(&entry.name)?;
    let genesis = c.genesis()?;
    let client = Client::new(entry.http)?;
    let expires_at_ms = net::driver::now_ms().saturating_add(a.days.saturating_mul(86_400_000));
    let payload =
        Payload::SearchAuthorization(SearchAuthorization { researcher, purpose: a.purpose.clone(), expires_at_ms });
    let tx = client.commit_payload(genesis.chain_id(), &hospital, &[], payload, COMMIT_TIMEOUT).await?;
    Ok(Authorized { authorization: tx.to_hex(), hospital: hospital.public(), researcher, expires_at_ms })
}
