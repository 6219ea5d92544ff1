//! Any bytes as a `/v1/score` body: the JSON is read into a request, checked into a shipment and
//! made a table row, as the service does. Nothing may panic; an accepted shipment holds no text
//! the store cannot keep.
#![no_main]

use dispatch_risk::scoring::request::to_table;
use dispatch_risk::scoring::{Shipment, ShipmentRequest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(request) = serde_json::from_slice::<ShipmentRequest>(data) else {
        return;
    };
    match Shipment::parse(request, 1_700_000_000) {
        Err(e) => assert!(!e.field.is_empty()),
        Ok(s) => {
            assert!(!s.id.chars().any(char::is_control));
            assert!(s.extra.len() <= 64);
            assert_eq!(to_table(&[s]).len(), 1);
        }
    }
});
