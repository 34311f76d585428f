//! Untrusted commit-log events: decoding, then opening the commit slice of commits and imports.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stratos_schema::events::Event;

fuzz_target!(|data: &[u8]| {
    let Ok(event) = Event::decode(data) else {
        return;
    };
    let did = event.did().clone();
    match &event {
        Event::Commit(commit) => {
            let _ = commit.slice.open(&did);
        }
        Event::Import(import) => {
            let _ = import.slice.open(&did);
        }
        Event::Enrollment(enrollment) => {
            if let Some(genesis) = &enrollment.genesis {
                let _ = genesis.open(&did);
            }
        }
        Event::Unenroll(_) | Event::Boundaries(_) => {}
    }
    // Whatever decodes re-encodes and decodes to the same event.
    assert_eq!(Event::decode(&event.encode()).expect("re-decodes"), event);
});
