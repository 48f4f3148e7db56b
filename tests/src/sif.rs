//! Real SIF images for tests, built with `siftool` and `mksquashfs` (Debian packages `siftool`
//! and `squashfs-tools`) in the layout `apptainer build` writes: a Deffile object, a generic
//! JSON object `inspect-metadata.json`, and a squashfs primary system partition (amd64) holding
//! `/.singularity.d`. A missing tool fails the test with the install command.

use crate::cmd::run_cmd;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What goes into a test image.
#[derive(Debug, Clone, Default)]
pub struct SifSpec {
    /// The Deffile object's text; `None` leaves the object out.
    pub deffile: Option<String>,
    /// The `inspect-metadata.json` text; `None` leaves the object out (metadata then comes from
    /// the squashfs).
    pub inspect_json: Option<String>,
    /// Files under the squashfs root, path relative to `/` → content.
    pub files: Vec<(String, Vec<u8>)>,
}

fn tool(cmd: &mut Command, package: &str) {
    let program = cmd.get_program().to_string_lossy().into_owned();
    if which(&program).is_none() {
        panic!("`{program}` is missing: install it with `apt-get install -y {package}`");
    }
    run_cmd(cmd).ok();
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(program))
        .find(|p| p.is_file())
}

/// Builds `dir/NAME.sif` from `spec` and returns its path.
pub fn build(dir: &Path, name: &str, spec: &SifSpec) -> PathBuf {
    let work = dir.join(format!("{name}.build"));
    let root = work.join("root");
    for (rel, bytes) in &spec.files {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, bytes).expect("write");
    }
    std::fs::create_dir_all(&root).expect("mkdir root");
    let fs = work.join("rootfs.squashfs");
    tool(
        Command::new("mksquashfs")
            .arg(&root)
            .arg(&fs)
            .args(["-noappend", "-all-root", "-quiet"]),
        "squashfs-tools",
    );
    let sif = dir.join(format!("{name}.sif"));
    let _ = std::fs::remove_file(&sif);
    tool(Command::new("siftool").arg("new").arg(&sif), "siftool");
    if let Some(def) = &spec.deffile {
        let p = work.join("recipe.def");
        std::fs::write(&p, def).expect("write deffile");
        tool(
            Command::new("siftool")
                .args(["add", "--datatype", "1", "--groupid", "1"])
                .arg(&sif)
                .arg(&p),
            "siftool",
        );
    }
    if let Some(json) = &spec.inspect_json {
        let p = work.join("inspect-metadata.json");
        std::fs::write(&p, json).expect("write json");
        tool(
            Command::new("siftool")
                .args(["add", "--datatype", "6", "--groupid", "1"])
                .args(["--filename", "inspect-metadata.json"])
                .arg(&sif)
                .arg(&p),
            "siftool",
        );
    }
    tool(
        Command::new("siftool")
            .args(["add", "--datatype", "4", "--groupid", "1"])
            .args(["--partfs", "1", "--parttype", "2", "--partarch", "2"])
            .arg(&sif)
            .arg(&fs),
        "siftool",
    );
    sif
}
