//! Reads hex-encoded Content-Type header values, one per line, and prints per line "1" when
//! warp 0.3's json filter takes the value as JSON (http's HeaderValue::to_str, then
//! mime::Mime's parse, then type application and subtype json), else "0".
use std::io::BufRead;

fn visible_ascii(b: &[u8]) -> bool {
    b.iter().all(|&c| (c >= 32 && c < 127) || c == b'\t')
}

fn main() {
    for line in std::io::stdin().lock().lines() {
        let bytes = hex::decode(line.unwrap().trim()).unwrap();
        let ok = visible_ascii(&bytes)
            && std::str::from_utf8(&bytes)
                .ok()
                .and_then(|s| s.parse::<mime::Mime>().ok())
                .map_or(false, |ct| ct.type_() == mime::APPLICATION && ct.subtype() == mime::JSON);
        println!("{}", if ok { 1 } else { 0 });
    }
}
