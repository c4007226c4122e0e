//! Anything a peer or client can send goes through these decoders first: none may panic, and
//! whatever decodes must re-encode to the same bytes.
#![no_main]

use engine::block::Block;
use engine::pbft::message::SignedMessage;
use engine::tx::Transaction;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = SignedMessage::decode(data) {
        assert_eq!(m.encode(), data);
    }
    if let Ok(t) = Transaction::decode(data) {
        assert_eq!(t.encode(), data);
        let _ = engine::state::check_stateless(&t);
    }
    if let Ok(b) = Block::decode(data) {
        let _ = b.compute_tx_root();
    }
});
