//! Reads lines "<endpoint> <hex body>" on stdin and prints, per line, what rust-teos's
//! request structs make of the body: "OK <Debug of the value>" or "ERR <serde_json error>".
//! The structs mirror the prost messages with the serde attributes of teos-common/build.rs.
use serde::Deserialize;
use std::io::BufRead;

#[derive(Deserialize, Debug)]
struct RegisterRequest {
    #[serde(with = "hex::serde")]
    user_id: Vec<u8>,
}

#[derive(Deserialize, Debug)]
struct Appointment {
    #[serde(with = "hex::serde")]
    locator: Vec<u8>,
    #[serde(with = "hex::serde")]
    encrypted_blob: Vec<u8>,
    to_self_delay: u32,
}

#[derive(Deserialize, Debug)]
struct AddAppointmentRequest {
    appointment: Option<Appointment>,
    signature: String,
}

#[derive(Deserialize, Debug)]
struct GetAppointmentRequest {
    #[serde(with = "hex::serde")]
    locator: Vec<u8>,
    signature: String,
}

#[derive(Deserialize, Debug)]
struct GetSubscriptionInfoRequest {
    signature: String,
}

fn show<T: std::fmt::Debug>(r: Result<T, serde_json::Error>) -> String {
    match r {
        Ok(v) => format!("OK {:?}", v),
        Err(e) => format!("ERR {}", e),
    }
}

fn main() {
    for line in std::io::stdin().lock().lines() {
        let line = line.unwrap();
        let (endpoint, body) = line.split_once(' ').unwrap();
        let body = hex::decode(body).unwrap();
        let out = match endpoint {
            "register" => show(serde_json::from_slice::<RegisterRequest>(&body)),
            "add" => show(serde_json::from_slice::<AddAppointmentRequest>(&body)),
            "get" => show(serde_json::from_slice::<GetAppointmentRequest>(&body)),
            "sub" => show(serde_json::from_slice::<GetSubscriptionInfoRequest>(&body)),
            _ => panic!("unknown endpoint {endpoint}"),
        };
        println!("{}", out.replace('\n', "\\n"));
    }
}
