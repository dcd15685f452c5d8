//! The ATerm `.drv` parser: never panics, and whatever it accepts prints and
//! reads back to the same derivation (when the platform has no `"` or `\`, which
//! CppNix, and so we, write unescaped).
#![no_main]

use libfuzzer_sys::fuzz_target;
use nivis_formats::{Derivation, StoreDir};

fuzz_target!(|data: &[u8]| {
    let store_dir = StoreDir::default();
    let Ok(drv) = Derivation::parse(&store_dir, data) else { return };
    let printed = drv.to_aterm(&store_dir);
    if drv.platform.iter().any(|&b| b == b'"' || b == b'\\') {
        return;
    }
    let reparsed = Derivation::parse(&store_dir, &printed).expect("printed derivation reads back");
    assert_eq!(reparsed, drv);
    assert_eq!(reparsed.to_aterm(&store_dir), printed);
    // Hashing must not panic either (inputs all stand-ins).
    let _ = drv.hash_modulo::<nivis_formats::DerivationError>(&store_dir, true, |_| {
        Ok(nivis_formats::DrvHashModulo::Drv {
            hash: nivis_formats::Hash::of_bytes(nivis_formats::HashAlgorithm::Sha256, b""),
            deferred: false,
        })
    });
});
