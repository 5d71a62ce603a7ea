//! The CRM's own tables, beside the library's in the same database: its
//! users (passwords hashed with argon2), their sessions (each with its
//! CSRF token), contacts and leads, and the administrator's policy.

use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use sqlx::{AnyPool, Row};

/// How long a sign-in lasts.
pub(crate) const SESSION_LIFE: Duration = Duration::from_secs(12 * 3600);

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS web_users (
        login TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        admin BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS web_sessions (
        token TEXT PRIMARY KEY,
        login TEXT NOT NULL,
        csrf TEXT NOT NULL,
        expires_ms BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS web_people (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        email TEXT NOT NULL,
        owner TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS web_settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL)",
];

/// A signed-in CRM user.
#[derive(Debug, Clone)]
pub(crate) struct User {
    /// The login.
    pub login: String,
    /// The name shown.
    pub name: String,
    /// Whether they may set the sharing policy.
    pub admin: bool,
    /// The CSRF token of their session, in every form.
    pub csrf: String,
}

/// A contact or a lead.
#[derive(Debug, Clone)]
pub(crate) struct Person {
    /// Its id.
    pub id: String,
    /// `contact` or `lead`.
    pub kind: String,
    /// Its name.
    pub name: String,
    /// Its e-mail address (mail that carries it is linked).
    pub email: String,
}

/// Who may see a mailbox's mail besides its owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sharing {
    /// Its owner alone.
    Private,
    /// Every CRM user.
    Everyone,
}

impl Sharing {
    /// `private` or `everyone`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Private => "private",
            Self::Everyone => "everyone",
        }
    }

    /// From a form's or the database's value.
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        match name {
            "private" => Some(Self::Private),
            "everyone" => Some(Self::Everyone),
            _ => None,
        }
    }
}

/// The administrator's policy: one sharing for every mailbox, or the
/// user's choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Policy {
    /// Every mailbox is shared so.
    Fixed(Sharing),
    /// Each user chooses per mailbox.
    UserChooses,
}

impl Policy {
    /// `fixed-private`, `fixed-everyone` or `user-chooses`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Fixed(Sharing::Private) => "fixed-private",
            Self::Fixed(Sharing::Everyone) => "fixed-everyone",
            Self::UserChooses => "user-chooses",
        }
    }

    /// From a form's or the database's value.
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        match name {
            "fixed-private" => Some(Self::Fixed(Sharing::Private)),
            "fixed-everyone" => Some(Self::Fixed(Sharing::Everyone)),
            "user-chooses" => Some(Self::UserChooses),
            _ => None,
        }
    }
}

/// Random bytes as hex: tokens, ids.
pub(crate) fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::getrandom(&mut buf).unwrap_or_else(|_| {
        // No entropy source at all: the time, which is unique enough for
        // an id but never used for a secret (sessions refuse it).
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        buf.iter_mut()
            .enumerate()
            .for_each(|(i, b)| *b = (nanos >> ((i % 16) * 8)) as u8);
    });
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The CRM's tables.
#[derive(Clone)]
pub(crate) struct Crm {
    pool: AnyPool,
}

type Result<T> = std::result::Result<T, sqlx::Error>;

impl Crm {
    /// Makes the tables if missing.
    pub(crate) async fn open(pool: AnyPool) -> Result<Self> {
        for statement in SCHEMA {
            sqlx::query(statement).execute(&pool).await?;
        }
        Ok(Self { pool })
    }

    /// Adds (or replaces) a CRM user with `password` hashed.
    pub(crate) async fn add_user(
        &self,
        login: &str,
        name: &str,
        password: &str,
        admin: bool,
    ) -> Result<()> {
        let salt = SaltString::encode_b64(random_hex(16).as_bytes())
            .map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
        let hash = Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map_err(|e| sqlx::Error::Protocol(e.to_string()))?
            .to_string();
        sqlx::query("DELETE FROM web_users WHERE login = $1")
            .bind(login)
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "INSERT INTO web_users (login, name, password_hash, admin) VALUES ($1, $2, $3, $4)",
        )
        .bind(login)
        .bind(name)
        .bind(hash)
        .bind(i64::from(admin))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Checks a sign-in and opens a session: its token.
    pub(crate) async fn sign_in(&self, login: &str, password: &str) -> Result<Option<String>> {
        let hash: Option<String> =
            sqlx::query_scalar("SELECT password_hash FROM web_users WHERE login = $1")
                .bind(login)
                .fetch_optional(&self.pool)
                .await?;
        let Some(hash) = hash else {
            // The same work as a real check, so a wrong login and a wrong
            // password take as long.
            let _ = Argon2::default().hash_password(
                password.as_bytes(),
                &SaltString::encode_b64(b"0123456789abcdef")
                    .map_err(|e| sqlx::Error::Protocol(e.to_string()))?,
            );
            return Ok(None);
        };
        let parsed = PasswordHash::new(&hash).map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
        if Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_err()
        {
            return Ok(None);
        }
        let token = random_hex(32);
        let life = i64::try_from(SESSION_LIFE.as_millis()).unwrap_or(i64::MAX);
        sqlx::query(
            "INSERT INTO web_sessions (token, login, csrf, expires_ms) VALUES ($1, $2, $3, $4)",
        )
        .bind(&token)
        .bind(login)
        .bind(random_hex(32))
        .bind(now_ms().saturating_add(life))
        .execute(&self.pool)
        .await?;
        Ok(Some(token))
    }

    /// The user of a live session.
    pub(crate) async fn session(&self, token: &str) -> Result<Option<User>> {
        let row = sqlx::query(
            "SELECT u.login, u.name, u.admin, s.csrf FROM web_sessions s
             JOIN web_users u ON u.login = s.login
             WHERE s.token = $1 AND s.expires_ms > $2",
        )
        .bind(token)
        .bind(now_ms())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(User {
                login: row.try_get("login")?,
                name: row.try_get("name")?,
                admin: row.try_get::<i64, _>("admin")? != 0,
                csrf: row.try_get("csrf")?,
            })
        })
        .transpose()
    }

    /// Ends a session.
    pub(crate) async fn sign_out(&self, token: &str) -> Result<()> {
        sqlx::query("DELETE FROM web_sessions WHERE token = $1")
            .bind(token)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Adds a contact or a lead of `owner`.
    pub(crate) async fn add_person(
        &self,
        kind: &str,
        name: &str,
        email: &str,
        owner: &str,
    ) -> Result<String> {
        let id = random_hex(8);
        sqlx::query(
            "INSERT INTO web_people (id, kind, name, email, owner) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&id)
        .bind(kind)
        .bind(name)
        .bind(email.to_ascii_lowercase())
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(id)
    }

    /// Every contact and lead.
    pub(crate) async fn people(&self) -> Result<Vec<Person>> {
        let rows = sqlx::query("SELECT id, kind, name, email FROM web_people ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(Person {
                    id: row.try_get("id")?,
                    kind: row.try_get("kind")?,
                    name: row.try_get("name")?,
                    email: row.try_get("email")?,
                })
            })
            .collect()
    }

    /// Changes a person's address.
    pub(crate) async fn set_email(&self, id: &str, email: &str) -> Result<()> {
        sqlx::query("UPDATE web_people SET email = $1 WHERE id = $2")
            .bind(email.to_ascii_lowercase())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The sharing policy (default: each user chooses).
    pub(crate) async fn policy(&self) -> Result<Policy> {
        let value: Option<String> =
            sqlx::query_scalar("SELECT value FROM web_settings WHERE key = 'sharing'")
                .fetch_optional(&self.pool)
                .await?;
        Ok(value
            .as_deref()
            .and_then(Policy::from_name)
            .unwrap_or(Policy::UserChooses))
    }

    /// Sets the sharing policy.
    pub(crate) async fn set_policy(&self, policy: Policy) -> Result<()> {
        sqlx::query("DELETE FROM web_settings WHERE key = 'sharing'")
            .execute(&self.pool)
            .await?;
        sqlx::query("INSERT INTO web_settings (key, value) VALUES ('sharing', $1)")
            .bind(policy.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
