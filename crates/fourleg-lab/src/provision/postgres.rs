//! Postgres: the `keycloak` and `broker` roles and databases, and the
//! broker's schema from `fixtures/postgres/broker/*.sql`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use fourleg_core::Secret;

use crate::error::{LabError, Result};
use crate::service::Service;
use crate::state::Credentials;
use crate::LOOPBACK;

/// A database the lab creates: `(role = database name, password)`.
fn databases(creds: &Credentials) -> [(&'static str, &Secret); 2] {
    [("keycloak", &creds.postgres_keycloak), ("broker", &creds.postgres_broker)]
}

async fn connect(port: u16, user: &str, password: &Secret, db: &str) -> Result<tokio_postgres::Client> {
    let (client, conn) = tokio_postgres::Config::new()
        .host(LOOPBACK)
        .port(port)
        .user(user)
        .password(password.expose())
        .dbname(db)
        .connect_timeout(Duration::from_secs(5))
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|e| LabError::Postgres {
            context: format!("connecting to database {db} as {user} on {LOOPBACK}:{port}"),
            source: e,
        })?;
    tokio::spawn(conn);
    Ok(client)
}

fn pg(context: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> LabError {
    let context = context.into();
    move |source| LabError::Postgres { context, source }
}

/// Quotes a string literal for SQL (roles' passwords cannot be bind parameters).
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Creates the roles and databases, then applies the broker's migrations.
pub async fn provision(port: u16, creds: &Credentials, fixtures: &Path) -> Result<Vec<String>> {
    let admin = connect(port, "fourleg", &creds.postgres_superuser, "postgres").await?;
    for (name, password) in databases(creds) {
        let exists = admin
            .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&name])
            .await
            .map_err(pg("looking up roles"))?
            .is_some();
        let verb = if exists { "ALTER" } else { "CREATE" };
        admin
            .batch_execute(&format!("{verb} ROLE {name} LOGIN PASSWORD {}", literal(password.expose())))
            .await
            .map_err(pg(format!("{verb} ROLE {name}")))?;
        let has_db = admin
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
            .await
            .map_err(pg("looking up databases"))?
            .is_some();
        if !has_db {
            admin
                .batch_execute(&format!("CREATE DATABASE {name} OWNER {name}"))
                .await
                .map_err(pg(format!("CREATE DATABASE {name}")))?;
        }
    }
    let broker = connect(port, "broker", &creds.postgres_broker, "broker").await?;
    migrate(&broker, &fixtures.join("postgres/broker")).await
}

/// The migration files of `dir`, sorted by name (`0001_….sql`).
pub fn migration_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| LabError::Fixture {
            path: dir.to_owned(),
            message: format!("cannot read the broker's migrations: {e}"),
        })?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .collect();
    files.sort();
    Ok(files)
}

/// Fingerprint of a migration's text, to notice an edited, already applied migration.
fn checksum(text: &str) -> String {
    fourleg_core::hash::fnv1a_hex(text.as_bytes())
}

/// Applies each not yet applied migration in its own transaction; returns the
/// names applied now. An applied migration whose file changed is an error
/// (migrations are append-only).
pub async fn migrate(client: &tokio_postgres::Client, dir: &Path) -> Result<Vec<String>> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS fourleg_migrations (
                 name text PRIMARY KEY,
                 checksum text NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .await
        .map_err(pg("creating fourleg_migrations"))?;
    let mut applied = Vec::new();
    for file in migration_files(dir)? {
        let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let text =
            std::fs::read_to_string(&file).map_err(|e| LabError::io(format!("reading {}", file.display()), e))?;
        let sum = checksum(&text);
        let row = client
            .query_opt("SELECT checksum FROM fourleg_migrations WHERE name = $1", &[&name])
            .await
            .map_err(pg("reading fourleg_migrations"))?;
        match row {
            Some(r) if r.get::<_, String>(0) == sum => continue,
            Some(_) => {
                return Err(LabError::Fixture {
                    path: file,
                    message: "this migration was applied with different contents; migrations are append-only: \
                              add a new file instead (or `fourleg down --purge` to start over)"
                        .into(),
                })
            }
            None => {}
        }
        client
            .batch_execute(&format!(
                "BEGIN;\n{text}\n;INSERT INTO fourleg_migrations (name, checksum) VALUES ({}, {});\nCOMMIT;",
                literal(&name),
                literal(&sum)
            ))
            .await
            .map_err(|e| LabError::provision(Service::Postgres, format!("migration {} failed: {e}", file.display())))?;
        applied.push(name);
    }
    Ok(applied)
}

/// The tables of the broker's schema (for checks).
pub async fn broker_tables(port: u16, creds: &Credentials) -> Result<Vec<String>> {
    let client = connect(port, "broker", &creds.postgres_broker, "broker").await?;
    let rows = client
        .query("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1", &[])
        .await
        .map_err(pg("listing the broker's tables"))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_escape_quotes() {
        assert_eq!(literal("a'b"), "'a''b'");
    }

    #[test]
    fn migrations_sort_by_name_and_skip_other_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("0002_b.sql"), "").unwrap();
        std::fs::write(dir.path().join("0001_a.sql"), "").unwrap();
        std::fs::write(dir.path().join("README.md"), "").unwrap();
        let names: Vec<_> = migration_files(dir.path())
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["0001_a.sql", "0002_b.sql"]);
    }

    #[test]
    fn the_committed_broker_migrations_exist() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/postgres/broker");
        assert!(!migration_files(&dir).unwrap().is_empty());
    }
}
