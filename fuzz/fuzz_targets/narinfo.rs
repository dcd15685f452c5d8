//! The narinfo parser: never panics; whatever it accepts prints to a normal
//! form that reads back to the same value and prints identically again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nivis_formats::{NarInfo, StoreDir};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let store_dir = StoreDir::default();
    let Ok(info) = NarInfo::parse(&store_dir, text) else { return };
    let printed = info.to_text(&store_dir);
    let reparsed = NarInfo::parse(&store_dir, &printed).expect("printed narinfo reads back");
    assert_eq!(reparsed, info);
    assert_eq!(reparsed.to_text(&store_dir), printed);
    let _ = info.fingerprint(&store_dir);
    let _ = info.is_content_addressed(&store_dir);
});
