//! Signed messages, for handlers on other machines than their host: with a shared secret set
//! (the host's `server.remote_secret`, a handler's [`Handler::secret`](crate::Handler::secret)),
//! every message between the host and its handlers travels in an envelope
//!
//! ```json
//! {"ts": 1767225600, "nonce": "9f2c...", "sig": "<hex HMAC-SHA256>", "body": "<the message's JSON, as a string>"}
//! ```
//!
//! where `sig` is the HMAC-SHA256, under the shared secret, of `"{ts}\n{nonce}\n{body}"` (`ts` in
//! whole seconds since the Unix epoch, `nonce` 16 random bytes in hex). A message is accepted when
//! its signature is right, its `ts` is within [`WINDOW`] of the receiver's clock, and its nonce
//! was not seen within that window (no replays). With a secret set, unsigned messages are
//! refused; without one, envelopes are not expected and messages are plain ScheduleZero JSON.
//! Signing gives integrity and authenticity, not secrecy: run traffic between machines through an
//! encrypted tunnel.

use std::collections::HashMap;
use std::sync::Mutex;

use hmac::{Hmac, Mac};
use rand::RngExt;
use serde::Deserialize;
use serde_json::json;
use sha2::Sha256;

/// How far a message's time may be from the receiver's.
pub const WINDOW: i64 = 60;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    ts: i64,
    nonce: String,
    sig: String,
    body: String,
}

/// Seconds since the Unix epoch, the clock [`Signer::seal`] and [`Signer::open`] are given.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Signs and checks messages with one shared secret.
pub struct Signer {
    key: Vec<u8>,
    /// Nonces seen within the window, with their message's time.
    seen: Mutex<HashMap<String, i64>>,
}

impl Signer {
    /// A signer with `secret`.
    pub fn new(secret: &str) -> Self {
        Self {
            key: secret.as_bytes().to_vec(),
            seen: Mutex::default(),
        }
    }

    fn mac(&self, ts: i64, nonce: &str, body: &str) -> Hmac<Sha256> {
        // Any key length is accepted by HMAC.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(format!("{ts}\n{nonce}\n{body}").as_bytes());
        mac
    }

    /// `body` in a signed envelope, as the frame to send.
    pub fn seal(&self, body: &str, now: i64) -> String {
        let nonce = hex::encode(rand::rng().random::<[u8; 16]>());
        let sig = hex::encode(self.mac(now, &nonce, body).finalize().into_bytes());
        json!({ "ts": now, "nonce": nonce, "sig": sig, "body": body }).to_string()
    }

    /// The body of a signed frame, or why it is refused.
    pub fn open(&self, frame: &[u8], now: i64) -> Result<String, String> {
        let envelope: Envelope = serde_json::from_slice(frame)
            .map_err(|_| "Unsigned message refused: signed messages are required".to_owned())?;
        let sig = hex::decode(&envelope.sig).map_err(|_| "Invalid signature".to_owned())?;
        self.mac(envelope.ts, &envelope.nonce, &envelope.body)
            .verify_slice(&sig)
            .map_err(|_| "Invalid signature".to_owned())?;
        if (now - envelope.ts).abs() > WINDOW {
            return Err(format!(
                "Message time is {}s away from the receiver's clock (at most {WINDOW}s)",
                now - envelope.ts
            ));
        }
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        // Older nonces cannot come back: their messages are out of the window.
        seen.retain(|_, ts| *ts >= now - WINDOW);
        if seen.contains_key(&envelope.nonce) {
            return Err("Replayed message refused".to_owned());
        }
        seen.insert(envelope.nonce.clone(), envelope.ts);
        Ok(envelope.body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_messages_open_once_within_the_window() {
        let s = Signer::new("a shared secret of some length");
        let frame = s.seal(r#"{"method":"ping"}"#, 1000);
        assert_eq!(
            s.open(frame.as_bytes(), 1010).unwrap(),
            r#"{"method":"ping"}"#
        );
        assert_eq!(
            s.open(frame.as_bytes(), 1010).unwrap_err(),
            "Replayed message refused"
        );
        let late = s.seal("{}", 1000);
        assert!(
            s.open(late.as_bytes(), 1000 + WINDOW + 1)
                .unwrap_err()
                .contains("away")
        );
        let other = Signer::new("another secret entirely");
        assert_eq!(
            other.open(s.seal("{}", 5).as_bytes(), 5).unwrap_err(),
            "Invalid signature"
        );
        let mut tampered: serde_json::Value = serde_json::from_str(&s.seal("{}", 7)).unwrap();
        tampered["body"] = json!(r#"{"method":"register"}"#);
        assert_eq!(
            s.open(tampered.to_string().as_bytes(), 7).unwrap_err(),
            "Invalid signature"
        );
        assert!(
            s.open(br#"{"method":"ping"}"#, 7)
                .unwrap_err()
                .starts_with("Unsigned")
        );
    }
}
