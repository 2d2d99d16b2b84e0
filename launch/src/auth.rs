//! Who may talk to a job: every connection proves that it knows the job's secret.
//!
//! mprun draws 32 random bytes per job and hands them to every rank in the environment
//! (`MPR_SECRET`, hex; to ranks on other hosts over the launch agent's stdin, never on a command
//! line). A connection's acceptor sends a fresh random challenge; the dialler answers with a MAC
//! (HMAC-SHA-256, cut to 128 bits) of the challenge, the job id and both ranks; the acceptor's
//! answer carries a MAC of both challenges in turn, so each side knows the other holds the
//! secret before a single frame of the job is read or written. The rendezvous service asks the
//! same of every rank that connects to it. A stranger (anything without the secret) is dropped
//! after its first bytes, having seen only a random challenge.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use std::io;

/// Bytes of a challenge and of a MAC.
pub const PROOF_LEN: usize = 16;

/// The job's secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret([u8; 32]);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)") // never printed
    }
}

impl Secret {
    /// A new random secret.
    pub fn random() -> io::Result<Secret> {
        let mut s = [0u8; 32];
        fill_random(&mut s)?;
        Ok(Secret(s))
    }

    /// From its hex form (64 hex digits).
    pub fn from_hex(s: &str) -> Option<Secret> {
        unhex(s.trim(), 32)?.try_into().ok().map(Secret)
    }

    /// Its hex form, for the environment.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    /// The MAC of `parts` under this secret, for `purpose` (so that a proof for one use is never
    /// a proof for another).
    pub fn mac(&self, purpose: &str, parts: &[&[u8]]) -> [u8; PROOF_LEN] {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes any key");
        m.update(purpose.as_bytes());
        for p in parts {
            m.update(&(p.len() as u32).to_le_bytes());
            m.update(p);
        }
        let full = m.finalize().into_bytes();
        let mut out = [0u8; PROOF_LEN];
        out.copy_from_slice(&full[..PROOF_LEN]);
        out
    }

    /// Whether `proof` is the MAC of `parts` (in time independent of where they differ).
    pub fn verify(&self, purpose: &str, parts: &[&[u8]], proof: &[u8]) -> bool {
        <&[u8; PROOF_LEN]>::try_from(proof).is_ok_and(|p| same(&self.mac(purpose, parts), p))
    }
}

/// Whether two proofs are equal (in time independent of where they differ).
pub fn same(a: &[u8; PROOF_LEN], b: &[u8; PROOF_LEN]) -> bool {
    a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// The proof a rank gives the rendezvous service for `challenge`.
pub fn rendezvous_proof(
    secret: &Secret,
    job_id: u64,
    rank: usize,
    challenge: &[u8],
) -> [u8; PROOF_LEN] {
    secret.mac(
        "mpr rendezvous",
        &[
            &job_id.to_le_bytes(),
            &(rank as u64).to_le_bytes(),
            challenge,
        ],
    )
}

/// A fresh random challenge.
pub fn challenge() -> io::Result<[u8; PROOF_LEN]> {
    let mut c = [0u8; PROOF_LEN];
    fill_random(&mut c)?;
    Ok(c)
}

/// Fills `buf` from the operating system's random source (`getrandom`).
fn fill_random(buf: &mut [u8]) -> io::Result<()> {
    getrandom::fill(buf).map_err(|e| io::Error::other(format!("getrandom: {e}")))
}

/// Hex of bytes (challenges and proofs on the rendezvous line protocol).
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Bytes of hex, if it is `n` bytes' worth.
pub fn unhex(s: &str, n: usize) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    if b.len() != 2 * n {
        return None;
    }
    b.chunks_exact(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).ok()?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proofs_hold_only_for_the_same_secret_purpose_and_parts() {
        let s = Secret::random().unwrap();
        let t = Secret::random().unwrap();
        assert_ne!(s, t);
        assert_eq!(Secret::from_hex(&s.to_hex()), Some(s.clone()));
        for bad in ["", "00", &"g".repeat(64), &"0".repeat(63)] {
            assert!(Secret::from_hex(bad).is_none(), "{bad:?}");
        }
        let c = challenge().unwrap();
        assert_ne!(c, challenge().unwrap());
        let p = s.mac("hello", &[&c, b"job", &[1]]);
        assert!(s.verify("hello", &[&c, b"job", &[1]], &p));
        assert!(
            !t.verify("hello", &[&c, b"job", &[1]], &p),
            "another secret"
        );
        assert!(!s.verify("ack", &[&c, b"job", &[1]], &p), "another purpose");
        assert!(!s.verify("hello", &[&c, b"job", &[2]], &p), "other parts");
        // Part boundaries count: ("ab", "c") is not ("a", "bc").
        assert!(!s.verify("hello", &[b"a", b"bc"], &s.mac("hello", &[b"ab", b"c"])));
        assert!(!s.verify("hello", &[&c], &p[..8]));
        assert_eq!(unhex(&hex(&c), PROOF_LEN).as_deref(), Some(&c[..]));
        assert!(unhex("zz", 1).is_none() && unhex("00", 2).is_none());
        assert_eq!(format!("{s:?}"), "Secret(..)");
    }
}
