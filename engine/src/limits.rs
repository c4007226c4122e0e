//! Every bound in the engine, in one place. Units come last in names.
//!
//! Relations between limits are checked at compile time at the bottom of this file.

/// Largest canonical encoding of one transaction.
pub const TX_BYTES_MAX: usize = 16 * 1024;
/// Most transactions in one block.
pub const BLOCK_TXS_MAX: usize = 4096;
/// Largest canonical encoding of one block (header and transactions).
pub const BLOCK_BYTES_MAX: usize = 8 * 1024 * 1024;
/// Largest consensus message on the wire (a NEW-VIEW may carry several blocks).
pub const MESSAGE_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Most validators in a consortium.
pub const VALIDATORS_MAX: usize = 64;
/// Most auditor nodes named in the genesis.
pub const AUDITORS_MAX: usize = 256;
/// Longest chain id, in bytes.
pub const CHAIN_ID_BYTES_MAX: usize = 64;
/// Longest participant or node name, in bytes.
pub const NAME_BYTES_MAX: usize = 128;
/// Longest data type tag (e.g. `Observation`), in bytes.
pub const DATA_TYPE_BYTES_MAX: usize = 64;
/// Longest blob locator, in bytes.
pub const LOCATOR_BYTES_MAX: usize = 512;
/// Largest encrypted data key, in bytes.
pub const ENCRYPTED_KEY_BYTES_MAX: usize = 1024;
/// Most index labels on one record.
pub const INDEX_LABELS_MAX: usize = 256;
/// Longest free-text purpose of a grant or a search, in bytes.
pub const PURPOSE_BYTES_MAX: usize = 256;
/// Most records named by one grant.
pub const GRANT_RECORDS_MAX: usize = 256;
/// Most data types named by one grant.
pub const GRANT_DATA_TYPES_MAX: usize = 32;
/// Largest round-1 package of the key generation (frost: 32 bytes per coefficient, at most
/// `VALIDATORS_MAX` coefficients, plus a proof).
pub const DKG_PACKAGE_BYTES_MAX: usize = 4096;
/// Largest sealed round-2 package (a 32-byte share in frost's framing, sealed).
pub const DKG_SEALED_BYTES_MAX: usize = 192;
/// Most signatures on one transaction.
pub const TX_SIGNATURES_MAX: usize = 2;

const _: () = assert!(TX_BYTES_MAX * 2 <= BLOCK_BYTES_MAX);
const _: () = assert!(BLOCK_BYTES_MAX * 4 <= MESSAGE_BYTES_MAX);
const _: () = assert!(VALIDATORS_MAX <= u16::MAX as usize);
const _: () = assert!(VALIDATORS_MAX * (DKG_SEALED_BYTES_MAX + 8) + 1024 <= TX_BYTES_MAX);
const _: () = assert!(INDEX_LABELS_MAX * 16 + ENCRYPTED_KEY_BYTES_MAX + LOCATOR_BYTES_MAX + 1024 <= TX_BYTES_MAX);
