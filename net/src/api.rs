//! The HTTP API under `/v1` (JSON) and `/metrics` (Prometheus text).
//!
//! Every refusal is a 4xx (or 503 when the node cannot serve) with
//! `{"error":{"code":…,"message":…,"field":…}}`; `code` is stable and machine-readable,
//! `message` says what to do, `field` names the input to fix when there is one. Transactions are
//! decoded strictly, checked statelessly and signature-verified in one batch before the replica
//! sees them; nothing a client sends can panic the node.

use crate::driver::{tx_error_code, DriverInput, Tracked};
use crate::limits::{HTTP_BATCH_TXS_MAX, HTTP_BODY_BYTES_MAX};
use crate::node::{NodeShared, Role};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use engine::codec::Digest;
use engine::state::{check_stateless, Outcome, TxError};
use engine::tx::{Transaction, TxId};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::Arc;
use tokio::sync::oneshot;

/// A refusal as the API reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ApiError {
    /// HTTP status.
    #[serde(skip)]
    pub status: u16,
    /// Stable machine-readable code (`bad_signature`, `stale_nonce`, `malformed_hex`, …).
    pub code: &'static str,
    /// What is wrong and what to do.
    pub message: String,
    /// The input to fix, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>, field: Option<&str>) -> Self {
        ApiError { status: status.as_u16(), code, message: message.into(), field: field.map(Into::into) }
    }

    pub(crate) fn unavailable() -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the node is stopping or has halted", None)
    }

    fn from_tx_error(e: &TxError, field_prefix: &str) -> Self {
        let status = match e {
            TxError::Duplicate(_) => StatusCode::CONFLICT,
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        let field = e.field().map(|f| format!("{field_prefix}{f}"));
        ApiError { status: status.as_u16(), code: tx_error_code(e), message: e.to_string(), field }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST);
        (status, Json(json!({ "error": self }))).into_response()
    }
}

type Shared = State<Arc<NodeShared>>;

/// The API's routes over a node.
pub(crate) fn router(node: Arc<NodeShared>) -> Router {
    Router::new()
        .route("/v1/transactions", post(submit_one))
        .route("/v1/transactions/batch", post(submit_batch))
        .route("/v1/transactions/{id}", get(tx_status))
        .route("/v1/blocks/{height}", get(block))
        .route("/v1/commits", get(commits))
        .route("/v1/participants/{key}", get(participant))
        .route("/v1/keys", get(crate::sharing::keys))
        .route("/v1/reads/{id}/share", post(crate::sharing::read_share))
        .route("/v1/records/{id}", get(crate::sharing::record))
        .route("/v1/patients/{key}/audit", get(crate::sharing::audit))
        .route("/v1/status", get(status))
        .route("/v1/openapi.json", get(openapi))
        .route("/metrics", get(metrics))
        .merge(crate::search::routes())
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "no_such_endpoint", "no such endpoint; see /v1/status", None)
        })
        .layer(DefaultBodyLimit::max(HTTP_BODY_BYTES_MAX))
        .layer(axum::middleware::from_fn(refuse_announced_oversize))
        .with_state(node)
}

/// Refuses a request whose announced body is over the limit before reading any of it, so a
/// client cannot hold a connection by announcing a large body and sending it slowly.
async fn refuse_announced_oversize(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(len) = announced.filter(|len| *len > HTTP_BODY_BYTES_MAX as u64) {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the body announces {len} bytes; the limit is {HTTP_BODY_BYTES_MAX} bytes"),
            None,
        )
        .into_response();
    }
    next.run(req).await
}

pub(crate) fn body_bytes(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|e| {
        let status = e.status();
        let code = if status == StatusCode::PAYLOAD_TOO_LARGE { "body_too_large" } else { "bad_body" };
        ApiError::new(status, code, format!("{e} (the limit is {HTTP_BODY_BYTES_MAX} bytes)"), None)
    })
}

pub(crate) fn parse_json<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_json", format!("the body is not the expected JSON: {e}"), None)
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubmitOne {
    tx: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubmitBatch {
    txs: Vec<String>,
}

/// Hex → strict canonical decoding → stateless checks.
fn decode_tx(hex_text: &str, field: &str) -> Result<Transaction, ApiError> {
    let bytes = hex::decode(hex_text.trim()).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_hex",
            format!("not hex: {e}; send the canonical encoding of the transaction as hex"),
            Some(field),
        )
    })?;
    let tx = Transaction::decode(&bytes).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_transaction",
            format!("not a canonical transaction encoding: {e}"),
            Some(field),
        )
    })?;
    check_stateless(&tx).map_err(|e| ApiError::from_tx_error(&e, ""))?;
    Ok(tx)
}

/// Refuses every item of a submission for the same reason, counting each.
fn refuse_all(
    node: &NodeShared,
    items: Vec<Result<Transaction, ApiError>>,
    e: ApiError,
) -> Vec<Result<TxId, ApiError>> {
    node.metrics.txs_refused.add(e.code, items.len() as u64);
    items.into_iter().map(|_| Err(e.clone())).collect()
}

/// Checks, verifies and hands over transactions; one result per input, in order.
pub(crate) async fn submit(
    node: &Arc<NodeShared>,
    items: Vec<Result<Transaction, ApiError>>,
) -> Vec<Result<TxId, ApiError>> {
    if node.role == Role::Auditor {
        let e = ApiError::new(
            StatusCode::FORBIDDEN,
            "read_only_node",
            "this node is an auditor and accepts no transactions; send them to a validator",
            None,
        );
        return refuse_all(node, items, e);
    }
    // Admission control: a bounded number of submissions are verified at once; the rest wait a
    // bounded time and are then refused as busy, so overload costs neither memory nor liveness.
    let wait = std::time::Duration::from_millis(crate::limits::HTTP_SUBMISSION_WAIT_MS);
    let _slot = match tokio::time::timeout(wait, node.submissions.clone().acquire_owned()).await {
        Ok(Ok(permit)) => permit,
        _ => {
            let busy = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "the node is verifying as many submissions as it can; retry later",
                None,
            );
            return refuse_all(node, items, busy);
        }
    };
    // Every signature of every transaction in one verify_batch call, off the async threads.
    let chain_id = node.genesis.chain_id().clone();
    let verification = node.verification.clone();
    let verified = tokio::task::spawn_blocking(move || {
        let checks: Vec<Vec<_>> = items
            .iter()
            .map(|r| r.as_ref().map(|tx| engine::state::signature_checks(tx, &chain_id)).unwrap_or_default())
            .collect();
        let flat: Vec<_> = checks.iter().flatten().cloned().collect();
        let verdicts = verification.verify(&flat);
        let mut at = 0;
        items
            .into_iter()
            .zip(checks)
            .map(|(item, c)| {
                let v = &verdicts[at..at + c.len()];
                at += c.len();
                let tx = item?;
                match v.iter().position(|ok| !ok) {
                    None => Ok(tx),
                    Some(index) => {
                        Err(ApiError::from_tx_error(&TxError::BadSignature { index, signer: c[index].key }, ""))
                    }
                }
            })
            .collect::<Vec<_>>()
    })
    .await;
    let Ok(mut results) = verified else {
        return vec![Err(ApiError::unavailable())];
    };
    // Refusals by the replica are counted by the driver; these are the API's own.
    for e in results.iter().filter_map(|r| r.as_ref().err()) {
        node.metrics.txs_refused.inc(e.code);
    }

    let txs: Vec<Transaction> = results.iter().filter_map(|r| r.as_ref().ok().cloned()).collect();
    if txs.is_empty() {
        return results.into_iter().map(|r| r.map(|tx| tx.id())).collect();
    }
    let ids: Vec<TxId> = txs.iter().map(|t| t.id()).collect();
    if !node.tracker.add_pending(&ids) {
        let busy =
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", "too many pending transactions; retry later", None);
        for r in results.iter_mut().filter(|r| r.is_ok()) {
            node.metrics.txs_refused.inc(busy.code);
            *r = Err(busy.clone());
        }
        return results.into_iter().map(|r| r.map(|tx| tx.id())).collect();
    }
    let (reply, refusals) = oneshot::channel();
    let sent = node.driver.send(DriverInput::Transactions { txs, reply }).await.is_ok();
    let refusals = match (sent, refusals.await) {
        (true, Ok(r)) => r,
        _ => {
            for id in &ids {
                node.tracker.forget(id);
            }
            return results.into_iter().map(|r| r.and(Err(ApiError::unavailable()))).collect();
        }
    };
    let refused: std::collections::HashMap<TxId, TxError> = refusals.into_iter().collect();
    results
        .into_iter()
        .map(|r| {
            let id = r?.id();
            match refused.get(&id) {
                Some(e) => Err(ApiError::from_tx_error(e, "")),
                None => {
                    node.metrics.txs_accepted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    Ok(id)
                }
            }
        })
        .collect()
}

async fn submit_one(State(node): Shared, body: Result<Bytes, BytesRejection>) -> Result<Response, ApiError> {
    let req: SubmitOne = parse_json(&body_bytes(body)?)?;
    let item = decode_tx(&req.tx, "tx");
    let result = submit(&node, vec![item]).await.into_iter().next().unwrap_or_else(|| Err(ApiError::unavailable()));
    let id = result?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "id": id.to_hex() }))).into_response())
}

async fn submit_batch(State(node): Shared, body: Result<Bytes, BytesRejection>) -> Result<Response, ApiError> {
    let req: SubmitBatch = parse_json(&body_bytes(body)?)?;
    if req.txs.len() > HTTP_BATCH_TXS_MAX {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch_too_large",
            format!("{} transactions in one batch; the limit is {HTTP_BATCH_TXS_MAX}", req.txs.len()),
            Some("txs"),
        ));
    }
    let items = req.txs.iter().enumerate().map(|(i, t)| decode_tx(t, &format!("txs[{i}]"))).collect();
    let results = submit(&node, items).await;
    let mut accepted = 0usize;
    let out: Vec<Value> = results
        .into_iter()
        .map(|r| match r {
            Ok(id) => {
                accepted += 1;
                json!({ "id": id.to_hex() })
            }
            Err(e) => json!({ "error": e }),
        })
        .collect();
    let refused = out.len() - accepted;
    Ok((StatusCode::OK, Json(json!({ "accepted": accepted, "refused": refused, "results": out }))).into_response())
}

fn parse_tx_id(text: &str) -> Result<TxId, ApiError> {
    Digest::from_hex(text).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_id",
            format!("a transaction id is 64 hex characters: {e}"),
            Some("id"),
        )
    })
}

async fn tx_status(State(node): Shared, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id = parse_tx_id(&id)?;
    if let Tracked::Pending = node.tracker.get(&id) {
        return Ok(Json(json!({ "status": "pending" })).into_response());
    }
    let committed = node
        .query(move |core| -> Result<Option<(u64, Outcome)>, String> {
            let storage = core.storage();
            let Some(loc) = storage.tx_location(&id).map_err(|e| e.to_string())? else {
                return Ok(None);
            };
            let receipts = storage.receipts(loc.height).map_err(|e| e.to_string())?.unwrap_or_default();
            let outcome = receipts.get(loc.index as usize).map(|r| r.outcome.clone()).unwrap_or(Outcome::Applied);
            Ok(Some((loc.height, outcome)))
        })
        .await
        .ok_or_else(ApiError::unavailable)?
        .map_err(storage_error)?;
    match committed {
        Some((height, Outcome::Applied)) => {
            Ok(Json(json!({ "status": "committed", "height": height })).into_response())
        }
        Some((height, Outcome::Rejected(e))) => Ok(Json(json!({
            "status": "rejected", "height": height, "reason": e.to_string(), "code": tx_error_code(&e)
        }))
        .into_response()),
        None => match node.tracker.get(&id) {
            Tracked::Refused(e) => {
                Ok(Json(json!({ "status": "rejected", "reason": e.to_string(), "code": tx_error_code(&e) }))
                    .into_response())
            }
            // Committed between the two looks.
            Tracked::Pending => Ok(Json(json!({ "status": "pending" })).into_response()),
            Tracked::Unknown => Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_transaction",
                format!("transaction {id} is not known to this node"),
                Some("id"),
            )),
        },
    }
}

pub(crate) fn storage_error(e: String) -> ApiError {
    tracing::error!(error = %e, "storage read failed");
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "storage", format!("reading the chain failed: {e}"), None)
}

async fn block(State(node): Shared, Path(height): Path<String>) -> Result<Response, ApiError> {
    let height: u64 = height.parse().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_height",
            "a block height is a non-negative integer",
            Some("height"),
        )
    })?;
    let found = node
        .query(move |core| core.storage().block(height).map_err(|e| e.to_string()))
        .await
        .ok_or_else(ApiError::unavailable)?
        .map_err(storage_error)?;
    let Some(cb) = found else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_block",
            format!("no committed block at height {height}"),
            Some("height"),
        ));
    };
    Ok(Json(json!({
        "height": height,
        "hash": cb.block.hash().to_hex(),
        "block": cb.block,
        "certificate": cb.certificate,
    }))
    .into_response())
}

/// Most blocks one page of the commit feed covers.
const COMMIT_FEED_BLOCKS_MAX: u64 = 64;

#[derive(Deserialize)]
struct CommitsQuery {
    from: u64,
}

/// A page of the commit feed: for each committed block from `from` on, the ids of its applied
/// and rejected transactions. Read from the stored receipts, so it needs no block decoding.
async fn commits(
    State(node): Shared,
    query: Result<axum::extract::Query<CommitsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let from = query
        .map_err(|e| {
            ApiError::new(StatusCode::BAD_REQUEST, "malformed_query", format!("{e}; use ?from=HEIGHT"), Some("from"))
        })?
        .0
        .from
        .max(1);
    let page = node
        .query(move |core| -> Result<Vec<Value>, String> {
            let head = core.status().height;
            let mut out = Vec::new();
            for height in from..=head.min(from.saturating_add(COMMIT_FEED_BLOCKS_MAX - 1)) {
                let receipts = core.storage().receipts(height).map_err(|e| e.to_string())?.unwrap_or_default();
                let (applied, rejected): (Vec<_>, Vec<_>) =
                    receipts.iter().partition(|r| matches!(r.outcome, Outcome::Applied));
                out.push(json!({
                    "height": height,
                    "applied": applied.iter().map(|r| r.tx.to_hex()).collect::<Vec<_>>(),
                    "rejected": rejected.iter().map(|r| r.tx.to_hex()).collect::<Vec<_>>(),
                }));
            }
            Ok(out)
        })
        .await
        .ok_or_else(ApiError::unavailable)?
        .map_err(storage_error)?;
    Ok(Json(json!({ "commits": page })).into_response())
}

/// An enrolled participant (or the CA) with its last committed nonce.
async fn participant(State(node): Shared, Path(key): Path<String>) -> Result<Response, ApiError> {
    let key = engine::crypto::PublicKey::from_hex(&key).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_key",
            format!("a public key is 64 hex characters: {e}"),
            Some("key"),
        )
    })?;
    let found = node
        .query(move |core| {
            let state = core.state();
            let nonce = state.nonce(&key);
            if key == *state.ca_key() {
                return Some(json!({ "key": key.to_hex(), "role": "ca", "nonce": nonce }));
            }
            state.participant(&key).map(|p| {
                json!({
                    "key": key.to_hex(), "role": p.role, "name": p.name,
                    "enrolled_by": p.enrolled_by.to_hex(), "height": p.height, "nonce": nonce,
                })
            })
        })
        .await
        .ok_or_else(ApiError::unavailable)?;
    match found {
        Some(v) => Ok(Json(v).into_response()),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_participant",
            format!("{key} is not enrolled on this chain"),
            Some("key"),
        )),
    }
}

async fn status(State(node): Shared) -> Response {
    let s = node.status.read().clone();
    let primary_name = s.primary.and_then(|p| node.genesis.body.validators.get(p as usize)).map(|v| v.name.clone());
    Json(json!({
        "name": node.name,
        "node_id": node.me,
        "role": node.role,
        "chain_id": node.genesis.chain_id().as_str(),
        "height": s.height,
        "head": s.head.to_hex(),
        "view": s.view,
        "primary": s.primary,
        "primary_name": primary_name,
        "view_changing": s.view_changing,
        "pending_txs": s.pending_txs,
        "peers": node.transport.peers(),
        "index": node.index.status_json(),
    }))
    .into_response()
}

async fn metrics(State(node): Shared) -> Response {
    let body = node.metrics.render();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response()
}

/// The OpenAPI 3 description of this API.
pub const OPENAPI_JSON: &str = include_str!("openapi.json");

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI_JSON).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openapi_document_parses_and_lists_every_route() {
        let doc: Value = serde_json::from_str(OPENAPI_JSON).unwrap();
        for path in [
            "/v1/transactions",
            "/v1/transactions/batch",
            "/v1/transactions/{id}",
            "/v1/blocks/{height}",
            "/v1/commits",
            "/v1/participants/{key}",
            "/v1/status",
            "/v1/openapi.json",
            "/metrics",
            "/v1/index/labels",
            "/v1/index/tokens",
            "/v1/search",
            "/v1/researchers/{key}/search-authorizations",
        ] {
            assert!(doc["paths"][path].is_object(), "{path} is not documented");
        }
    }

    #[test]
    fn tx_errors_map_to_4xx_with_their_field() {
        let e = ApiError::from_tx_error(
            &TxError::StaleNonce { sender: engine::crypto::PublicKey([1; 32]), last: 5, got: 5 },
            "",
        );
        assert_eq!((e.status, e.code, e.field.as_deref()), (422, "stale_nonce", Some("body.nonce")));
        let e = ApiError::from_tx_error(&TxError::Duplicate(Digest::ZERO), "");
        assert_eq!((e.status, e.code), (409, "duplicate"));
    }
}
