//! TODO placeholder
use crate::event::ActionEvent;
pub fn default_payload(_ev: &ActionEvent, _k: &[&str], text: &str) -> Vec<u8> { serde_json::to_vec(&serde_json::json!({"text": text})).unwrap_or_default() }
pub fn standard_webhooks_signature(_s: &str, _i: &str, _t: i64, _b: &[u8]) -> String { String::new() }
