//! `scripts/test` on a newcomer's fresh Debian machine, run over stand-ins for the tools it
//! calls (apt-get, python3, node, npm, PostgreSQL's, cargo) that record what they were asked.
//! The Python tools go into the project's virtual environment, never the system Python (PEP
//! 668: Debian's is externally managed, and the stand-in refuses `pip install` as Debian
//! does); a missing PostgreSQL is installed and started; a second run installs nothing; CI
//! stops at once on a Node.js older than 20.

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kizuna_core::testing::TempDir;

/// What every stand-in does first: note its name and arguments in the log.
const LOG: &str = "#!/usr/bin/env bash\necho \"$(basename \"$0\") $*\" >>\"$FAKE_STATE/log\"\n";

/// The tools a fresh machine has, as stand-ins: name and what each does after logging.
const TOOLS: &[(&str, &str)] = &[
    ("id", "echo 0"),
    ("node", "echo \"${FAKE_NODE_VERSION:-v22.12.0}\""),
    ("npm", "[ \"$1\" = ci ] && mkdir -p node_modules; exit 0"),
    ("openssl", ""),
    ("curl", ""),
    ("softhsm2-util", ""),
    ("pkcs11-tool", ""),
    ("mosquitto", ""),
    ("mosquitto_pub", ""),
    ("nginx", ""),
    ("helm", ""),
    (
        "apt-get",
        r#"for pkg in "$@"; do
  case "$pkg" in
    python3-venv) touch "$FAKE_STATE/ensurepip" ;;
    postgresql)
      for tool in pg_ctlcluster pg_lsclusters pg_isready psql; do
        ln -sf "$FAKE_STATE/postgresql/$tool" "$FAKE_BIN/$tool"
      done ;;
  esac
done"#,
    ),
    // The system Python: refuses pip as an externally managed environment does.
    (
        "python3",
        r#"case "$1 $2" in
  "-c "*) [ -e "$FAKE_STATE/ensurepip" ] ;;
  "-m venv")
    dir="${@: -1}"
    mkdir -p "$dir/bin"
    cp "$FAKE_STATE/venv-python" "$dir/bin/python"
    ln -sf python "$dir/bin/python3" ;;
  "-m pip")
    echo "error: externally-managed-environment" >&2
    exit 1 ;;
esac"#,
    ),
    (
        "runuser",
        r#"while [ "$1" != "--" ]; do shift; done; shift; exec "$@""#,
    ),
    (
        "cargo",
        r#"[ "$1 $2" = "nextest --version" ] && exit 0
echo "PATH=$PATH" >>"$FAKE_STATE/log"
echo "KIZUNA_TEST_POSTGRES_URL=${KIZUNA_TEST_POSTGRES_URL:-}" >>"$FAKE_STATE/log""#,
    ),
];

/// What `apt-get install postgresql` brings (a cluster 17/main, down until started).
const POSTGRESQL: &[(&str, &str)] = &[
    ("pg_isready", "[ -e \"$FAKE_STATE/pg-running\" ]"),
    ("pg_ctlcluster", "touch \"$FAKE_STATE/pg-running\""),
    (
        "pg_lsclusters",
        "echo '17 main 5432 down postgres /var/lib/postgresql/17/main /var/log/postgresql/postgresql-17-main.log'",
    ),
    (
        "psql",
        "[ \"$*\" = -q ] && echo \"psql stdin: $(cat)\" >>\"$FAKE_STATE/log\"; exit 0",
    ),
];

/// The virtual environment's Python: `pip install` puts each package's command in its bin/.
const VENV_PYTHON: &str = r#"#!/usr/bin/env bash
echo "venv-python $*" >>"$FAKE_STATE/log"
bin=$(dirname "$0")
if [ "$1 $2 $3" = "-m pip install" ]; then
  for pkg in "$@"; do
    case "$pkg" in
      pkilint) tool=lint_pkix_cert ;;
      aiosmtpd|certbot) tool=$pkg ;;
      *) continue ;;
    esac
    printf '#!/usr/bin/env bash\n' >"$bin/$tool"
    chmod +x "$bin/$tool"
  done
fi"#;

/// Real programs the script and the stand-ins use.
const REAL: &[&str] = &[
    "bash", "basename", "cat", "chmod", "cp", "cut", "date", "dirname", "grep", "head", "ln",
    "mkdir", "mv", "od", "rm", "seq", "sleep", "touch", "tr",
];

/// A fresh machine: a project holding only `scripts/test` and the node peers' lock file,
/// a PATH of stand-ins, a home directory.
struct Machine {
    dir: TempDir,
}

impl Machine {
    fn fresh() -> Machine {
        let machine = Machine {
            dir: TempDir::new("kizuna-test-script"),
        };
        for dir in [
            "project/scripts",
            "project/tests/node",
            "bin",
            "home",
            "state/postgresql",
        ] {
            std::fs::create_dir_all(machine.path(dir)).unwrap();
        }
        std::fs::copy(
            concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/test"),
            machine.path("project/scripts/test"),
        )
        .unwrap();
        std::fs::write(machine.path("project/tests/node/package-lock.json"), "{}").unwrap();
        for (name, body) in TOOLS {
            executable(&machine.path("bin").join(name), &format!("{LOG}{body}\n"));
        }
        for (name, body) in POSTGRESQL {
            executable(
                &machine.path("state/postgresql").join(name),
                &format!("{LOG}{body}\n"),
            );
        }
        executable(&machine.path("state/venv-python"), VENV_PYTHON);
        let path = std::env::var_os("PATH").unwrap();
        for name in REAL {
            let real = std::env::split_paths(&path)
                .map(|dir| dir.join(name))
                .find(|p| p.is_file())
                .unwrap_or_else(|| panic!("{name} is installed"));
            symlink(real, machine.path("bin").join(name)).unwrap();
        }
        machine
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// Runs `scripts/test structure` with only the stand-ins on PATH and `env` set (nothing
    /// from the test runner's environment, which may say CI=true).
    fn run(&self, env: &[(&str, &str)]) -> Output {
        let _ = std::fs::remove_file(self.path("state/log"));
        Command::new(self.path("project/scripts/test"))
            .arg("structure")
            .env_clear()
            .env("PATH", self.path("bin"))
            .env("HOME", self.path("home"))
            .env("FAKE_STATE", self.path("state"))
            .env("FAKE_BIN", self.path("bin"))
            .envs(env.iter().copied())
            .output()
            .expect("run scripts/test")
    }

    /// What the stand-ins were asked, a line each.
    fn log(&self) -> String {
        std::fs::read_to_string(self.path("state/log")).unwrap_or_default()
    }
}

fn executable(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn printed(out: &Output) -> String {
    format!(
        "status {}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn on_a_fresh_debian_the_python_tools_go_into_a_project_venv_and_postgresql_is_installed() {
    let machine = Machine::fresh();
    let out = machine.run(&[]);
    let log = machine.log();
    assert!(out.status.success(), "{}\n--- log\n{log}", printed(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let first = stdout.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("==> needs: root or sudo") && first.contains("Node.js >= 20"),
        "says first what it needs: {first}"
    );

    let line = |prefix: &str| log.lines().find(|l| l.starts_with(prefix));
    let apt = line("apt-get install").unwrap_or_else(|| panic!("apt-get install:\n{log}"));
    assert!(
        apt.contains(" python3-venv") && apt.contains(" postgresql"),
        "{apt}"
    );
    assert!(line("python3 -m venv --clear .venv").is_some(), "{log}");
    assert!(
        line("venv-python -m pip install").is_some_and(|l| l.contains("pkilint aiosmtpd certbot")),
        "{log}"
    );
    assert!(
        line("python3 -m pip").is_none(),
        "nothing is installed into the system Python:\n{log}"
    );
    for tool in ["lint_pkix_cert", "aiosmtpd", "certbot", "python3"] {
        assert!(
            machine.path("project/.venv/bin").join(tool).exists(),
            "{tool}"
        );
    }

    // PostgreSQL: installed, started, and its postgres role given a password kept in ~/.pgpass.
    assert!(
        line("pg_ctlcluster --skip-systemctl-redirect 17 main start").is_some(),
        "{log}"
    );
    assert!(
        line("psql stdin: ALTER ROLE postgres PASSWORD '").is_some(),
        "{log}"
    );
    let pgpass = machine.path("home/.pgpass");
    let saved = std::fs::read_to_string(&pgpass).unwrap();
    assert!(
        saved.starts_with("127.0.0.1:5432:*:postgres:") && saved.lines().count() == 1,
        "{saved}"
    );
    let mode = std::fs::metadata(&pgpass).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    // The tests run with the virtual environment first on PATH, and on PostgreSQL.
    assert!(
        line("cargo nextest run --workspace --no-fail-fast structure").is_some(),
        "{log}"
    );
    let venv_bin = machine.path("project/.venv/bin");
    let path = line("PATH=").unwrap();
    assert!(
        path.starts_with(&format!("PATH={}:", venv_bin.display())),
        "{path}"
    );
    assert!(
        line("KIZUNA_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres").is_some(),
        "{log}"
    );
    assert!(line("npm ci").is_some(), "{log}");

    // A second run finds everything in place and installs nothing.
    let out = machine.run(&[]);
    let log = machine.log();
    assert!(out.status.success(), "{}\n--- log\n{log}", printed(&out));
    for installer in [
        "apt-get",
        "python3 -m venv",
        "venv-python -m pip",
        "npm ci",
        "pg_ctlcluster",
        "psql stdin",
    ] {
        assert!(
            !log.lines().any(|l| l.starts_with(installer)),
            "second run ran {installer}:\n{log}"
        );
    }
    assert!(
        log.lines()
            .any(|l| l.starts_with(&format!("PATH={}:", venv_bin.display()))),
        "{log}"
    );
    assert_eq!(std::fs::read_to_string(&pgpass).unwrap(), saved);
}

#[test]
fn in_ci_an_old_node_stops_the_run_before_anything_is_installed() {
    let machine = Machine::fresh();
    let out = machine.run(&[("CI", "true"), ("FAKE_NODE_VERSION", "v18.19.0")]);
    let log = machine.log();
    assert!(!out.status.success(), "{}", printed(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Node.js v18.19.0 is older than 20"),
        "{stderr}"
    );
    for installer in ["apt-get", "python3", "venv-python", "npm", "cargo"] {
        assert!(
            !log.lines().any(|l| l.starts_with(installer)),
            "{installer} ran before the check:\n{log}"
        );
    }

    // Outside CI the run goes on without the node peers.
    let out = machine.run(&[("FAKE_NODE_VERSION", "v18.19.0")]);
    let log = machine.log();
    assert!(out.status.success(), "{}\n--- log\n{log}", printed(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("the node interoperability tests will be skipped"),
        "{}",
        printed(&out)
    );
    assert!(!log.lines().any(|l| l.starts_with("npm ci")), "{log}");
}
