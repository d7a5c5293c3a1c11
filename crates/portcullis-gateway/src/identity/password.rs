//! Passwords (C24): argon2id, PHC strings, on a bounded blocking pool so a
//! login flood can't take the proxy's threads; a dummy verification for
//! unknown users so their answer takes as long as a wrong password's.

use std::sync::{Arc, OnceLock};

use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};
use tokio::sync::Semaphore;

/// The longest password accepted, checked before any hashing (C24: the hash
/// is no CPU amplifier).
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// argon2id cost. The defaults are OWASP's first recommendation
/// (m = 19 MiB, t = 2, p = 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cost {
    /// Memory, KiB.
    pub memory_kib: u32,
    /// Passes.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for Cost {
    fn default() -> Self {
        Cost { memory_kib: 19 * 1024, iterations: 2, parallelism: 1 }
    }
}

/// Why a password operation failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PasswordError {
    /// Empty, or longer than [`MAX_PASSWORD_BYTES`].
    BadLength,
    /// The hashing pool is gone (shutting down) or the cost is invalid.
    Internal,
}

/// Hashes and verifies on at most `permits` blocking threads at once.
#[derive(Clone, Debug)]
pub struct Hasher {
    cost: Cost,
    permits: Arc<Semaphore>,
}

impl Hasher {
    /// A hasher with this cost, running at most `concurrency` hashes at once.
    pub fn new(cost: Cost, concurrency: usize) -> Result<Hasher, String> {
        Params::new(cost.memory_kib, cost.iterations, cost.parallelism, None)
            .map_err(|e| format!("invalid argon2 parameters: {e}"))?;
        Ok(Hasher { cost, permits: Arc::new(Semaphore::new(concurrency.max(1))) })
    }

    fn argon(cost: Cost) -> Result<Argon2<'static>, PasswordError> {
        let params = Params::new(cost.memory_kib, cost.iterations, cost.parallelism, None)
            .map_err(|_| PasswordError::Internal)?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }

    /// A PHC string (`$argon2id$v=19$m=...`) for `password`.
    pub async fn hash(&self, password: &str) -> Result<String, PasswordError> {
        check_length(password)?;
        let password = password.as_bytes().to_vec();
        let cost = self.cost;
        self.run(move || {
            let mut salt = [0u8; 16];
            aws_lc_rs::rand::fill(&mut salt).map_err(|_| PasswordError::Internal)?;
            let h = Hasher::argon(cost)?
                .hash_password_with_salt(&password, &salt)
                .map_err(|_| PasswordError::Internal)?;
            Ok(h.to_string())
        })
        .await
    }

    /// Whether `password` matches `phc`. `None` (unknown user) verifies
    /// against a dummy hash of the same cost and answers false, so both
    /// take the same time.
    pub async fn verify(&self, password: &str, phc: Option<&str>) -> Result<bool, PasswordError> {
        check_length(password)?;
        let password = password.as_bytes().to_vec();
        let real = phc.map(str::to_owned);
        let dummy = self.dummy().await?;
        let cost = self.cost;
        self.run(move || {
            let argon = Hasher::argon(cost)?;
            let target = real.as_deref().unwrap_or(&dummy);
            let ok = argon.verify_password(&password, target).is_ok();
            Ok(ok && real.is_some())
        })
        .await
    }

    /// A hash of a random password at this cost, made once.
    async fn dummy(&self) -> Result<String, PasswordError> {
        static DUMMY: OnceLock<(Cost, String)> = OnceLock::new();
        if let Some((c, h)) = DUMMY.get()
            && *c == self.cost
        {
            return Ok(h.clone());
        }
        let mut random = [0u8; 24];
        aws_lc_rs::rand::fill(&mut random).map_err(|_| PasswordError::Internal)?;
        let h = self.hash(&hex(&random)).await?;
        let _ = DUMMY.set((self.cost, h.clone()));
        Ok(h)
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> Result<T, PasswordError> + Send + 'static,
    ) -> Result<T, PasswordError> {
        let _permit = self.permits.acquire().await.map_err(|_| PasswordError::Internal)?;
        tokio::task::spawn_blocking(f).await.map_err(|_| PasswordError::Internal)?
    }
}

fn check_length(password: &str) -> Result<(), PasswordError> {
    if password.is_empty() || password.len() > MAX_PASSWORD_BYTES {
        return Err(PasswordError::BadLength);
    }
    Ok(())
}

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> Hasher {
        Hasher::new(Cost { memory_kib: 64, iterations: 1, parallelism: 1 }, 2).unwrap()
    }

    #[tokio::test]
    async fn c24_argon2id_hashes_verify_and_salt() {
        let h = cheap();
        let a = h.hash("correct horse").await.unwrap();
        let b = h.hash("correct horse").await.unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{a}");
        assert_ne!(a, b, "a fresh salt each time");
        assert!(!a.contains("correct"));
        assert_eq!(h.verify("correct horse", Some(&a)).await, Ok(true));
        assert_eq!(h.verify("correct horsE", Some(&a)).await, Ok(false));
        assert_eq!(h.verify("correct horse", None).await, Ok(false), "unknown user");
        assert_eq!(h.verify("x", Some("not a phc string")).await, Ok(false));
    }

    #[tokio::test]
    async fn c24_lengths_are_checked_before_hashing() {
        let h = cheap();
        assert_eq!(h.hash("").await, Err(PasswordError::BadLength));
        assert_eq!(h.hash(&"x".repeat(MAX_PASSWORD_BYTES + 1)).await, Err(PasswordError::BadLength));
        assert!(h.hash(&"x".repeat(MAX_PASSWORD_BYTES)).await.is_ok());
        assert_eq!(h.verify(&"x".repeat(MAX_PASSWORD_BYTES + 1), None).await, Err(PasswordError::BadLength));
    }

    #[test]
    fn invalid_costs_are_refused() {
        assert!(Hasher::new(Cost { memory_kib: 1, iterations: 0, parallelism: 1 }, 1).is_err());
        let d = Cost::default();
        assert_eq!((d.memory_kib, d.iterations, d.parallelism), (19_456, 2, 1));
    }
}
