//! `medchain search`: a researcher's encrypted search, end to end.
//!
//! 1. The query is parsed here; the terms it needs are listed (never sent in plaintext to a node
//!    other than as the query text to the node that runs it; see LEAKAGE.md).
//! 2. For each hospital searched: the researcher's committed `SearchAuthorization` from it is
//!    looked up, a `SearchLog` committing to the request's digest is committed, and the
//!    hospital's token service hands out the term keys of the closed epochs asked for.
//! 3. The query and the keys go to one node, which answers with record ids, anchors, inclusion
//!    proofs and certified headers.
//! 4. Every result is checked against the genesis (certificates, proofs, anchors, signatures)
//!    before anything is shown; one bad proof fails the whole search.

use crate::cli::researcher::any_validator;
use crate::client::Client;
use crate::consortium::{read_key, Consortium};
use crate::output::report;
use anyhow::{bail, Context, Result};
use engine::crypto::{PublicKey, SigningKey};
use engine::tx::{Payload, SearchLog};
use index::tokens::{TermRef, TokenQuery, TokenRequest, TokenResponse};
use net::search::{verify_search_response, SearchKey, SearchRequest, SearchResponse};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// How long the search waits for its `SearchLog` to commit.
const COMMIT_TIMEOUT: Duration = Duration::from_secs(60);

/// Arguments of `medchain search`.
#[derive(clap::Args, Debug)]
pub struct SearchArgs {
    /// The consortium folder (for the genesis and the nodes' addresses).
    #[arg(long)]
    pub consortium: PathBuf,
    /// The researcher's key file (from `medchain researcher enroll`).
    #[arg(long)]
    pub key: PathBuf,
    /// A hospital (validator name) whose domain to search; repeat for several. Default: every
    /// hospital that has authorised this researcher.
    #[arg(long = "hospital")]
    pub hospitals: Vec<String>,
    /// The node that runs the search (any node, auditors included). Default: the first
    /// validator that answers.
    #[arg(long)]
    pub node: Option<String>,
    /// Epochs to search, `FROM..TO` (TO exclusive). Default: from the genesis to the last
    /// closed epoch.
    #[arg(long)]
    pub epochs: Option<String>,
    /// Print one JSON object: `{"count":N,"records":[…],…}`.
    #[arg(long)]
    pub json: bool,
    /// The query, e.g. `icd10:E11 AND loinc:4548-4>8 AND year:2024`.
    pub query: String,
}

/// One verified result.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct FoundRecord {
    /// The record id.
    pub record_id: String,
    /// The writing hospital's name.
    pub hospital: String,
    /// The public data type.
    pub data_type: String,
    /// The writer's creation time (ms since the Unix epoch).
    pub created_at_ms: u64,
    /// The block holding the anchor.
    pub height: u64,
    /// The patient who owns it.
    pub owner: String,
}

/// What `medchain search` prints.
#[derive(Serialize, Debug, Clone)]
pub struct SearchOutput {
    /// Matching records in all.
    pub count: usize,
    /// The verified records (all of them unless `truncated`).
    pub records: Vec<FoundRecord>,
    /// Whether the node cut the list short.
    pub truncated: bool,
    /// Every record's inclusion proof and certificate was checked.
    pub verified: bool,
    /// The node that ran the search and its indexed height.
    pub node: String,
    /// The index height the search ran at.
    pub indexed_height: u64,
    /// The `SearchLog` transactions committed for this search, one per hospital.
    pub search_logs: Vec<String>,
    /// Term keys received in all.
    pub keys: usize,
}

/// Runs `medchain search`.
pub fn run(args: SearchArgs) -> Result<ExitCode> {
    let c = Consortium::load(&args.consortium)?;
    let researcher = read_key(&args.key)?;
    let epochs = args.epochs.as_deref().map(parse_epochs).transpose()?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let out = rt.block_on(search(&c, &researcher, &args.hospitals, args.node.as_deref(), &args.query, epochs))?;
    report(args.json, &out, || human(&out));
    Ok(ExitCode::SUCCESS)
}

fn parse_epochs(s: &str) -> Result<(u64, u64)> {
    let (a, b) = s.split_once("..").context("--epochs must be FROM..TO, e.g. 480000..480024")?;
    let (a, b): (u64, u64) = (a.trim().parse().context("--epochs FROM")?, b.trim().parse().context("--epochs TO")?);
    if a >= b {
        bail!("--epochs {a}..{b} is empty: FROM must be below TO (TO is exclusive)");
    }
    Ok((a, b))
}

fn human(out: &SearchOutput) -> String {
    let mut s = format!(
        "{} matching record(s){}, every proof checked (node {}, index at height {}; {} keys, SearchLog {})\n",
        out.count,
        if out.truncated { format!(", first {} shown", out.records.len()) } else { String::new() },
        out.node,
        out.indexed_height,
        out.keys,
        out.search_logs.join(", ")
    );
    for r in &out.records {
        s.push_str(&format!(
            "  {}  {:<18} {:<8} created {}  block {}\n",
            r.record_id, r.data_type, r.hospital, r.created_at_ms, r.height
        ));
    }
    s
}

#[derive(Deserialize)]
struct StatusIndex {
    index: StatusIndexInner,
}

#[derive(Deserialize)]
struct StatusIndexInner {
    domain: Option<StatusDomain>,
}

#[derive(Deserialize)]
struct StatusDomain {
    epoch_len_ms: u64,
    first_open_epoch: u64,
}

#[derive(Deserialize)]
struct Authorizations {
    authorizations: Vec<AuthorizationEntry>,
}

#[derive(Deserialize)]
struct AuthorizationEntry {
    id: engine::tx::TxId,
    hospital: PublicKey,
    expires_at_ms: u64,
}

/// The whole search: see the module documentation. Used by `search` and `demo`.
pub async fn search(
    c: &Consortium,
    researcher: &SigningKey,
    hospitals: &[String],
    node: Option<&str>,
    query_text: &str,
    epochs: Option<(u64, u64)>,
) -> Result<SearchOutput> {
    let query = index::query::parse(query_text)
        .map_err(|e| anyhow::anyhow!("the query is not valid: {e}\n{}", e.render(query_text)))?;
    let terms: Vec<TermRef> = query.terms().into_iter().map(|t| TermRef { field: t.field, value: t.value }).collect();
    let genesis = c.genesis()?;
    let chain = genesis.chain_id().clone();
    let me = researcher.public();

    // Which hospitals, and the authorization each gave.
    let lookup = any_validator(c).await?;
    let auths: Authorizations =
        lookup.get_json(&format!("/v1/researchers/{}/search-authorizations", me.to_hex())).await?;
    let now = net::driver::now_ms();
    let names: Vec<String> = if hospitals.is_empty() {
        c.validators()
            .filter(|v| {
                let key = c.node_key(&v.name).map(|k| k.public()).ok();
                auths.authorizations.iter().any(|a| Some(a.hospital) == key && a.expires_at_ms > now)
            })
            .map(|v| v.name.clone())
            .collect()
    } else {
        hospitals.to_vec()
    };
    if names.is_empty() {
        bail!(
            "no hospital has authorised {me} to search (or every authorization has expired); ask one to run `medchain researcher authorize`"
        );
    }

    let mut keys = Vec::new();
    let mut logs = Vec::new();
    // The SearchLogs go through each hospital's node in turn; the nonces are counted here,
    // because the next node may not have applied the previous SearchLog yet.
    // The highest nonce any validator has seen: the last search may have committed elsewhere.
    let mut tx_nonce = lookup.nonce(&me).await?;
    for v in c.validators() {
        if let Ok(n) = Client::new(v.http)?.nonce(&me).await {
            tx_nonce = tx_nonce.max(n);
        }
    }
    for name in &names {
        let entry = c
            .validators()
            .find(|v| &v.name == name)
            .with_context(|| format!("{name:?} is not a hospital (validator) of this consortium"))?;
        let hospital = genesis
            .body
            .validators
            .iter()
            .find(|v| &v.name == name)
            .map(|v| v.key)
            .with_context(|| format!("{name:?} is not in the genesis"))?;
        let authorization = auths
            .authorizations
            .iter()
            .filter(|a| a.hospital == hospital && a.expires_at_ms > now)
            .max_by_key(|a| a.expires_at_ms)
            .with_context(|| {
                format!("{name} has not authorised {me} to search its domain, or the authorization expired; ask it to run `medchain researcher authorize --hospital {name}`")
            })?
            .id;
        let client = Client::new(entry.http)?;
        let status: StatusIndex = client.get_json("/v1/status").await?;
        let domain = status.index.domain.with_context(|| format!("{name} serves no search domain"))?;
        let (epoch_from, epoch_to) = match epochs {
            Some(e) => e,
            None => (genesis.body.created_at_ms / domain.epoch_len_ms.max(1), domain.first_open_epoch),
        };
        if epoch_from >= epoch_to {
            bail!(
                "{name}: no closed epoch to search yet (epochs are {} ms long; records become searchable once their epoch closes)",
                domain.epoch_len_ms
            );
        }
        let mut nonce = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut nonce);
        let token_query = TokenQuery { hospital, authorization, terms: terms.clone(), epoch_from, epoch_to, nonce };
        let log = Payload::SearchLog(SearchLog {
            hospital,
            authorization,
            query_digest: token_query.digest(),
            term_count: terms.len() as u32,
        });
        // Committed through the hospital's own node, so that its token service sees it at once.
        tx_nonce += 1;
        let search_log = client
            .commit_payload_at(&chain, researcher, &[], log, tx_nonce, COMMIT_TIMEOUT)
            .await
            .with_context(|| format!("committing the SearchLog for {name}"))?;
        logs.push(search_log.to_hex());
        let request = TokenRequest::sign(researcher, &chain, search_log, token_query);
        let response: TokenResponse = client
            .post_json("/v1/index/tokens", &request)
            .await
            .with_context(|| format!("asking {name}'s token service for keys"))?;
        keys.extend(response.keys.into_iter().map(|k| SearchKey {
            hospital,
            field: k.field,
            value: k.value,
            epoch: k.epoch,
            key: k.key,
        }));
    }

    let (node_name, client) = match node {
        Some(n) => {
            let e = c.nodes.iter().find(|e| e.name == n).with_context(|| format!("no node named {n:?}"))?;
            (n.to_string(), Client::new(e.http)?)
        }
        None => {
            let v = c.validators().next().context("the consortium lists no validator")?;
            (v.name.clone(), lookup)
        }
    };
    let key_count = keys.len();
    let response: SearchResponse = client
        .post_json("/v1/search", &SearchRequest { query: query_text.to_string(), keys })
        .await
        .with_context(|| format!("searching on {node_name}"))?;
    let anchors = verify_search_response(&genesis, &response)
        .with_context(|| format!("{node_name} answered with a result that does not check out; nothing is shown"))?;
    let name_of = |key: &PublicKey| {
        genesis.body.validators.iter().find(|v| v.key == *key).map_or_else(|| key.short(), |v| v.name.clone())
    };
    let records = response
        .records
        .iter()
        .zip(&anchors)
        .map(|(r, a)| FoundRecord {
            record_id: r.record_id.to_hex(),
            hospital: name_of(&r.hospital),
            data_type: r.data_type.clone(),
            created_at_ms: r.created_at_ms,
            height: r.height,
            owner: a.owner.to_hex(),
        })
        .collect();
    Ok(SearchOutput {
        count: response.count,
        records,
        truncated: response.truncated,
        verified: true,
        node: node_name,
        indexed_height: response.indexed_height,
        search_logs: logs,
        keys: key_count,
    })
}
